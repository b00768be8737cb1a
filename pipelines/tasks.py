"""Named tasks: ids in, one stage service, commit, then the next stage is enqueued.

Each Celery task is two lines; ``run_stage`` is the same function the in-process queue calls.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import exc as sa_exc

from engine.ports import TaskQueue
from engine.services import flow
from pipelines.celery_app import app
from pipelines.context import TaskContext, worker_context
from pipelines.stages import BY_NAME, STAGE_NAMES, queue_for

TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError, TimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120,
         "retry_jitter": True, "max_retries": 5}


def run_stage(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int]) -> dict[str, Any]:
    """Run one batch of a stage, commit, and hand what finished to the next stage."""
    stage = BY_NAME[stage_name]
    with ctx.session() as session:
        report = stage.service(ctx, session, job_id, ids)
        next_name, handed = flow.hand_over(session, job_id, stage_name, report.image_ids, STAGE_NAMES)
        if not handed:  # work just handed on means the job cannot be complete: skip the check
            flow.finish_if_complete(session, job_id)
    if next_name and handed:
        enqueue_stage(ctx, queue, next_name, job_id, handed)
    return report.to_dict()


def enqueue_stage(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
                  queue_name: str | None = None) -> list[Any]:
    stage = BY_NAME[stage_name]
    size = stage.batch_size(ctx)
    target = queue_name or queue_for(stage, ctx)
    return [queue.enqueue(stage.task, [job_id, ids[i:i + size]], queue=target) for i in range(0, len(ids), size)]


@cache
def worker_queue() -> TaskQueue:
    from pipelines.dispatch import CeleryQueue

    return CeleryQueue(app)


@app.task(name="dataengine.mine.batch", **RETRY)
def mine_batch(job_id: int, item_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "mine", job_id, item_ids)


@app.task(name="dataengine.caption.batch", **RETRY)
def caption_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "caption", job_id, image_ids)


@app.task(name="dataengine.parse.batch", **RETRY)
def parse_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "parse", job_id, image_ids)


@app.task(name="dataengine.propose.batch", **RETRY)
def propose_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "propose", job_id, image_ids)


@app.task(name="dataengine.negatives.batch", **RETRY)
def negatives_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "negatives", job_id, image_ids)


@app.task(name="dataengine.verify.batch", **RETRY)
def verify_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "verify", job_id, image_ids)


@app.task(name="dataengine.route.batch", **RETRY)
def route_batch(job_id: int, image_ids: list[int]) -> dict[str, Any]:
    return run_stage(worker_context(), worker_queue(), "route", job_id, image_ids)


@app.task(name="dataengine.queue.expire_leases", **RETRY)
def expire_leases() -> int:
    """Beat: abandoned leases go back to the queue; expired log-in sessions and log-in attempts
    older than a day are deleted."""
    from engine.services import auth, queue

    with worker_context().session() as session:
        auth.purge_expired_sessions(session)
        return queue.expire_leases(session)
