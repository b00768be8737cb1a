"""The correction page's exemplar requests, run off the web process (the ExemplarRunner the web app is
given, wired in dataengine/serve.py), exactly as pipelines/tracking.py runs the video page's clicks:

- with a broker: the Celery task ``dataengine.exemplars`` (pipelines/tasks.py) on the ``gpu`` queue;
- embedded (no broker): a daemon thread of this process runs the requests one at a time, in order.

Either way ``run_exemplars`` runs one request: engine/services/exemplars.py with the context's
exemplar proposer (``ModelCache.exemplar_proposer``: SAM 3 with its per-image vision feature cache)."""

from __future__ import annotations

import logging
import queue as queue_lib
import threading
from dataclasses import asdict
from functools import cached_property
from typing import Any

from PIL import Image as PILImage
from sqlalchemy.orm import Session

from engine.ports import JobNotEnqueued
from engine.services import exemplars
from engine.services.common import describe, load_images
from engine.settings import Settings, mask_url
from pipelines.context import TaskContext, database_identity
from pipelines.dispatch import CeleryQueue
from pipelines.handoff import HandOffFailed
from pipelines.tracking import WrongDatabase

log = logging.getLogger(__name__)
EXEMPLAR_TASK, EXEMPLAR_QUEUE = "dataengine.exemplars", "gpu"


def run_exemplars(ctx: TaskContext, request_id: int, database: str | None = None) -> dict[str, Any]:
    """Run one exemplar request (engine/services/exemplars.py); its outcome as a dict."""
    if database is not None and database != ctx.database_id():
        raise WrongDatabase(f"exemplar request {request_id} was made in database {database[:8]}… but this "
                            f"worker's ({mask_url(ctx.settings.db_url)}) is another; refused")

    def image_of(session: Session, image_id: int) -> PILImage.Image:
        loaded = load_images(session, ctx.store, [image_id])[image_id]
        if isinstance(loaded, str):
            raise RuntimeError(loaded)
        return loaded

    cfg = ctx.settings.exemplars
    with ctx.session() as session:
        outcome = exemplars.run_request(session, request_id, ctx.models.exemplar_proposer, image_of,
                                        score_threshold=cfg.score_threshold, max_masks=cfg.max_masks)
    return asdict(outcome)


class LocalExemplars:
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
                self._thread = threading.Thread(target=self._loop, name="dataengine-exemplars", daemon=True)
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
                run_exemplars(self.context, request_id)
            except Exception as exc:  # noqa: BLE001 - logged; the request fails rather than waits forever
                log.exception("exemplar request %s could not be run", request_id)
                self._give_up(request_id, exc)

    def _give_up(self, request_id: int, exc: Exception) -> None:
        try:
            with self.context.session() as session:
                exemplars.fail_request(session, request_id, f"the exemplar model could not run: {describe(exc)}",
                                       running=True)
        except Exception:  # noqa: BLE001 - the database itself is away: the page's poll times out
            log.exception("exemplar request %s could not be marked failed", request_id)


class PipelineExemplars:
    """The ExemplarRunner of a server process: the gpu queue with a broker, else a LocalExemplars thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = LocalExemplars(TaskContext.from_settings(settings)) if settings.embedded else None

    @cached_property
    def _queue(self) -> CeleryQueue:
        return CeleryQueue.for_settings(self.settings)

    def submit(self, request_id: int) -> None:
        if self._local is not None:
            self._local.submit(request_id)
            return
        try:
            self._queue.enqueue(EXEMPLAR_TASK, [request_id, database_identity(self.settings.db_url)],
                                queue=EXEMPLAR_QUEUE)
        except HandOffFailed as exc:
            raise JobNotEnqueued(f"exemplar request {request_id} could not be handed to the workers ({exc}); "
                                 "draw again") from None
