"""Runs a mining job: plan and catch up (commit), enqueue after the commit, follow progress."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.db.models import MiningJob
from engine.domain.vocabulary import ItemStatus, StageStatus
from engine.ports import TaskQueue
from engine.repositories import jobs as jobs_repo
from engine.repositories import stages as stages_repo
from engine.repositories import work
from engine.services import flow, mine, status
from engine.settings import Settings
from pipelines.context import TaskContext
from pipelines.dispatch import CeleryQueue, InProcessQueue
from pipelines.execution import hand_off
from pipelines.healing import periodic
from pipelines.stages import STAGE_NAMES

Progress = Callable[[int, int], None]  # (items mined, items to mine)


@dataclass
class RunResult:
    plan: mine.JobPlan
    report: status.JobReport
    wall_s: float
    seconds: Counter[str] = field(default_factory=Counter)  # mining steps (in-process only)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # per stage (in-process only)
    finished: bool = True
    # items each stage finished in this run: done, failed, duplicate, skipped (in-process only)
    stage_items: Counter[str] = field(default_factory=Counter)


def run_mine(settings: Settings, source: str, *, job_name: str | None = None,
             kind: str | None = None, options: dict[str, Any] | None = None,
             retry_failed: bool = False, until: str | None = None, model_profile: str | None = None,
             wait: bool = True,
             timeout_s: float | None = None, on_progress: Progress | None = None,
             queue: TaskQueue | None = None) -> RunResult:
    if until is not None and until not in STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGE_NAMES)}")
    started = time.perf_counter()
    ctx = TaskContext.from_settings(settings)
    with ctx.session() as session:
        plan = mine.plan_job(session, settings, source, job_name=job_name, kind=kind,
                             options=options, retry_failed=retry_failed, until=until,
                             model_profile=model_profile)
        leftovers = flow.reconcile(session, plan.job_id, STAGE_NAMES, failure_mining=settings.failure_mining)
        flow.finish_if_complete(session, plan.job_id)
    return _run(ctx, plan, leftovers, started, wait=wait, timeout_s=timeout_s, on_progress=on_progress,
                queue=queue)


def plan_mine(settings: Settings, source: str, *, job_name: str | None = None, kind: str | None = None,
              options: dict[str, Any] | None = None, retry_failed: bool = False,
              until: str | None = None, model_profile: str | None = None) -> mine.JobPlan:
    """The first half of :func:`run_mine`, committed: list the source into a job (created or
    reopened). For callers that need the job id before the job runs (the web API); hand the plan
    to :func:`run_planned`. Raises SourceError / JobConflict / ValueError (unknown stage)."""
    if until is not None and until not in STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGE_NAMES)}")
    with TaskContext.from_settings(settings).session() as session:
        return mine.plan_job(session, settings, source, job_name=job_name, kind=kind,
                             options=options, retry_failed=retry_failed, until=until,
                             model_profile=model_profile)


def run_planned(settings: Settings, plan: mine.JobPlan, *, wait: bool = True, timeout_s: float | None = None,
                on_progress: Progress | None = None, queue: TaskQueue | None = None) -> RunResult:
    """The second half of :func:`run_mine` for a plan from :func:`plan_mine`: catch up, enqueue
    (in-process: run) and follow, exactly as run_mine does after planning."""
    started = time.perf_counter()
    ctx = TaskContext.from_settings(settings)
    with ctx.session() as session:
        plan = dataclasses.replace(plan, pending=jobs_repo.pending_ids(session, plan.job_id))
        leftovers = flow.reconcile(session, plan.job_id, STAGE_NAMES, failure_mining=settings.failure_mining)
        flow.finish_if_complete(session, plan.job_id)
    return _run(ctx, plan, leftovers, started, wait=wait, timeout_s=timeout_s, on_progress=on_progress,
                queue=queue)


def _run(ctx: TaskContext, plan: mine.JobPlan, leftovers: dict[str, list[int]], started: float, *,
         wait: bool, timeout_s: float | None, on_progress: Progress | None,
         queue: TaskQueue | None) -> RunResult:
    settings = ctx.settings
    steps: Counter[str] = Counter()
    stage_items: Counter[str] = Counter()
    total, done = len(plan.pending), 0

    def collect(report: dict[str, Any]) -> None:
        nonlocal done
        stage_items[report.get("stage", "?")] += _finished(report)
        if report.get("stage") == "mine":
            steps.update(report.get("seconds", {}))
            done += sum(v for k, v in report.get("counts", {}).items() if k != "skipped")
            if on_progress:
                on_progress(min(done, total), total)

    if queue is None:
        queue = InProcessQueue(ctx, on_done=collect) if settings.embedded else CeleryQueue.for_settings(settings)
    if on_progress:
        on_progress(0, total)
    with ctx.session() as session:  # stamped before it is sent: the healer knows when it left
        for stage_name, ids in (*leftovers.items(), ("mine", plan.pending)):
            work.mark_dispatched(session, stage_name, plan.job_id, ids)
    for stage_name, ids in leftovers.items():  # model-stage work left by an earlier run
        hand_off(ctx, queue, stage_name, plan.job_id, ids)
    hand_off(ctx, queue, "mine", plan.job_id, plan.pending, queue_name=plan.queue)
    finished = True
    if not settings.embedded and wait:  # the follow loop heals its own job
        finished = wait_for_job(ctx, plan.job_id, total, timeout_s, on_progress,
                                on_poll=periodic(ctx, queue, plan.job_id))
    with ctx.session() as session:
        job = session.get(MiningJob, plan.job_id)
        assert job is not None
        report = status.job_report(session, job, order=STAGE_NAMES)
    stage_seconds = queue.seconds if isinstance(queue, InProcessQueue) else {}
    return RunResult(plan, report, time.perf_counter() - started, steps, stage_seconds, finished, stage_items)


def _finished(report: dict[str, Any]) -> int:
    """The items a batch's report says it finished (mining's "skipped" are items it did not claim)."""
    outcomes = {s.value for s in (*ItemStatus, *StageStatus) if s.value != "pending"}
    if report.get("stage") == "mine":
        outcomes.discard(StageStatus.SKIPPED.value)
    return sum(int(v) for k, v in report.get("counts", {}).items() if k in outcomes)


def wait_for_job(ctx: TaskContext, job_id: int, total: int, timeout_s: float | None,
                 on_progress: Progress | None, poll_s: float = 0.5, *,
                 on_poll: Callable[[], None] | None = None,
                 on_notice: Callable[[str], None] | None = None, max_backoff_s: float = 5.0) -> bool:
    """Poll the database until nothing of the job is pending in any stage (True) or the timeout.

    ``on_poll`` runs once per poll before the job is read (the periodic self-healing call). A
    database or broker outage (a restart, a dropped connection) does not end the follow: one line
    goes to ``on_notice`` (default: stderr) naming the error's kind only, polls back off up to
    ``max_backoff_s``, and a second line says when it answers again; the timeout still holds."""
    notice = on_notice or _to_stderr
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    down: str | None = None  # what is unavailable, while it is
    delay = poll_s
    while True:
        try:
            if on_poll:
                on_poll()
            with ctx.session() as session:
                mining = jobs_repo.has_pending(session, job_id)
                busy = mining or stages_repo.any_pending(session, job_id)
                pending = len(jobs_repo.pending_ids(session, job_id)) if mining and on_progress else 0
        except outage_errors() as exc:
            what = outage_line(exc, job_id)
            if down is None or not what.startswith(down):
                notice(what)
                down = what.split(" (", 1)[0]
            delay = min(max(delay, poll_s) * 2, max_backoff_s)
        else:
            if down is not None:
                notice(f"{down.split()[0]} reachable again; following job {job_id}")
                down, delay = None, poll_s
            if on_progress:
                on_progress(total - min(pending, total), total)
            if not busy:
                return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(delay)


def outage_line(exc: BaseException, job_id: int) -> str:
    """One line for a person: what is unavailable and the error's kind — never its text, which can
    carry SQL, parameters or a connection URL."""
    from sqlalchemy.exc import SQLAlchemyError

    what = "database" if isinstance(exc, SQLAlchemyError) else "broker"
    kind = type(getattr(exc, "orig", None) or exc).__name__
    return f"{what} unavailable ({kind}); still following job {job_id}, retrying"


def outage_errors() -> tuple[type[BaseException], ...]:
    """The errors of a database or broker that is down or restarting (a connection refused or cut)."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    return (OperationalError, InterfaceError, BrokerError, RedisConnectionError, RedisTimeoutError,
            ConnectionError)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
