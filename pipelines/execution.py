"""How one stage batch runs, wherever it runs (a Celery worker or the in-process queue).

1. Begin: in a short transaction of its own, count a start on each pending row of the batch that no
   other running batch holds (engine/repositories/work.py). A job this database does not know is
   refused loudly (:class:`UnknownJob`): the worker points at another database than the one the
   job was planned in; so is a task whose message names another database's identity.
2. A batch that began before and never finished (some row has more than one start) is a batch
   that took its worker down (a crash in native code, the out-of-memory killer, kill -9) — or was
   cut off by a database restart. It is split in halves, sent again, and not worked on here; a
   single item that took its worker down ``max_item_crashes`` times is failed with the reason.
3. Otherwise run the stage's service, commit, hand what finished to the next stage and enqueue it.
   A hand-off the broker refuses (after retries) is logged: its rows are pending and stamped, and
   the healer sends them again (pipelines/healing.py). A batch that raises anything but a
   database or network error is split the same way, down to the item that raises, which is failed
   with the error as its reason: no input stops a job.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from sqlalchemy import exc as sa_exc

from engine.db.models import MiningJob
from engine.domain.vocabulary import StageStatus
from engine.extras import missing_extra
from engine.logs import log_context
from engine.ports import TaskQueue
from engine.repositories import work
from engine.repositories.work import MINE
from engine.services import flow
from engine.services.common import StageReport
from engine.settings import mask_url
from pipelines.context import TaskContext
from pipelines.handoff import HandOffFailed
from pipelines.stages import BY_NAME, STAGE_NAMES, queue_for, queue_of

log = logging.getLogger(__name__)

# errors of the database or the network, not of the batch: the task is retried as it is
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError, TimeoutError)


class UnknownJob(LookupError):
    """The task's job is not in this worker's database."""


class WrongDatabase(UnknownJob):
    """The task was planned in another database than this worker's."""


def run_stage(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
              database: str | None = None) -> dict[str, Any]:
    """Run one batch of a stage, commit, and hand what finished to the next stage. ``database``: the
    identity of the database the task was planned in (messages from before it was sent carry none).
    Every record logged meanwhile carries the job id and stage (engine/logs.py); the batch's start and
    end are logged with its counts and seconds."""
    with log_context(job_id=job_id, stage=stage_name):
        started = time.perf_counter()
        log.info("%s batch of job %s begins: %d item(s)", stage_name, job_id, len(ids), extra={"items": len(ids)})
        try:
            result = _run_stage(ctx, queue, stage_name, job_id, ids, database)
        except Exception as exc:
            log.warning("%s batch of job %s raised after %.2f s: %s", stage_name, job_id,
                        time.perf_counter() - started, type(exc).__name__,
                        extra={"items": len(ids), "seconds": round(time.perf_counter() - started, 3)})
            raise
        seconds = time.perf_counter() - started
        counts = result.get("counts") or {}
        log.info("%s batch of job %s ends in %.2f s: %s", stage_name, job_id, seconds,
                 ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing done",
                 extra={"items": len(ids), "counts": counts, "seconds": round(seconds, 3)})
        return result


def _run_stage(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
               database: str | None) -> dict[str, Any]:
    stage = BY_NAME[stage_name]
    if database is not None and database != ctx.database_id():
        raise WrongDatabase(
            f"job {job_id} is not in this worker's database: its {stage.task} task was planned in database "
            f"{database[:8]}… but this worker's ({mask_url(ctx.settings.db_url)}) is {str(ctx.database_id())[:8]}…; "
            "the worker is configured for another database than the one the job was planned in; refused")
    with ctx.session() as session:
        job = session.get(MiningJob, job_id)
        if job is None:
            raise UnknownJob(
                f"job {job_id} is not in this worker's database ({mask_url(ctx.settings.db_url)}): the worker "
                f"is configured for another database than the one the job was planned in; {stage.task} refused")
        starts = work.begin(session, stage_name, job_id, ids)
        own_queue = queue_of(job, stage_name, ctx.settings)
    if any(n > 1 for n in starts.values()):
        split = _after_crash(ctx, queue, stage_name, job_id, starts, own_queue)
        if split is not None:
            return split.to_dict()
    try:
        with ctx.session() as session:
            report = stage.service(ctx, session, job_id, ids)
            next_name, handed = flow.hand_over(session, job_id, stage_name, report.image_ids, STAGE_NAMES,
                                                failure_mining=ctx.settings.failure_mining)
            if handed and next_name:
                work.mark_dispatched(session, next_name, job_id, handed)
            else:  # work just handed on means the job cannot be complete: skip the check
                flow.finish_if_complete(session, job_id)
    except TRANSIENT:
        raise  # the database or the network: the task is tried again as it is
    except Exception as exc:  # a bug or an input no check foresaw: it must not stop the job
        if not starts:
            raise
        missing = missing_extra(exc)
        if missing is not None:  # this worker lacks a model library, not the items: no split, one line
            log.error("%s: job %s: %d item(s) failed: %s", stage_name, job_id, len(starts), missing)
            return _fail_each(ctx, queue, stage_name, job_id, sorted(starts), str(missing)).to_dict()
        log.exception("%s: a batch of job %s failed", stage_name, job_id)
        return _after_error(ctx, queue, stage_name, job_id, sorted(starts), own_queue, exc).to_dict()
    if next_name and handed:
        hand_off(ctx, queue, next_name, job_id, handed)
    return report.to_dict()


