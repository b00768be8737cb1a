"""GET /metrics: the Prometheus text format for an operator's scraper.

Who may read it: a request carrying ``Authorization: Bearer <observability.metrics_token>`` (what a
Prometheus job sends: ``authorization: {credentials: …}``), or an admin (session or API token); 401
without credentials, 403 for anyone else; 404 when ``observability.metrics_enabled`` is off. Not
loopback-only: behind a reverse proxy every caller looks local.

The gauges are computed at scrape time from the database with a few grouped COUNTs over indexed
columns (:class:`DatabaseCollector`); the request latency histogram (web/observability.py), the
model states of this process (engine/model_states.py) and the process's own figures come from
memory. Metric names: docs/architecture.md, "Operators' signals"."""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import model_states
from engine.db.base import utcnow
from engine.db.models import HumanTask, JobItem, MiningJob, StageItem, Verdict
from engine.db.session import session_scope
from engine.domain.permissions import Permission, allowed
from engine.domain.vocabulary import JobStatus, TaskKind, TaskState, VerdictSource
from engine.settings import Settings
from web.deps import get_principal

router = APIRouter(tags=["metrics"])

#: verdicts per minute are counted among this many newest verdict rows (created_at has no index; the
#: id order is the creation order): a bound on the scrape's cost, and on the figure (documented)
VERDICT_WINDOW = 20_000
#: a gauge value per task kind and state even when zero: the series exist from the first scrape
QUEUE_STATES = (TaskState.OPEN, TaskState.LEASED)


class DatabaseCollector(Collector):
    """The database's gauges, read at each scrape; ``dataengine_database_up`` 0 when it cannot be read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("dataengine_database_up", "1 when the scrape could read the database")
        try:
            with session_scope(self.settings.db_url) as session:
                families = list(self._families(session))
        except Exception:  # noqa: BLE001 - the scrape still answers, with the database marked down
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily("dataengine_metrics_database_seconds", "Time the scrape spent on the database")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self, session: Session) -> Iterator[Metric]:
        now = utcnow()
        tasks = GaugeMetricFamily("dataengine_human_tasks", "Human tasks open (waiting) or leased, per kind",
                                  labels=["kind", "state"])
        counts = {(kind, state): 0 for kind in TaskKind for state in QUEUE_STATES}
        for kind, state, n in session.execute(
                select(HumanTask.kind, HumanTask.state, func.count()).where(HumanTask.state.in_(QUEUE_STATES))
                .group_by(HumanTask.kind, HumanTask.state)):
            counts[(kind, state)] = n
        for (kind, state), n in counts.items():
            tasks.add_metric([kind.value, state.value], n)
        yield tasks

        leased = HumanTask.state == TaskState.LEASED
        holders, overdue = session.execute(
            select(func.count(func.distinct(HumanTask.lease_owner_id)),
                   func.count().filter(HumanTask.lease_expires_at < now)).where(leased)).one()
        yield _gauge("dataengine_lease_holders", "People (or the Label Studio bridge) holding a lease", holders)
        yield _gauge("dataengine_leases_overdue",
                     "Leases past their expiry not yet returned to the queue (the expire-leases task does)", overdue)

        newest = (select(Verdict.source, Verdict.created_at).order_by(Verdict.id.desc())
                  .limit(VERDICT_WINDOW).subquery())
        per_source = {source: 0 for source in VerdictSource}
        for source, n in session.execute(
                select(newest.c.source, func.count()).where(newest.c.created_at >= now - dt.timedelta(minutes=1))
                .group_by(newest.c.source)):
            per_source[source] = n
        verdicts = GaugeMetricFamily(
            "dataengine_verdicts_last_minute",
            f"Verdicts recorded in the last minute, by source (counted among the newest {VERDICT_WINDOW})",
            labels=["source"])
        for source, n in per_source.items():
            verdicts.add_metric([source.value], n)
        yield verdicts

        jobs = GaugeMetricFamily("dataengine_jobs", "Mining jobs by status", labels=["status"])
        by_status = {status: 0 for status in JobStatus}
        for status, n in session.execute(select(MiningJob.status, func.count()).group_by(MiningJob.status)):
            by_status[status] = n
        for status, n in by_status.items():
            jobs.add_metric([status.value], n)
        yield jobs
        yield from self._stages(session)

    def _stages(self, session: Session) -> Iterator[Metric]:
        """Per running job (the newest ``metrics_max_jobs``): items per stage and status; ``mine`` is the
        source's items (job_items), the model stages are stage_items. Rates of ``done``/``failed`` are
        the stage's throughput and failures."""
        limit = self.settings.observability.metrics_max_jobs
        family = GaugeMetricFamily("dataengine_job_stage_items",
                                   "Items of a running job per stage and status (newest running jobs)",
                                   labels=["job_id", "stage", "status"])
        job_ids = list(session.scalars(select(MiningJob.id).where(MiningJob.status == JobStatus.RUNNING)
                                       .order_by(MiningJob.id.desc()).limit(limit))) if limit else []
        if job_ids:
            for job_id, status, n in session.execute(
                    select(JobItem.job_id, JobItem.status, func.count()).where(JobItem.job_id.in_(job_ids))
                    .group_by(JobItem.job_id, JobItem.status)):
                family.add_metric([str(job_id), "mine", status.value], n)
            for job_id, stage, stage_status, n in session.execute(
                    select(StageItem.job_id, StageItem.stage, StageItem.status, func.count())
                    .where(StageItem.job_id.in_(job_ids))
                    .group_by(StageItem.job_id, StageItem.stage, StageItem.status)):
                family.add_metric([str(job_id), stage, stage_status.value], n)
        yield family


class ModelStateCollector(Collector):
    """This process's models (engine/model_states.py): loaded or not, and how long each load took."""

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily("dataengine_model_ready",
                                  "1 when this process holds the model, 0 while loading or after a failed load",
                                  labels=["role", "state"])
        seconds = GaugeMetricFamily("dataengine_model_load_seconds", "How long the model took to load",
                                    labels=["role"])
        for role, state in sorted(model_states.snapshot().items()):
            ready.add_metric([role, state.state], 1 if state.state == "ready" else 0)
            if state.seconds is not None:
                seconds.add_metric([role], state.seconds)
        yield ready
        yield seconds


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def install(registry: CollectorRegistry, settings: Settings) -> None:
    """Register the scrape-time collectors on the app's registry."""
    from prometheus_client import ProcessCollector

    registry.register(DatabaseCollector(settings))
    registry.register(ModelStateCollector())
    ProcessCollector(registry=registry)


async def _may_read(request: Request, settings: Settings) -> None:
    """The metrics token, or an admin; else 401/403 (web/deps.get_principal's answers)."""
    token = settings.observability.metrics_token
    header = request.headers.get("authorization", "")
    if token is not None and header.lower().startswith("bearer "):
        if hmac.compare_digest(header[7:].strip().encode(), token.get_secret_value().encode()):
            return
    principal = await get_principal(request)
    if not allowed(principal.role, Permission.USERS):
        raise HTTPException(403, "only an admin or the configured metrics token may read /metrics")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of this server process's registry."""
    settings: Settings = request.app.state.settings
    if not settings.observability.metrics_enabled:
        raise HTTPException(404, "not found")
    await _may_read(request, settings)
    from starlette.concurrency import run_in_threadpool

    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})
