"""The healer: finds stage work that should be moving and is not, and says what to send again.

A batch can be lost between the database and the broker in several ways — a worker killed with
its messages reserved, a broker restarted with messages queued, a hand-off to the next stage that
failed after the stage's commit, a task refused by a worker pointed at another database. In every
case the work rows stay ``pending``. The healer looks for pending rows handed to the broker longer
than ``stale_after`` ago that no running batch holds (row locks) and returns them to be enqueued
again; the stages are idempotent, so a copy of a batch that was only slow costs one empty claim.
It also puts back items that failed for a transient reason (``retry_at``: the media store was
full) once the caller says it can take them, and closes running jobs with nothing left pending.

The caller commits, then enqueues what :func:`heal` returns (pipelines/healing.py)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import MiningJob
from engine.domain.vocabulary import JobStatus
from engine.repositories import work
from engine.services import flow

QueueOf = Callable[[MiningJob, str], str]  # the broker queue a job's stage runs on


@dataclass(frozen=True)
class Resend:
    job_id: int
    stage: str
    queue: str
    ids: list[int]


@dataclass
class HealReport:
    resend: list[Resend] = field(default_factory=list)
    retried: int = 0  # transiently failed items put back to pending
    finished: list[int] = field(default_factory=list)  # running jobs found complete and closed
    waiting: Counter[str] = field(default_factory=Counter)  # stale rows left alone: their queue is busy

    @property
    def resent(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for r in self.resend:
            counts[r.stage] += len(r.ids)
        return counts

    def to_dict(self) -> dict[str, object]:
        return {"resent": dict(self.resent), "retried": self.retried, "finished": self.finished,
                "waiting": dict(self.waiting)}


def heal(session: Session, order: Sequence[str], queue_of: QueueOf, *, stale_after_s: float,
         busy_queues: frozenset[str] = frozenset(), retry_transient: bool = True, max_attempts: int = 20,
         job_id: int | None = None, limit: int = 10_000, now: dt.datetime | None = None) -> HealReport:
    """One pass over running jobs (or one job). ``busy_queues``: queues known to hold waiting
    messages — stale rows of a stage on such a queue are left alone (their message may be waiting
    there; sending copies into a backlog would only grow it). ``retry_transient``: the media store
    has room again, so items whose ``retry_at`` is due go back to pending."""
    now = now or utcnow()
    report = HealReport()
    if retry_transient:
        for jid, ids in work.retry_transient(session, now, limit, max_attempts).items():
            if job_id is not None and jid != job_id:
                continue
            job = session.get(MiningJob, jid)
            if job is not None:
                report.retried += len(ids)
                report.resend.append(Resend(jid, work.MINE, queue_of(job, work.MINE), ids))
                flow.finish_if_complete(session, jid)  # reopens the job: it has pending items again
    cutoff = now - dt.timedelta(seconds=stale_after_s)
    query = select(MiningJob).where(MiningJob.status == JobStatus.RUNNING).order_by(MiningJob.id)
    if job_id is not None:
        query = query.where(MiningJob.id == job_id)
    budget = limit
    for job in session.scalars(query).all():
        stages = _stages_of(job, order)
        for stage in stages:
            if budget <= 0:
                break
            queue = queue_of(job, stage)
            if queue in busy_queues:
                waiting = work.count_stale(session, stage, job.id, cutoff)
                if waiting:
                    report.waiting[stage] += waiting
                continue
            ids = work.take_stale(session, stage, job.id, cutoff, budget, now)
            if ids:
                budget -= len(ids)
                report.resend.append(Resend(job.id, stage, queue, ids))
        if flow.finish_if_complete(session, job.id):
            report.finished.append(job.id)
    return report


def _stages_of(job: MiningJob, order: Sequence[str]) -> list[str]:
    """Mining and the stages after it up to the job's ``until`` (flow.next_stage reads it)."""
    stages = [work.MINE]
    while (stage := flow.next_stage(job, stages[-1], order)) is not None:
        stages.append(stage)
    return stages
