"""Running a page's model requests off the web process — the video page's tracker clicks
(pipelines/tracking.py) and the correction page's exemplar boxes (pipelines/exemplars.py) alike:

- with a broker: a Celery task on the gpu queue, carrying the database's identity;
- embedded (no broker): one daemon thread of this process runs the submitted requests in order, then
  ends when idle; a request it could not run at all is failed with why (it is the only runner)."""

from __future__ import annotations

import logging
import queue as queue_lib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from engine.ports import JobNotEnqueued
from engine.services.common import describe
from engine.settings import Settings
from pipelines.context import TaskContext, database_identity
from pipelines.dispatch import CeleryQueue
from pipelines.handoff import HandOffFailed
from pipelines.models import ModelCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestKind:
    """One kind of page request: how to run one, how to fail one, and how to name it."""

    name: str  # "tracker", "exemplar": in messages and the thread's name
    task: str  # the Celery task
    queue: str
    run: Callable[[TaskContext, int], Any]
    fail: Callable[[Session, int, str], None]  # fail a queued or running request with the reason
    retry_hint: str  # what the person does when the hand-off fails ("click again")


class LocalRequests:
    """Embedded mode: one daemon thread runs the submitted requests in order, then ends when idle."""

    def __init__(self, context: TaskContext, kind: RequestKind) -> None:
        self.context, self.kind = context, kind
        self._requests: queue_lib.Queue[int] = queue_lib.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, request_id: int) -> None:
        with self._lock:
            self._requests.put(request_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"dataengine-{self.kind.name}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                request_id = self._requests.get(timeout=2.0)
            except queue_lib.Empty:
                with self._lock:
                    if self._requests.empty():
                        self._thread = None
                        return
                continue
            try:
                self.kind.run(self.context, request_id)
            except Exception as exc:  # noqa: BLE001 - logged; the request fails rather than waits forever
                log.exception("%s request %s could not be run", self.kind.name, request_id)
                self._give_up(request_id, exc)

    def _give_up(self, request_id: int, exc: Exception) -> None:
        """This thread is the request's only runner: a request it could not run is failed, with why."""
        try:
            with self.context.session() as session:
                self.kind.fail(session, request_id, f"the {self.kind.name} model could not run: {describe(exc)}")
        except Exception:  # noqa: BLE001 - the database itself is away: the page's poll times out
            log.exception("%s request %s could not be marked failed", self.kind.name, request_id)


class PipelineRequests:
    """A server process's runner of one kind of request: the gpu queue with a broker, else a thread."""

    def __init__(self, settings: Settings, kind: RequestKind) -> None:
        self.settings, self.kind = settings, kind
        self._local = LocalRequests(TaskContext.from_settings(settings), kind) if settings.embedded else None

    @property
    def local_models(self) -> ModelCache | None:
        """The model cache of the in-process runner (embedded mode; None with a broker): what a server's
        warm-up loads (pipelines/warmup.py) so the first request does not wait for the model."""
        return self._local.context.models if self._local is not None else None

    @cached_property
    def _queue(self) -> CeleryQueue:
        return CeleryQueue.for_settings(self.settings)

    def submit(self, request_id: int) -> None:
        if self._local is not None:
            self._local.submit(request_id)
            return
        try:
            self._queue.enqueue(self.kind.task, [request_id, database_identity(self.settings.db_url)],
                                queue=self.kind.queue)
        except HandOffFailed as exc:
            raise JobNotEnqueued(f"{self.kind.name} request {request_id} could not be handed to the workers "
                                 f"({exc}); {self.kind.retry_hint}") from None
