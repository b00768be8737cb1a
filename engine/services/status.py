"""Progress and failures of jobs, per stage: what `dataengine status` and the API show."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import ItemStatus, JobItem, MiningJob
from engine.repositories import jobs as jobs_repo

RECENT_WINDOW_S = 60


@dataclass(frozen=True)
class StageProgress:
    stage: str
    counts: dict[str, int]
    total: int
    items_per_s: float | None  # over the stage's processing so far
    recent_items_per_s: float | None  # over the last minute

    @property
    def pending(self) -> int:
        return self.counts.get("pending", 0)


@dataclass(frozen=True)
class FailureGroup:
    reason: str
    count: int
    example_key: str


@dataclass(frozen=True)
class JobReport:
    id: int
    name: str
    source_kind: str
    source_uri: str
    status: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    stages: list[StageProgress]
    failures: list[FailureGroup]


def list_jobs(session: Session) -> list[MiningJob]:
    return list(session.scalars(select(MiningJob).order_by(MiningJob.id)))


def job_report(session: Session, job: MiningJob, *, max_failure_groups: int = 10,
               now: dt.datetime | None = None) -> JobReport:
    return JobReport(
        id=job.id, name=job.name, source_kind=job.source_kind, source_uri=job.source_uri,
        status=job.status.value, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, stages=[_mine_progress(session, job.id, now or utcnow())],
        failures=failure_groups(session, job.id, max_failure_groups),
    )


def _mine_progress(session: Session, job_id: int, now: dt.datetime) -> StageProgress:
    counts = {status.value: n for status, n in jobs_repo.status_counts(session, job_id).items()}
    processed = JobItem.processed_at.is_not(None)
    first, last, done = session.execute(
        select(func.min(JobItem.processed_at), func.max(JobItem.processed_at), func.count())
        .where(JobItem.job_id == job_id, processed)
    ).one()
    rate = None
    if first is not None and last is not None and done > 1:
        span = (_aware(last) - _aware(first)).total_seconds()
        rate = (done - 1) / span if span > 0 else None
    since = now - dt.timedelta(seconds=RECENT_WINDOW_S)
    recent = session.scalar(select(func.count()).where(
        JobItem.job_id == job_id, processed, JobItem.processed_at >= since)) or 0
    return StageProgress("mine", counts, sum(counts.values()), rate,
                         recent / RECENT_WINDOW_S if recent else None)


def failure_groups(session: Session, job_id: int, limit: int) -> list[FailureGroup]:
    rows = session.execute(
        select(JobItem.error, func.count(), func.min(JobItem.key))
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED)
        .group_by(JobItem.error).order_by(func.count().desc(), JobItem.error).limit(limit)
    ).all()
    return [FailureGroup(reason or "", count, key) for reason, count, key in rows]


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes: they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
