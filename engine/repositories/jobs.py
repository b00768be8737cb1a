from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.db.models import JobItem, MiningJob
from engine.db.rowcount import rowcount
from engine.db.upsert import insert_ignore
from engine.domain.vocabulary import ItemStatus
from engine.sources import SourceItem

LIST_CHUNK = 1000


def by_name(session: Session, name: str) -> MiningJob | None:
    return session.scalars(select(MiningJob).where(MiningJob.name == name)).one_or_none()


def add_items(session: Session, job_id: int, items: Iterable[SourceItem]) -> int:
    """Record listed items (existing keys are left alone); returns how many are new."""
    added = 0
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append({"job_id": job_id, "key": item.key[:1024], "locator": item.locator,
                      "source_meta": item.meta, "status": ItemStatus.PENDING.value, "attempts": 0})
        if len(chunk) >= LIST_CHUNK:
            added += insert_ignore(session, JobItem.__table__, chunk, ["job_id", "key"])
            chunk = []
    added += insert_ignore(session, JobItem.__table__, chunk, ["job_id", "key"])
    return added


def count_items(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(JobItem.job_id == job_id)) or 0


def reset_failed(session: Session, job_id: int) -> int:
    result = session.execute(
        update(JobItem).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED)
        .values(status=ItemStatus.PENDING, error=None, starts=0, retry_at=None)
    )
    return rowcount(result)


def pending_ids(session: Session, job_id: int) -> list[int]:
    return list(session.scalars(
        select(JobItem.id).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
        .order_by(JobItem.id)
    ))


def pending_items(session: Session, job_id: int, item_ids: Sequence[int]) -> list[JobItem]:
    """The pending items among ``item_ids``, locked for this transaction on PostgreSQL (SKIP
    LOCKED: a redelivered batch never mines an item another worker is mining right now)."""
    return list(session.scalars(
        select(JobItem).where(JobItem.job_id == job_id, JobItem.id.in_(item_ids),
                              JobItem.status == ItemStatus.PENDING)
        .order_by(JobItem.id)
        .with_for_update(skip_locked=True)
    ))


def status_counts(session: Session, job_id: int) -> dict[ItemStatus, int]:
    rows = session.execute(
        select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)
    ).all()
    counts = {status: 0 for status in ItemStatus}
    counts.update({status: n for status, n in rows})
    return counts


def has_pending(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(func.count()).where(
        JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)))
