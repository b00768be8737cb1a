"""Named tasks: ids in, one stage service, commit, then the next stage is enqueued.

Each Celery task is two lines; ``run_stage`` (pipelines/execution.py) is the same function the
in-process queue calls.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.ports import TaskQueue
from engine.services import auth, queue
from pipelines.celery_app import app
from pipelines.context import worker_context
from pipelines.dispatch import CeleryQueue
from pipelines.execution import TRANSIENT, run_stage
from pipelines.exemplars import EXEMPLAR_TASK, run_exemplars
from pipelines.healing import heal_once
from pipelines.tracking import TRACK_TASK, run_track

RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120,
         "retry_jitter": True, "max_retries": 5}


@cache
def worker_queue() -> TaskQueue:
    return CeleryQueue(app, retries=worker_context().settings.pipeline.enqueue_retries)


@app.task(name="dataengine.mine.batch", **RETRY)
def mine_batch(job_id: int, item_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "mine", job_id, item_ids, database)


@app.task(name="dataengine.caption.batch", **RETRY)
def caption_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "caption", job_id, image_ids, database)


@app.task(name="dataengine.parse.batch", **RETRY)
def parse_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "parse", job_id, image_ids, database)


@app.task(name="dataengine.propose.batch", **RETRY)
def propose_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "propose", job_id, image_ids, database)


@app.task(name="dataengine.negatives.batch", **RETRY)
def negatives_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "negatives", job_id, image_ids, database)


@app.task(name="dataengine.verify.batch", **RETRY)
def verify_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "verify", job_id, image_ids, database)


@app.task(name="dataengine.route.batch", **RETRY)
def route_batch(job_id: int, image_ids: list[int], database: str | None = None) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "route", job_id, image_ids, database)


@app.task(name=TRACK_TASK, **RETRY)
def track(request_id: int, database: str | None = None) -> dict[str, Any]:
    """A click on the video page: the tracker's frames, written as they come (pipelines/tracking.py)."""
    return run_track(worker_context(), request_id, database)


@app.task(name="dataengine.queue.expire_leases", **RETRY)
def expire_leases() -> int:
    """Beat: abandoned leases go back to the queue; expired log-in sessions and log-in attempts
    older than a day are deleted."""
    with worker_context().session() as session:
        auth.purge_expired_sessions(session)
        return queue.expire_leases(session)


@app.task(name="dataengine.pipeline.heal", **RETRY)
def heal() -> dict[str, Any]:
    """Beat: send lost stage work again, retry transient failures, close complete jobs
    (pipelines/healing.py)."""
    return heal_once(worker_context(), worker_queue()).to_dict()


@app.task(name=EXEMPLAR_TASK, **RETRY)
def exemplar(request_id: int, database: str | None = None) -> dict[str, Any]:
    """Exemplar boxes on a correction: SAM 3's candidate masks (pipelines/exemplars.py)."""
    return run_exemplars(worker_context(), request_id, database)
