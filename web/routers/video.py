"""The video page's endpoints: sampled frames by index, a masklet's per-frame masks, and click to
track (a tracker request queued here and run off the web process by the app's track runner, its
frames read back by polling or as server-sent events). The web process never runs a video model."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from engine.db.session import session_scope
from engine.domain.vocabulary import TrackState
from engine.ports import JobNotEnqueued, TrackRunner
from engine.services import video_review
from engine.settings import Settings
from engine.stores import make_store
from web.deps import Annotator, ImageReader, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Count, Id
from web.schemas_video import MaskletFramesOut, TrackAccepted, TrackFramesOut, TrackIn

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/video", tags=["video"])
#: how often the event stream reads a request's new frames, and how long it streams at most
EVENT_POLL_S = 0.2
EVENT_TIMEOUT_S = 120.0
FINISHED = (TrackState.DONE.value, TrackState.FAILED.value)


async def get_tracking(request: Request) -> TrackRunner:
    """The app's track runner (a port wired by the composition root), or 503."""
    tracking: TrackRunner | None = getattr(request.app.state, "tracking", None)
    if tracking is None:
        raise HTTPException(503, "this server runs no tracker (no track runner is wired in)")
    return tracking


TrackingDep = Annotated[TrackRunner, Depends(get_tracking)]


@contextlib.contextmanager
def _found() -> Iterator[None]:
    try:
        yield
    except video_review.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/{video_id}/frames/{index}", responses={200: {"content": {"image/jpeg": {}}}})
def frame(video_id: Id, index: Count, request: Request, _: ImageReader, session: SessionDep,
          settings: SettingsDep) -> Response:
    """A sampled frame of a video (JPEG)."""
    with _found():
        key = video_review.frame_key(session, video_id, index)
    etag = f'"{key.rsplit("/", 1)[-1]}"'  # the key names the frame's content
    headers = {"etag": etag, "cache-control": "private, max-age=86400, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    try:
        data = make_store(settings).open_bytes(key)
    except (FileNotFoundError, ValueError):
        raise HTTPException(410, f"frame {index} of video {video_id} is missing from the store") from None
    return Response(data, media_type="image/jpeg", headers=headers)


@router.get("/masklets/{mask_id}/frames", response_model=MaskletFramesOut)
def masklet_frames(mask_id: Id, _: ImageReader, session: SessionDep, start: Count = 0,
                   end: Count | None = None) -> Any:
    """A masklet's masks on the frames ``start..end`` (inclusive), at most 500 per call (``next``: the rest)."""
    with _found():
        return video_review.masklet_frames(session, mask_id, start, end)


@router.post("/tasks/{task_id}/track", response_model=TrackAccepted, status_code=202, responses={
    409: {"description": "lease_lost: the task is not leased to you"},
    503: {"description": "no track runner, or the request could not be handed to the workers"}})
def track(task_id: Id, body: TrackIn, principal: Annotator, session: SessionDep, settings: SettingsDep,
          tracking: TrackingDep) -> TrackAccepted:
    """Click on a frame of a video correction you hold: the object's mask there, then propagated
    forward and backward over a window of frames, on a worker. Read the frames from
    ``/video/track/{request_id}`` (or its ``/events``) as they arrive."""
    ask = video_review.TrackAsk(body.frame_index, [(x, y, int(label)) for x, y, label in body.points], body.mask_id)
    row = video_review.request_track(session, task_id, principal.user_id, ask,
                                     window_frames=settings.video.window_frames,
                                     max_points=settings.video.max_track_points)
    accepted = TrackAccepted(request_id=row.id, state=row.state.value, window=(row.window_start or 0,
                                                                                row.window_end or 0))
    session.commit()  # the runner reads the request: it must be there first
    try:
        tracking.submit(row.id)
    except JobNotEnqueued as exc:
        video_review.fail_request(session, row.id, str(exc))
        session.commit()
        raise
    return accepted


@router.get("/track/{request_id}", response_model=TrackFramesOut)
def track_frames(request_id: Id, principal: Annotator, session: SessionDep, after: Count = 0) -> Any:
    """Your tracker request, with its frames that arrived after ``after`` (a seq), in order, at most 200."""
    with _found():
        return video_review.track_frames(session, request_id, principal.user_id, after)


def _poll(settings: Settings, request_id: int, user_id: int, after: int) -> dict[str, Any]:
    """One short transaction: the request's state and its frames after ``after``."""
    with session_scope(settings.db_url) as session:
        return video_review.track_frames(session, request_id, user_id, after)


@router.get("/track/{request_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def track_events(request_id: Id, principal: Annotator, settings: SettingsDep, request: Request,
                       after: Count = 0, timeout_s: float = Query(EVENT_TIMEOUT_S, gt=0, le=EVENT_TIMEOUT_S),
                       ) -> StreamingResponse:
    """Server-sent events: one ``frame`` event per frame as it arrives (``id``: its seq; the data as in
    ``/video/track/{request_id}``'s frames), then one ``end`` event with the request's state — when
    it finished, or after ``timeout_s`` (reconnect with ``after`` or Last-Event-ID to go on)."""
    last = request.headers.get("last-event-id", "")
    after = max(after, int(last)) if last.isdigit() and len(last) < 10 else after
    try:
        first = await run_in_threadpool(_poll, settings, request_id, principal.user_id, after)
    except video_review.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    stream = _events(settings, request, request_id, principal.user_id, first, after, timeout_s)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def _events(settings: Settings, request: Request, request_id: int, user_id: int, data: dict[str, Any],
                  after: int, timeout_s: float) -> AsyncIterator[bytes]:
    deadline = anyio.current_time() + timeout_s
    while True:
        for f in data["frames"]:
            after = f["seq"]
            yield b"id: %d\nevent: frame\ndata: %s\n\n" % (after, orjson.dumps(f))
        finished = data["state"] in FINISHED and len(data["frames"]) < video_review.MAX_TRACK_FRAMES
        if finished or anyio.current_time() >= deadline or await request.is_disconnected():
            end = {"request_id": request_id, "state": data["state"], "error": data["error"],
                   "frames_done": data["frames_done"], "timed_out": not finished}
            yield b"event: end\ndata: %s\n\n" % orjson.dumps(end)
            return
        if not data["frames"]:
            await anyio.sleep(EVENT_POLL_S)
        data = await run_in_threadpool(_poll, settings, request_id, user_id, after)
