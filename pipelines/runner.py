"""Runs a mining job: plan (commit), enqueue batches after the commit, follow progress."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.db.models import ItemStatus, MiningJob
from engine.ports import TaskQueue
from engine.repositories import jobs as jobs_repo
from engine.services import mine, status
from engine.settings import Settings
from pipelines.context import TaskContext
from pipelines.dispatch import CeleryQueue, InProcessQueue
from pipelines.tasks import MINE_BATCH

Progress = Callable[[int, int], None]  # (items finished, items to do)


@dataclass
class RunResult:
    plan: mine.JobPlan
    report: status.JobReport
    wall_s: float
    seconds: Counter[str] = field(default_factory=Counter)  # per-step totals (in-process only)
    finished: bool = True


def make_queue(settings: Settings, ctx: TaskContext) -> TaskQueue:
    if settings.embedded:
        return InProcessQueue(ctx)
    from pipelines.celery_app import create_celery

    return CeleryQueue(create_celery(settings))


def chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def run_mine(settings: Settings, source: str, *, job_name: str | None = None,
             kind: str | None = None, options: dict[str, Any] | None = None,
             retry_failed: bool = False, wait: bool = True, timeout_s: float | None = None,
             on_progress: Progress | None = None, queue: TaskQueue | None = None) -> RunResult:
    started = time.perf_counter()
    ctx = TaskContext.from_settings(settings)
    with ctx.session() as session:
        plan = mine.plan_job(session, settings, source, job_name=job_name, kind=kind,
                             options=options, retry_failed=retry_failed)
    queue = queue or make_queue(settings, ctx)
    total = len(plan.pending)
    seconds: Counter[str] = Counter()
    done = 0
    if on_progress:
        on_progress(0, total)
    for batch in chunks(plan.pending, settings.batch_sizes.mine):
        result = queue.enqueue(MINE_BATCH, [plan.job_id, batch], queue=plan.queue)
        if isinstance(result, dict):  # ran in-process
            seconds.update(result.get("seconds", {}))
            done += len(batch)
            if on_progress:
                on_progress(done, total)
    finished = True
    if not settings.embedded and wait and total:
        finished = wait_for_job(ctx, plan.job_id, total, timeout_s, on_progress)
    with ctx.session() as session:
        job = session.get(MiningJob, plan.job_id)
        assert job is not None
        report = status.job_report(session, job)
    return RunResult(plan, report, time.perf_counter() - started, seconds, finished)


def wait_for_job(ctx: TaskContext, job_id: int, total: int, timeout_s: float | None,
                 on_progress: Progress | None, poll_s: float = 0.5) -> bool:
    """Poll the database until no item of the job is pending (True) or the timeout (False)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        with ctx.session() as session:
            pending = jobs_repo.status_counts(session, job_id)[ItemStatus.PENDING]
        if on_progress:
            on_progress(total - min(pending, total), total)
        if pending == 0:
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
