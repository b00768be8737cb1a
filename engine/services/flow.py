"""How images move from one stage to the next within a job (the order itself is given by the
caller: pipelines/stages.py owns it). A video job's stage subjects are its video ids."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Image, JobItem, MiningJob, Video
from engine.domain.vocabulary import ItemStatus, JobStatus, MediaKind
from engine.failure_settings import FailureMiningSettings
from engine.repositories import jobs as jobs_repo
from engine.repositories import stages as stages_repo
from engine.repositories.work import MINE
from engine.services import failures
from engine.services.mine_items import job_media


def next_stage(job: MiningJob, after: str, order: Sequence[str]) -> str | None:
    """The stage after ``after`` for this job, or None past the job's ``until`` stage."""
    until = job.options.get("until") or order[-1]
    if after == until or after not in order:
        return None
    index = order.index(after)
    return order[index + 1] if index + 1 < len(order) else None


def canonical(session: Session, image_ids: Sequence[int], media: MediaKind = MediaKind.IMAGE) -> list[int]:
    """Images (``media`` video: videos) that are not near duplicates of another (those are never
    processed again)."""
    if not image_ids:
        return []
    table = Video if media is MediaKind.VIDEO else Image
    return list(session.scalars(select(table.id).where(
        table.id.in_(set(image_ids)), table.duplicate_of_id.is_(None)).order_by(table.id)))


def hand_over(session: Session, job_id: int, after: str, image_ids: Sequence[int],
              order: Sequence[str], *, failure_mining: FailureMiningSettings | None = None,
              ) -> tuple[str | None, list[int]]:
    """Queue ``image_ids`` (finished in ``after``) for the next stage: pending rows now, in the
    caller's transaction; the caller enqueues the returned ids, in their order, after commit.

    A job that prioritises failures holds what it mined until nothing is left to mine; the batch that
    finishes the pool (``image_ids`` may be empty: its last item failed) hands every mined image not
    handed on yet, most like recent failures first (:func:`release_pool`)."""
    job = session.get(MiningJob, job_id)
    assert job is not None
    stage = next_stage(job, after, order)
    if stage is None:
        return None, []
    if after == MINE and failures.is_prioritised(job):
        return stage, release_pool(session, job, stage, failure_mining or FailureMiningSettings())
    ids = canonical(session, image_ids, job_media(job.options))
    stages_repo.ensure_pending(session, job_id, stage, ids)
    return stage, ids


def release_pool(session: Session, job: MiningJob, stage: str, settings: FailureMiningSettings) -> list[int]:
    """A prioritised job's mined images not handed to ``stage`` yet, ranked and given pending rows — once
    no item is left to mine (else none). The job row is locked first, so that of two batches finishing
    the pool at once exactly one (the later) sees it complete."""
    session.execute(select(MiningJob.id).where(MiningJob.id == job.id).with_for_update())
    if not failures.pool_complete(session, job.id):
        return []
    todo = failures.unreleased(session, job.id, canonical(session, mined_images(session, job.id)), stage)
    if not todo:
        return []
    ranking = failures.rank_pool(session, job.id, todo, settings)
    stages_repo.ensure_pending(session, job.id, stage, ranking.order)
    return ranking.order


def mined_images(session: Session, job_id: int, media: MediaKind = MediaKind.IMAGE) -> list[int]:
    """The job's mined images (``media`` video: its videos), duplicates of earlier ones included."""
    column = JobItem.video_id if media is MediaKind.VIDEO else JobItem.image_id
    return [i for i in session.scalars(
        select(column).where(
            JobItem.job_id == job_id, JobItem.status.in_([ItemStatus.DONE, ItemStatus.DUPLICATE]))
        .distinct()
    ) if i is not None]


def reconcile(session: Session, job_id: int, order: Sequence[str], *,
              failure_mining: FailureMiningSettings | None = None) -> dict[str, list[int]]:
    """Catch up after a crash or a wider ``until``: everything finished in one stage gets a pending
    row in the next (a prioritised job's mined images only once its pool is mined, ranked). Returns
    the pending images per stage (to enqueue after commit; a prioritised job's first model stage in
    its ranked order)."""
    job = session.get(MiningJob, job_id)
    assert job is not None
    pending: dict[str, list[int]] = {}
    media = job_media(job.options)
    finished = mined_images(session, job_id, media)
    after = MINE
    while (stage := next_stage(job, after, order)) is not None:
        if after == MINE and failures.is_prioritised(job):
            release_pool(session, job, stage, failure_mining or FailureMiningSettings())
            pending[stage] = failures.in_rank_order(
                session, job_id, stages_repo.subjects(session, job_id, stage, pending=True))
        else:
            stages_repo.ensure_pending(session, job_id, stage, canonical(session, finished, media))
            pending[stage] = stages_repo.subjects(session, job_id, stage, pending=True)
        finished = stages_repo.subjects(session, job_id, stage, pending=False)
        after = stage
    return pending


def finish_if_complete(session: Session, job_id: int) -> bool:
    """Mark the job done when no item and no stage row is pending; reopen it otherwise.

    The job row is locked first (PostgreSQL: FOR UPDATE; SQLite serialises writers anyway): two
    workers finishing the last two batches at once would otherwise each see the other's items
    still pending in their own snapshot, and neither would mark the job done. With the lock the
    second one waits for the first to commit, and its (read-committed) check then sees it."""
    session.execute(select(MiningJob.id).where(MiningJob.id == job_id).with_for_update())
    busy = jobs_repo.has_pending(session, job_id) or stages_repo.any_pending(session, job_id)
    if busy:
        session.execute(update(MiningJob).where(MiningJob.id == job_id, MiningJob.status == JobStatus.DONE)
                        .values(status=JobStatus.RUNNING, finished_at=None))
        return False
    session.execute(update(MiningJob).where(MiningJob.id == job_id, MiningJob.status != JobStatus.DONE)
                    .values(status=JobStatus.DONE, finished_at=utcnow()))
    return True
