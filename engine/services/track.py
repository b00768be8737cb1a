"""Run one tracker request of the video page (``track_requests``): the clicked frame's mask, then the
frames propagated forward and backward over the request's window, each written as a ``track_frames``
row as it arrives and committed every few frames, so the page (polling or streaming) sees them while
the rest are still being propagated.

States: queued → running → done | failed (with the error a person reads). A request delivered twice
(a worker died mid-run and the broker sent it again) starts over while it is still running and is
skipped once it has finished. Unlike the stage services this one commits itself: its whole point is
that each frame is visible as soon as it is made."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import TrackFrame, TrackRequest
from engine.domain.masks import encode_mask
from engine.domain.vocabulary import TrackState
from engine.ports import FrameObjects, FrameSource, VideoTracker
from engine.services.common import describe, register

log = logging.getLogger(__name__)
#: a batch of frames is committed after this many frames or this many seconds, whichever comes first
COMMIT_EVERY_FRAMES = 4
COMMIT_EVERY_S = 0.25


@dataclass(frozen=True)
class TrackOutcome:
    request_id: int
    state: str  # a TrackState value, or "missing" for an unknown request
    frames: int  # frames written by this run (committed)
    error: str | None = None


@dataclass(frozen=True)
class _Claimed:
    video_id: int
    frame_index: int
    points: list[tuple[float, float, int]]
    window: tuple[int, int]


def run_request(session: Session, request_id: int, load_tracker: Callable[[], VideoTracker],
                frames_of: Callable[[Session, int], FrameSource]) -> TrackOutcome:
    """Run the request with the tracker ``load_tracker`` gives (built on first use by the caller's
    model cache) over the frames ``frames_of(session, video_id)`` reads; commits as it goes."""
    claimed = _claim(session, request_id)
    if isinstance(claimed, TrackOutcome):
        return claimed
    try:
        tracker = load_tracker()
        version_id = register(session, tracker.stamp).id
        frames = frames_of(session, claimed.video_id)
        session.get_one(TrackRequest, request_id).model_version_id = version_id
        session.commit()
        started = time.monotonic()
        stream = tracker.track(frames, claimed.frame_index, claimed.points, window=claimed.window)
        _write_frames(session, request_id, stream, frames.size, started)
    except Exception as exc:  # noqa: BLE001 - the request fails with its reason; the frames written stay
        log.exception("tracker request %s failed", request_id)
        session.rollback()
        return _finish(session, request_id, TrackState.FAILED, describe(exc))
    return _finish(session, request_id, TrackState.DONE, None)


def _claim(session: Session, request_id: int) -> _Claimed | TrackOutcome:
    """Mark the request running (committed); a finished or unknown request is not run again."""
    req = session.get(TrackRequest, request_id, with_for_update=True, populate_existing=True)
    if req is None:
        session.rollback()
        return TrackOutcome(request_id, "missing", 0, f"no tracker request {request_id}")
    if req.state in (TrackState.DONE, TrackState.FAILED):
        state, error = req.state.value, req.error
        session.rollback()
        return TrackOutcome(request_id, state, 0, error)
    if req.window_start is None or req.window_end is None:
        req.window_start = req.window_end = req.frame_index
    session.execute(delete(TrackFrame).where(TrackFrame.request_id == request_id))  # a run delivered again
    req.state, req.started_at, req.frames_done, req.error = TrackState.RUNNING, utcnow(), 0, None
    claimed = _Claimed(req.video_id, req.frame_index, [(float(x), float(y), int(label)) for x, y, label in req.points],
                       (req.window_start, req.window_end))
    session.commit()
    return claimed


def _write_frames(session: Session, request_id: int, stream: Iterator[FrameObjects], size: tuple[int, int],
                  started: float) -> int:
    """Write each propagated frame (the object's mask, or an absent frame); commit the clicked frame alone,
    then in small batches."""
    seen: set[int] = set()
    seq, last_commit, first_s = 0, time.monotonic(), None
    try:
        for frame in stream:
            if frame.frame_index in seen:
                continue
            row = _frame_row(request_id, seq + 1, frame, size)
            seen.add(frame.frame_index)
            seq += 1
            session.add(row)
            first_s = first_s if first_s is not None else time.monotonic() - started
            # the clicked frame at once (the page shows it while the rest propagates), then in small batches
            if seq == 1 or seq % COMMIT_EVERY_FRAMES == 0 or time.monotonic() - last_commit >= COMMIT_EVERY_S:
                _progress(session, request_id, seq, started, first_s)
                last_commit = time.monotonic()
    finally:  # the frames made before a failure stay (the page has shown some of them already)
        _progress(session, request_id, seq, started, first_s)
    return seq


def _frame_row(request_id: int, seq: int, frame: FrameObjects, size: tuple[int, int]) -> TrackFrame:
    obj = next((o for o in frame.objects if o.object_id == 1), frame.objects[0] if frame.objects else None)
    if obj is None:
        return TrackFrame(request_id=request_id, frame_index=frame.frame_index, seq=seq, rle_counts=None, area=0)
    width, height = size
    if obj.mask.shape != (height, width):
        raise ValueError(f"the tracker's mask on frame {frame.frame_index} is {obj.mask.shape[1]}×{obj.mask.shape[0]},"
                         f" the video's frames are {width}×{height}")
    rle = encode_mask(obj.mask)
    if rle.area == 0:
        return TrackFrame(request_id=request_id, frame_index=frame.frame_index, seq=seq, rle_counts=None, area=0,
                          score=float(obj.score))
    x, y, w, h = rle.bbox
    return TrackFrame(request_id=request_id, frame_index=frame.frame_index, seq=seq, rle_counts=rle.counts,
                      bbox_x=x, bbox_y=y, bbox_w=w, bbox_h=h, area=rle.area, score=float(obj.score))


def _progress(session: Session, request_id: int, frames: int, started: float, first_s: float | None) -> None:
    req = session.get_one(TrackRequest, request_id)
    req.frames_done = frames
    req.detail = {"first_frame_s": None if first_s is None else round(first_s, 4),
                  "seconds": round(time.monotonic() - started, 4)}
    session.commit()


def _finish(session: Session, request_id: int, state: TrackState, error: str | None) -> TrackOutcome:
    req = session.get_one(TrackRequest, request_id, populate_existing=True)
    req.state, req.error, req.finished_at = state, error, utcnow()
    frames = req.frames_done
    session.commit()
    return TrackOutcome(request_id, state.value, frames, error)
