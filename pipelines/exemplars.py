"""The correction page's exemplar requests, run off the web process (the ExemplarRunner the web app is
given, wired in dataengine/serve.py), exactly as pipelines/tracking.py runs the video page's clicks:

- with a broker: the Celery task ``dataengine.exemplars`` (pipelines/tasks.py) on the ``gpu`` queue;
- embedded (no broker): a daemon thread of this process runs the requests one at a time, in order.

Either way ``run_exemplars`` runs one request: engine/services/exemplars.py with the context's
exemplar proposer (``ModelCache.exemplar_proposer``: SAM 3 with its per-image vision feature cache)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from PIL import Image as PILImage
from sqlalchemy.orm import Session

from engine.services import exemplars
from engine.services.common import load_images
from engine.settings import Settings, mask_url
from pipelines.context import TaskContext
from pipelines.page_requests import LocalRequests, PipelineRequests, RequestKind
from pipelines.tracking import WrongDatabase

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


def _run(ctx: TaskContext, request_id: int) -> Any:
    return run_exemplars(ctx, request_id)


def _fail(session: Session, request_id: int, error: str) -> None:
    exemplars.fail_request(session, request_id, error, running=True)


EXEMPLARS = RequestKind("exemplar", EXEMPLAR_TASK, EXEMPLAR_QUEUE, _run, _fail, "draw again")


class LocalExemplars(LocalRequests):
    """Embedded mode: the exemplar requests on one daemon thread of this process."""

    def __init__(self, context: TaskContext) -> None:
        super().__init__(context, EXEMPLARS)


class PipelineExemplars(PipelineRequests):
    """The ExemplarRunner of a server process: the gpu queue with a broker, else a LocalExemplars thread."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, EXEMPLARS)
