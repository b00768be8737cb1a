"""How images move from one stage to the next within a job (the order itself is given by the
caller: pipelines/stages.py owns it). A video job's stage subjects are its video ids."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Image, JobItem, MiningJob, Video
from engine.domain.vocabulary import ItemStatus, JobStatus, MediaKind
from engine.repositories import jobs as jobs_repo
from engine.repositories import stages as stages_repo
from engine.repositories.work import MINE
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
              order: Sequence[str]) -> tuple[str | None, list[int]]:
    """Queue ``image_ids`` (finished in ``after``) for the next stage: pending rows now, in the
    caller's transaction; the caller enqueues the returned ids after commit."""
    job = session.get(MiningJob, job_id)
    assert job is not None
    stage = next_stage(job, after, order)
    if stage is None:
        return None, []
    ids = canonical(session, image_ids, job_media(job.options))
    stages_repo.ensure_pending(session, job_id, stage, ids)
    return stage, ids


def mined_images(session: Session, job_id: int, media: MediaKind = MediaKind.IMAGE) -> list[int]:
    """The job's mined images (``media`` video: its videos), duplicates of earlier ones included."""
    column = JobItem.video_id if media is MediaKind.VIDEO else JobItem.image_id
    return [i for i in session.scalars(
        select(column).where(
            JobItem.job_id == job_id, JobItem.status.in_([ItemStatus.DONE, ItemStatus.DUPLICATE]))
        .distinct()
    ) if i is not None]


def reconcile(session: Session, job_id: int, order: Sequence[str]) -> dict[str, list[int]]:
    """Catch up after a crash or a wider ``until``: everything finished in one stage gets a pending
    row in the next. Returns the pending images per stage (to enqueue after commit)."""
    job = session.get(MiningJob, job_id)
    assert job is not None
    pending: dict[str, list[int]] = {}
    media = job_media(job.options)
    finished = mined_images(session, job_id, media)
    after = MINE
    while (stage := next_stage(job, after, order)) is not None:
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
