"""TaskQueue implementations: in-process (the embedded default) and Celery."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import Celery

from pipelines.context import TaskContext
from pipelines.stages import BY_TASK

log = logging.getLogger(__name__)


class InProcessQueue:
    """Runs the task now, in this process, with the same bounded retries as a worker. A stage
    that hands images on runs the next stage at once (depth first), so one batch travels the
    whole chain before the next batch starts. ``seconds`` sums each stage's reported times."""

    def __init__(self, ctx: TaskContext, max_retries: int = 3, backoff_s: float = 0.5,
                 on_done: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.ctx = ctx
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.on_done = on_done
        self.seconds: Counter[str] = Counter()  # wall seconds per stage, nested stages excluded
        self._nested = 0.0

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> dict[str, Any]:
        from pipelines.tasks import TRANSIENT, run_stage

        stage = BY_TASK[task]
        for attempt in range(self.max_retries + 1):
            outer, self._nested = self._nested, 0.0
            started = time.perf_counter()
            try:
                report = run_stage(self.ctx, self, stage.name, *args)
            except TRANSIENT as exc:
                self._nested = outer
                if attempt == self.max_retries:
                    raise
                log.warning("%s failed (%s), retrying", task, exc)
                time.sleep(self.backoff_s * 2**attempt)
                continue
            total = time.perf_counter() - started
            self.seconds[stage.name] += total - self._nested
            self._nested = outer + total
            if self.on_done:
                self.on_done(report)
            return report
        raise AssertionError("unreachable")


class CeleryQueue:
    """Sends the task by name to a broker; workers pick it up."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> None:
        self.app.send_task(task, args=args, queue=queue)
