"""The pending work of a stage, as the execution layer sees it: one row per unit of work
(``job_items`` for the mine stage, ``stage_items`` for the model stages), keyed by the id a batch
carries (the item id, or the image id). Each row knows when it was last handed to the broker
(``dispatched_at``) and how often a batch holding it began (``starts``).

Rows a running batch works on are row-locked by that batch (the stages claim with FOR UPDATE
SKIP LOCKED on PostgreSQL); every query here skips locked rows, so work in progress is never
counted as started twice, nor as lost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import JobItem, StageItem
from engine.db.rowcount import rowcount
from engine.domain.vocabulary import ItemStatus, StageStatus

MINE = "mine"


@dataclass(frozen=True)
class _Rows:
    """Columns of the table holding a stage's work rows."""

    model: Any
    key: Any  # the id a batch carries
    pending: Any  # the WHERE clause of a pending row
    stamp: Any  # when the row was made (stands in for a missing dispatched_at)


def _rows(stage: str, job_id: int) -> tuple[_Rows, list[Any]]:
    if stage == MINE:
        return (_Rows(JobItem, JobItem.id, JobItem.status == ItemStatus.PENDING, JobItem.created_at),
                [JobItem.job_id == job_id])
    return (_Rows(StageItem, StageItem.subject_id, StageItem.status == StageStatus.PENDING,
                  StageItem.updated_at),
            [StageItem.job_id == job_id, StageItem.stage == stage])


def begin(session: Session, stage: str, job_id: int, ids: Sequence[int]) -> dict[int, int]:
    """Count one more start on every pending row among ``ids`` that no running batch holds;
    returns {id: starts} for those rows (commit it before working: a worker that dies mid-batch
    leaves the count behind)."""
    if not ids:
        return {}
    rows, where = _rows(stage, job_id)
    free = (select(rows.model.id).where(*where, rows.key.in_(ids), rows.pending)
            .with_for_update(skip_locked=True))
    result = session.execute(
        update(rows.model).where(rows.model.id.in_(free.scalar_subquery()))
        .values(starts=rows.model.starts + 1).returning(rows.key, rows.model.starts),
        execution_options={"synchronize_session": False},
    )
    return {int(key): int(starts) for key, starts in result}


def restart(session: Session, stage: str, job_id: int, ids: Sequence[int]) -> None:
    """Forget the starts of rows about to be split into smaller batches (their crash count starts
    again in the smaller batch) and stamp them dispatched now."""
    if ids:
        rows, where = _rows(stage, job_id)
        session.execute(update(rows.model).where(*where, rows.key.in_(ids), rows.pending)
                        .values(starts=0, dispatched_at=utcnow()),
                        execution_options={"synchronize_session": False})


def mark_dispatched(session: Session, stage: str, job_id: int, ids: Sequence[int],
                    now: dt.datetime | None = None) -> None:
    """Stamp pending rows as handed to the broker now."""
    now = now or utcnow()
    rows, where = _rows(stage, job_id)
    for i in range(0, len(ids), 1000):
        session.execute(update(rows.model).where(*where, rows.key.in_(ids[i:i + 1000]), rows.pending)
                        .values(dispatched_at=now), execution_options={"synchronize_session": False})


def take_stale(session: Session, stage: str, job_id: int, cutoff: dt.datetime, limit: int,
               now: dt.datetime | None = None) -> list[int]:
    """Pending rows last handed to the broker before ``cutoff`` (or made before it and never
    handed) that no running batch holds: stamped dispatched ``now`` and returned, at most ``limit``."""
    rows, where = _rows(stage, job_id)
    last = func.coalesce(rows.model.dispatched_at, rows.stamp)
    ids = list(session.scalars(
        select(rows.key).where(*where, rows.pending, last < cutoff)
        .order_by(rows.key).limit(limit).with_for_update(skip_locked=True)
    ))
    if ids:
        mark_dispatched(session, stage, job_id, ids, now)
    return ids


def fail(session: Session, stage: str, job_id: int, key: int, reason: str) -> bool:
    """Fail one pending row with the reason (False when it is no longer pending)."""
    rows, where = _rows(stage, job_id)
    status = ItemStatus.FAILED if stage == MINE else StageStatus.FAILED
    extra: dict[str, Any] = {"processed_at": utcnow()} if stage == MINE else {}
    result = session.execute(
        update(rows.model).where(*where, rows.key == key, rows.pending)
        .values(status=status, error=reason[:2000], attempts=rows.model.attempts + 1, **extra),
        execution_options={"synchronize_session": False},
    )
    return bool(rowcount(result))


def retry_transient(session: Session, now: dt.datetime, limit: int, max_attempts: int) -> dict[int, list[int]]:
    """Items failed for a transient reason (``retry_at`` due, e.g. the media store was full) back to
    pending, at most ``limit``; returns {job id: item ids}. Items tried ``max_attempts`` times stay
    failed."""
    found = session.execute(
        select(JobItem.id, JobItem.job_id)
        .where(JobItem.retry_at.is_not(None), JobItem.retry_at <= now, JobItem.status == ItemStatus.FAILED,
               JobItem.attempts < max_attempts)
        .order_by(JobItem.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    by_job: dict[int, list[int]] = {}
    for item_id, job_id in found:
        by_job.setdefault(int(job_id), []).append(int(item_id))
    for ids in by_job.values():
        session.execute(
            update(JobItem).where(JobItem.id.in_(ids))
            .values(status=ItemStatus.PENDING, error=None, retry_at=None, starts=0, dispatched_at=now),
            execution_options={"synchronize_session": False},
        )
    return by_job


def count_stale(session: Session, stage: str, job_id: int, cutoff: dt.datetime) -> int:
    """How many pending rows :func:`take_stale` would take (locked rows included)."""
    rows, where = _rows(stage, job_id)
    last = func.coalesce(rows.model.dispatched_at, rows.stamp)
    return int(session.scalar(select(func.count()).select_from(rows.model)
                              .where(*where, rows.pending, last < cutoff)) or 0)
