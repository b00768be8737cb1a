"""Per-image stage status rows (``stage_items``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.db.models import StageItem
from engine.db.rowcount import rowcount
from engine.db.upsert import insert_ignore
from engine.domain.vocabulary import StageStatus


def ensure_pending(session: Session, job_id: int, stage: str, subject_ids: Iterable[int]) -> int:
    """A pending row per subject that has none yet for this job and stage."""
    rows = [{"job_id": job_id, "stage": stage, "subject_id": sid, "status": StageStatus.PENDING.value,
             "attempts": 0} for sid in sorted(set(subject_ids))]
    added = 0
    for i in range(0, len(rows), 1000):
        added += insert_ignore(session, StageItem.__table__, rows[i:i + 1000], ["job_id", "stage", "subject_id"])
    return added


def claim_pending(session: Session, job_id: int, stage: str, subject_ids: Sequence[int]) -> list[StageItem]:
    """The pending rows among ``subject_ids``, locked for this transaction where the database can
    (PostgreSQL: FOR UPDATE SKIP LOCKED, so a redelivered task never works on the same image
    as another worker at the same time)."""
    return list(session.scalars(
        select(StageItem)
        .where(StageItem.job_id == job_id, StageItem.stage == stage,
               StageItem.subject_id.in_(subject_ids), StageItem.status == StageStatus.PENDING)
        .order_by(StageItem.subject_id)
        .with_for_update(skip_locked=True)
    ))


def subjects(session: Session, job_id: int, stage: str, *, pending: bool) -> list[int]:
    status = StageItem.status == StageStatus.PENDING if pending else StageItem.status != StageStatus.PENDING
    return list(session.scalars(
        select(StageItem.subject_id).where(StageItem.job_id == job_id, StageItem.stage == stage, status)
        .order_by(StageItem.subject_id)
    ))


def any_pending(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(func.count()).where(
        StageItem.job_id == job_id, StageItem.status == StageStatus.PENDING)))


def reset_failed(session: Session, job_id: int) -> int:
    result = session.execute(
        update(StageItem).where(StageItem.job_id == job_id, StageItem.status == StageStatus.FAILED)
        .values(status=StageStatus.PENDING, error=None, starts=0)
    )
    return rowcount(result)


def status_counts(session: Session, job_id: int) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(StageItem.stage, StageItem.status, func.count())
        .where(StageItem.job_id == job_id).group_by(StageItem.stage, StageItem.status)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for stage, status, n in rows:
        out.setdefault(stage, {s.value: 0 for s in StageStatus})[status.value] = n
    return out
