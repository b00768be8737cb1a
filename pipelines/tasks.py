"""Named tasks: ids in, one service call, commit. The same functions run in-process (JOBS)."""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import exc as sa_exc

from engine.services import mine
from pipelines.celery_app import app
from pipelines.context import TaskContext, worker_context

MINE_BATCH = "dataengine.mine.batch"
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError, TimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120,
         "retry_jitter": True, "max_retries": 5}


def mine_batch_job(ctx: TaskContext, job_id: int, item_ids: list[int]) -> dict[str, Any]:
    with ctx.session() as session:
        return mine.mine_batch(session, ctx.settings, ctx.store, job_id, item_ids).to_dict()


@app.task(name=MINE_BATCH, **RETRY)
def mine_batch(job_id: int, item_ids: list[int]) -> dict[str, Any]:
    return mine_batch_job(worker_context(), job_id, item_ids)


JOBS: dict[str, Callable[..., dict[str, Any]]] = {MINE_BATCH: mine_batch_job}
