"""Progress and failures of jobs, per stage: what `dataengine status` and the API show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import JobItem, MiningJob, StageItem
from engine.domain.vocabulary import ItemStatus, StageStatus
from engine.repositories import jobs as jobs_repo
from engine.repositories import stages as stages_repo

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
        return self.counts.get(StageStatus.PENDING, 0)


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
    # mined items that kept their good dataset annotations and dropped bad ones (reasons in the
    # item's source_meta.annotation_errors): how many, and one example with its first reason
    dropped_annotations: FailureGroup | None = None


def list_jobs(session: Session) -> list[MiningJob]:
    return list(session.scalars(select(MiningJob).order_by(MiningJob.id)))


def job_report(session: Session, job: MiningJob, *, order: Sequence[str] = ("mine",),
               max_failure_groups: int = 10, now: dt.datetime | None = None) -> JobReport:
    """Progress per stage (in ``order``; stages the job never reached are left out) and the
    most common failure reasons across stages."""
    now = now or utcnow()
    stages = [_mine_progress(session, job.id, now)]
    counts = stages_repo.status_counts(session, job.id)
    for name in [n for n in order if n in counts] + sorted(set(counts) - set(order)):
        stages.append(_stage_progress(session, job.id, name, counts[name], now))
    return JobReport(
        id=job.id, name=job.name, source_kind=job.source_kind, source_uri=job.source_uri,
        status=job.status.value, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, stages=stages,
        failures=failure_groups(session, job.id, max_failure_groups),
        dropped_annotations=dropped_annotations(session, job.id),
    )


def dropped_annotations(session: Session, job_id: int) -> FailureGroup | None:
    """Items whose source meta lists annotation errors (engine/services/mine.py: bad annotations are
    left out with their reason, the rest kept)."""
    has_errors = JobItem.source_meta["annotation_errors"].as_string().is_not(None)
    count = session.scalar(select(func.count()).where(JobItem.job_id == job_id, has_errors)) or 0
    if not count:
        return None
    key, meta = session.execute(select(JobItem.key, JobItem.source_meta).where(
        JobItem.job_id == job_id, has_errors).order_by(JobItem.id).limit(1)).one()
    errors = (meta or {}).get("annotation_errors") or ["?"]
    return FailureGroup(str(errors[0]), int(count), key)


def _rates(first: dt.datetime | None, last: dt.datetime | None, finished: int,
           recent: int) -> tuple[float | None, float | None]:
    rate = None
    if first is not None and last is not None and finished > 1:
        span = (_aware(last) - _aware(first)).total_seconds()
        rate = (finished - 1) / span if span >= 1.0 else None  # shorter spans say nothing
    return rate, (recent / RECENT_WINDOW_S if recent else None)


def _stage_progress(session: Session, job_id: int, stage: str, counts: dict[str, int],
                    now: dt.datetime) -> StageProgress:
    finished = (StageItem.job_id == job_id, StageItem.stage == stage,
                StageItem.status != StageStatus.PENDING)
    first, last, n = session.execute(
        select(func.min(StageItem.updated_at), func.max(StageItem.updated_at), func.count()).where(*finished)
    ).one()
    recent = session.scalar(select(func.count()).where(
        *finished, StageItem.updated_at >= now - dt.timedelta(seconds=RECENT_WINDOW_S))) or 0
    rate, recent_rate = _rates(first, last, n, recent)
    return StageProgress(stage, counts, sum(counts.values()), rate, recent_rate)


def _mine_progress(session: Session, job_id: int, now: dt.datetime) -> StageProgress:
    counts = {status.value: n for status, n in jobs_repo.status_counts(session, job_id).items()}
    processed = JobItem.processed_at.is_not(None)
    first, last, done = session.execute(
        select(func.min(JobItem.processed_at), func.max(JobItem.processed_at), func.count())
        .where(JobItem.job_id == job_id, processed)
    ).one()
    since = now - dt.timedelta(seconds=RECENT_WINDOW_S)
    recent = session.scalar(select(func.count()).where(
        JobItem.job_id == job_id, processed, JobItem.processed_at >= since)) or 0
    rate, recent_rate = _rates(first, last, done, recent)
    return StageProgress("mine", counts, sum(counts.values()), rate, recent_rate)


def failure_groups(session: Session, job_id: int, limit: int) -> list[FailureGroup]:
    """Failed items grouped by reason, most frequent first (mining and model stages)."""
    mining = session.execute(
        select(JobItem.error, func.count(), func.min(JobItem.key))
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED)
        .group_by(JobItem.error)
    ).all()
    stages = session.execute(
        select(StageItem.stage, StageItem.error, func.count(), func.min(StageItem.subject_id))
        .where(StageItem.job_id == job_id, StageItem.status == StageStatus.FAILED)
        .group_by(StageItem.stage, StageItem.error)
    ).all()
    groups = [FailureGroup(f"mine: {reason or ''}", count, key) for reason, count, key in mining]
    groups += [FailureGroup(f"{stage}: {reason or ''}", count, f"image {image_id}")
               for stage, reason, count, image_id in stages]
    groups.sort(key=lambda g: (-g.count, g.reason))
    return groups[:limit]


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes: they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
