"""TaskQueue implementations: in-process (the embedded default) and Celery."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery

from pipelines.context import TaskContext
from pipelines.tasks import JOBS, TRANSIENT

log = logging.getLogger(__name__)


class InProcessQueue:
    """Runs the task function now, in this process, with the same bounded retries as a worker."""

    def __init__(self, ctx: TaskContext, max_retries: int = 3, backoff_s: float = 0.5) -> None:
        self.ctx = ctx
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> dict[str, Any]:
        job = JOBS[task]
        for attempt in range(self.max_retries + 1):
            try:
                return job(self.ctx, *args)
            except TRANSIENT as exc:
                if attempt == self.max_retries:
                    raise
                log.warning("%s failed (%s), retrying", task, exc)
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")


class CeleryQueue:
    """Sends the task by name to a broker; workers pick it up."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> None:
        self.app.send_task(task, args=args, queue=queue)