def _after_crash(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, starts: dict[int, int],
                 queue_name: str) -> StageReport | None:
    """Split a batch that began before without finishing, or fail its single item after too many
    crashes; None when the batch should just run (a single item with crashes to spare)."""
    ids = sorted(starts)
    if len(ids) > 1:
        log.warning("%s: a batch of job %s began %d time(s) before without finishing; splitting its %d items",
                    stage_name, job_id, max(starts.values()) - 1, len(ids))
        return _split(ctx, queue, stage_name, job_id, ids, queue_name)
    crashes = starts[ids[0]] - 1
    limit = ctx.settings.pipeline.max_item_crashes
    if crashes < limit:
        return None
    reason = (f"the worker process died {crashes} times while working on this item (a crash in native "
              f"code, the out-of-memory killer, or a kill); not tried again (pipeline.max_item_crashes="
              f"{limit}; `dataengine mine --retry-failed` tries it once more)")
    log.error("%s: job %s item %s failed: %s", stage_name, job_id, ids[0], reason)
    return _fail_one(ctx, queue, stage_name, job_id, ids[0], reason)


def _after_error(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
                 queue_name: str, exc: Exception) -> StageReport:
    """A batch raised (rolled back): split it and send the halves again, down to the item that
    raises, which is failed with the error as its reason."""
    if len(ids) > 1:
        return _split(ctx, queue, stage_name, job_id, ids, queue_name)
    return _fail_one(ctx, queue, stage_name, job_id, ids[0], f"internal error: {type(exc).__name__}: {exc}")


def _split(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
           queue_name: str) -> StageReport:
    """Send the batch again as two halves (their starts counted afresh)."""
    half = (len(ids) + 1) // 2
    with ctx.session() as session:
        work.restart(session, stage_name, job_id, ids)
    for part in (ids[:half], ids[half:]):
        hand_off(ctx, queue, stage_name, job_id, part, queue_name=queue_name)
    return StageReport(stage_name, counts=Counter(split=len(ids)))


def _fail_each(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
               reason: str) -> StageReport:
    """Fail every item of a batch with the same reason (one the items are not the cause of, such as
    a model library missing on this worker: `dataengine mine --retry-failed` tries them again)."""
    report = StageReport(stage_name)
    for key in ids:
        report.counts.update(_fail_one(ctx, queue, stage_name, job_id, key, reason).counts)
    return report


def _fail_one(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, key: int,
              reason: str) -> StageReport:
    """Fail one item with its reason. A failed mine item can be the last of a prioritised job's pool:
    the pool is then released to the next stage here (nothing is handed otherwise)."""
    with ctx.session() as session:
        work.fail(session, stage_name, job_id, key, reason)
        next_name, handed = (flow.hand_over(session, job_id, stage_name, [], STAGE_NAMES,
                                            failure_mining=ctx.settings.failure_mining)
                             if stage_name == MINE else (None, []))
        if next_name and handed:
            work.mark_dispatched(session, next_name, job_id, handed)
        else:
            flow.finish_if_complete(session, job_id)
    if next_name and handed:
        hand_off(ctx, queue, next_name, job_id, handed)
    return StageReport(stage_name, counts=Counter({StageStatus.FAILED.value: 1}))


def enqueue_stage(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
                  queue_name: str | None = None) -> list[Any]:
    """Send ``ids`` to a stage in batches of its size (raises HandOffFailed when the broker refuses)."""
    stage = BY_NAME[stage_name]
    size = stage.batch_size(ctx)
    target = queue_name or queue_for(stage, ctx)
    database = ctx.database_id()
    return [queue.enqueue(stage.task, [job_id, ids[i:i + size], database], queue=target)
            for i in range(0, len(ids), size)]


def hand_off(ctx: TaskContext, queue: TaskQueue, stage_name: str, job_id: int, ids: list[int],
             queue_name: str | None = None) -> bool:
    """enqueue_stage after a commit: a broker that refuses is logged, not raised — the rows are
    pending and stamped, and the healer sends them again after ``pipeline.stale_after_s``."""
    try:
        enqueue_stage(ctx, queue, stage_name, job_id, ids, queue_name)
    except HandOffFailed as exc:
        log.warning("could not hand %d item(s) of job %s to %s (%s); the healer will send them again",
                    len(ids), job_id, stage_name, exc)
        return False
    return True
