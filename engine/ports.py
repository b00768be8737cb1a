"""Ports: the small interfaces the engine needs from the outside world."""

from __future__ import annotations

from typing import Any, Protocol


class TaskQueue(Protocol):
    """Runs a named task on a batch of ids: in this process, or on a Celery worker.

    Enqueue only after the transaction that created the ids has committed.
    """

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> Any: ...
