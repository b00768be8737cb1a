"""The video page's tracker requests, run off the web process (the :class:`engine.ports.TrackRunner`
the web app is given, wired in dataengine/serve.py):

- with a broker: the Celery task ``dataengine.track`` (pipelines/tasks.py) on the ``gpu`` queue, where
  the workers that hold the video models run it;
- embedded (no broker): a daemon thread of this process runs the requests one at a time, in order,
  with this process's model cache (like pipelines/jobs.py's LocalRunner for mining jobs).

Either way ``run_track`` runs one request: engine/services/track.py with the context's video tracker
(``ModelCache.video_tracker``, built once per process) over the video's stored frames."""

from __future__ import annotations

import logging
import queue as queue_lib
import threading
from dataclasses import asdict
from functools import cached_property
from typing import Any

from engine.ports import JobNotEnqueued
from engine.services import video_review
from engine.services.common import describe
from engine.services.track import run_request
from engine.settings import Settings, mask_url
from pipelines.context import TaskContext, database_identity
from pipelines.dispatch import CeleryQueue
from pipelines.handoff import HandOffFailed

log = logging.getLogger(__name__)
TRACK_TASK, TRACK_QUEUE = "dataengine.track", "gpu"


class WrongDatabase(RuntimeError):
    """The request was made in another database than this worker's."""


def run_track(ctx: TaskContext, request_id: int, database: str | None = None) -> dict[str, Any]:
    """Run one tracker request (engine/services/track.py); its outcome as a dict."""
    if database is not None and database != ctx.database_id():
        raise WrongDatabase(f"tracker request {request_id} was made in database {database[:8]}… but this worker's "
                            f"({mask_url(ctx.settings.db_url)}) is another; refused")
    from engine.repositories.videos import frames_of

    with ctx.session() as session:
        outcome = run_request(session, request_id, ctx.models.video_tracker,
                              lambda s, video_id: frames_of(s, ctx.store, video_id))
    return asdict(outcome)


class LocalTracking:
    """Embedded mode: one daemon thread runs the submitted requests in order, then ends when idle."""

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self._requests: queue_lib.Queue[int] = queue_lib.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, request_id: int) -> None:
        with self._lock:
            self._requests.put(request_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="dataengine-track", daemon=True)
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
                run_track(self.context, request_id)
            except Exception as exc:  # noqa: BLE001 - logged; the request fails rather than waits forever
                log.exception("tracker request %s could not be run", request_id)
                self._give_up(request_id, exc)

    def _give_up(self, request_id: int, exc: Exception) -> None:
        """This thread is the request's only runner: a request it could not run is failed, with why."""
        try:
            with self.context.session() as session:
                video_review.fail_request(session, request_id, f"the tracker could not run: {describe(exc)}",
                                          running=True)
        except Exception:  # noqa: BLE001 - the database itself is away: the page's poll times out
            log.exception("tracker request %s could not be marked failed", request_id)


class PipelineTracking:
    """The :class:`engine.ports.TrackRunner` of a server process: the gpu queue with a broker, else a
    :class:`LocalTracking` thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = LocalTracking(TaskContext.from_settings(settings)) if settings.embedded else None

    @cached_property
    def _queue(self) -> CeleryQueue:
        return CeleryQueue.for_settings(self.settings)

    def submit(self, request_id: int) -> None:
        if self._local is not None:
            self._local.submit(request_id)
            return
        try:
            self._queue.enqueue(TRACK_TASK, [request_id, database_identity(self.settings.db_url)], queue=TRACK_QUEUE)
        except HandOffFailed as exc:
            raise JobNotEnqueued(f"tracker request {request_id} could not be handed to the workers ({exc}); "
                                 "click again") from None
