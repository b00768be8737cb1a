"""The video page's tracker requests, run off the web process (the :class:`engine.ports.TrackRunner`
the web app is given, wired in dataengine/serve.py):

- with a broker: the Celery task ``dataengine.track`` (pipelines/tasks.py) on the ``gpu`` queue, where
  the workers that hold the video models run it;
- embedded (no broker): a daemon thread of this process runs the requests one at a time, in order,
  with this process's model cache (like pipelines/jobs.py's LocalRunner for mining jobs).

Either way ``run_track`` runs one request: engine/services/track.py with the context's video tracker
(``ModelCache.video_tracker``, built once per process) over the video's stored frames."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session

from engine.services import video_review
from engine.services.track import run_request
from engine.settings import Settings, mask_url
from pipelines.context import TaskContext
from pipelines.page_requests import LocalRequests, PipelineRequests, RequestKind

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


def _run(ctx: TaskContext, request_id: int) -> Any:
    return run_track(ctx, request_id)  # looked up at call time


def _fail(session: Session, request_id: int, error: str) -> None:
    video_review.fail_request(session, request_id, error, running=True)


TRACKING = RequestKind("tracker", TRACK_TASK, TRACK_QUEUE, _run, _fail, "click again")


class LocalTracking(LocalRequests):
    """Embedded mode: the tracker requests on one daemon thread of this process."""

    def __init__(self, context: TaskContext) -> None:
        super().__init__(context, TRACKING)


class PipelineTracking(PipelineRequests):
    """The :class:`engine.ports.TrackRunner` of a server process: the gpu queue with a broker, else a
    :class:`LocalTracking` thread."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, TRACKING)
