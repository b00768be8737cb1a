"""What the operators' job pages read (GET /api/v1/jobs, /jobs/{id}/failures): the jobs with their
item counts per status, and the failed items of every stage with their reasons, paged."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from engine.db.models import JobItem, MiningJob, StageItem
from engine.domain.stages import STAGE_NAMES
from engine.domain.vocabulary import ItemStatus, StageStatus

MINE = STAGE_NAMES[0]


@dataclass(frozen=True)
class JobRow:
    """One job of the list: the row, its mining items per status, its model-stage items failed and pending."""

    job: MiningJob
    counts: dict[str, int]
    stage_failed: int
    stage_pending: int


@dataclass(frozen=True)
class FailedItem:
    stage: str
    key: str | None  # the source item (model stages: the first item of the job that gave the image)
    image_id: int | None
    error: str | None
    attempts: int
    at: Any  # datetime (UTC), or the database's text when it could not be read as one


def list_jobs(session: Session, *, limit: int, offset: int) -> tuple[int, list[JobRow]]:
    """(how many jobs there are, a page of them newest first)."""
    total = session.scalar(select(func.count()).select_from(MiningJob)) or 0
    jobs = list(session.scalars(select(MiningJob).order_by(MiningJob.id.desc()).limit(limit).offset(offset)))
    ids = [j.id for j in jobs]
    counts: dict[int, dict[str, int]] = {i: {s.value: 0 for s in ItemStatus} for i in ids}
    stage: dict[int, dict[str, int]] = {i: {StageStatus.FAILED: 0, StageStatus.PENDING: 0} for i in ids}
    if ids:
        for job_id, status, n in session.execute(
                select(JobItem.job_id, JobItem.status, func.count()).where(JobItem.job_id.in_(ids))
                .group_by(JobItem.job_id, JobItem.status)):
            counts[job_id][ItemStatus(status).value] = int(n)
        for job_id, stage_status, n in session.execute(
                select(StageItem.job_id, StageItem.status, func.count())
                .where(StageItem.job_id.in_(ids),
                       StageItem.status.in_([StageStatus.FAILED, StageStatus.PENDING]))
                .group_by(StageItem.job_id, StageItem.status)):
            stage[job_id][StageStatus(stage_status)] = int(n)
    return total, [JobRow(j, counts[j.id], stage[j.id][StageStatus.FAILED], stage[j.id][StageStatus.PENDING])
                   for j in jobs]


def failed_items(session: Session, job_id: int, stage: str | None, *, limit: int,
                 offset: int) -> tuple[int, list[FailedItem]]:
    """(how many, a page): the job's failed items in stage order, then in the order they were listed;
    ``stage`` None: every stage."""
    parts = []
    if stage in (None, MINE):
        parts.append(select(
            literal(0, Integer).label("rank"), literal(MINE).label("stage"), JobItem.key.label("key"),
            JobItem.image_id.label("image_id"), JobItem.error.label("error"), JobItem.attempts.label("attempts"),
            JobItem.processed_at.label("at"), JobItem.id.label("row_id"),
        ).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED))
    if stage != MINE:
        first_key = (select(func.min(JobItem.key)).where(JobItem.job_id == job_id,
                                                         JobItem.image_id == StageItem.subject_id)
                     .scalar_subquery())
        rank = case({name: i for i, name in enumerate(STAGE_NAMES)}, value=StageItem.stage,
                    else_=len(STAGE_NAMES))
        where = [StageItem.job_id == job_id, StageItem.status == StageStatus.FAILED]
        if stage is not None:
            where.append(StageItem.stage == stage)
        parts.append(select(
            rank.label("rank"), StageItem.stage.label("stage"), first_key.label("key"),
            StageItem.subject_id.label("image_id"), StageItem.error.label("error"),
            StageItem.attempts.label("attempts"), StageItem.updated_at.label("at"), StageItem.id.label("row_id"),
        ).where(*where))
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    page = session.execute(select(rows.c.stage, rows.c.key, rows.c.image_id, rows.c.error, rows.c.attempts, rows.c.at)
                           .order_by(rows.c.rank, rows.c.row_id).limit(limit).offset(offset)).all()
    return total, [FailedItem(s, key, image_id, error, attempts, _utc(at))
                   for s, key, image_id, error, attempts, at in page]


def _utc(value: Any) -> Any:
    if isinstance(value, str):  # SQLite through a UNION may hand the text back
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
