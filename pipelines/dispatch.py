"""TaskQueue implementations: in-process (the embedded default) and Celery."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from engine.settings import Settings
from pipelines.context import TaskContext
from pipelines.execution import TRANSIENT, run_stage
from pipelines.handoff import HandOffFailed
from pipelines.stages import BY_TASK

__all__ = ["CeleryQueue", "HandOffFailed", "InProcessQueue"]

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
        self.seconds: dict[str, float] = {}  # wall seconds per stage, nested stages excluded
        self._nested = 0.0

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> dict[str, Any]:
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
            self.seconds[stage.name] = self.seconds.get(stage.name, 0.0) + total - self._nested
            self._nested = outer + total
            if self.on_done:
                self.on_done(report)
            return report
        raise AssertionError("unreachable")


class CeleryQueue:
    """Sends the task by name to a broker; workers pick it up. A broker that is down or restarting
    is retried (``retries`` times, backing off up to 5 s between tries) before HandOffFailed."""

    def __init__(self, app: Celery, retries: int = 5) -> None:
        self.app = app
        self.retries = retries

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> None:
        policy = {"max_retries": self.retries, "interval_start": 0.2, "interval_step": 1.0, "interval_max": 5.0}
        try:
            self.app.send_task(task, args=args, queue=queue, retry=True, retry_policy=policy)
        except Exception as exc:  # kombu's OperationalError, socket errors, a closed channel …
            raise HandOffFailed(f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def for_settings(cls, settings: Settings) -> CeleryQueue:
        """A queue on a Celery app made for these settings (the submitting side: CLI, API, promotion)."""
        from pipelines.celery_app import create_celery  # importing it builds the workers' app from the environment

        return cls(create_celery(settings), retries=settings.pipeline.enqueue_retries)

    def depth(self, queue: str) -> int | None:
        """How many messages wait in ``queue`` (None when the broker cannot say)."""
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                with conn.channel() as channel:
                    return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except Exception as exc:  # noqa: BLE001 - a queue never declared, a broker down: unknown
            log.debug("queue depth of %s unknown: %s", queue, exc)
            return None
