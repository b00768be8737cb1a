"""The video page's side of review: what a video task shows (the video, its masklets, where its frames
are), a masklet's frames page by page, and the page's tracker requests (a click on a frame, queued
here, run on a worker by engine/services/track.py, read back frame by frame as they arrive).

Nothing here runs a model: the web process only writes a queued ``track_requests`` row and reads
``track_frames`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import (
    Caption,
    HumanTask,
    ImageConcept,
    Mask,
    MaskletFrame,
    TrackFrame,
    TrackRequest,
    Video,
    VideoFrame,
)
from engine.domain.vocabulary import MaskState, MediaKind, TaskKind, TaskState, TrackState
from engine.services.queue import LeaseLost
from engine.services.verdict_input import VerdictError

#: most masklet frames one call returns
MAX_MASKLET_FRAMES = 500
#: most tracker frames one call returns
MAX_TRACK_FRAMES = 200
#: most tracker requests of one task that may wait or run at once
MAX_OPEN_REQUESTS = 8


class TrackRefused(VerdictError):
    """A tracker request that does not fit its task or video (HTTP 422, as an invalid verdict)."""


class NotFound(LookupError):
    """No such video frame, masklet or tracker request (for the caller)."""


#: where the page reads a video's sampled frames: ``{video_id}`` and ``{index}`` (0-based) filled in by the page
FRAME_URL = "/api/v1/video/{video_id}/frames/{index}"


# ------------------------------------------------------------------------------------ task payload
def describe(session: Session, task: HumanTask, video_id: int) -> dict[str, Any]:
    """What a video task adds to the common task fields (engine/services/annotation.py ``describe``):
    the video, its masklets (verify_mask: the task's one; the other kinds: the pair's not rejected),
    the frame URL template and the video's first caption. ``color_index`` is the masklet's place among
    all the pair's masklets (by id), so a masklet keeps its colour from task to task."""
    video = session.execute(select(Video.id, Video.width, Video.height, Video.frame_count, Video.sample_fps,
                                   Video.fps, Video.duration_s).where(Video.id == video_id)).one()
    caption = session.scalar(select(Caption.text).where(Caption.video_id == video_id).order_by(Caption.id).limit(1))
    rows = session.execute(select(Mask.id, Mask.first_frame, Mask.last_frame, Mask.score, Mask.is_crowd, Mask.state)
                           .where(Mask.pair_id == task.pair_id).order_by(Mask.id)).all()
    asked = task.mask_id if task.is_gold else None  # a gold copy's masklet shows as an open task's does
    masklets = []
    for color, m in enumerate(rows):
        shown = m.id == task.mask_id if task.kind == TaskKind.VERIFY_MASK else m.state != MaskState.REJECTED
        if shown:
            masklets.append({"id": m.id, "first_frame": m.first_frame, "last_frame": m.last_frame, "score": m.score,
                             "is_crowd": m.is_crowd, "color_index": color,
                             "state": (MaskState.CANDIDATE if m.id == asked else MaskState(m.state)).value})
    return {
        "media": MediaKind.VIDEO.value, "image": None, "masks": [], "caption": caption,
        "video": {"id": video.id, "width": video.width, "height": video.height, "frame_count": video.frame_count,
                  "sample_fps": video.sample_fps, "fps": video.fps, "duration_s": video.duration_s},
        "masklets": masklets, "frame_url": FRAME_URL,
    }


# ------------------------------------------------------------------------------------ frames
def frame_key(session: Session, video_id: int, index: int) -> str:
    """The media-store key of a video's sampled frame ``index``."""
    key = session.scalar(select(VideoFrame.storage_key).where(VideoFrame.video_id == video_id,
                                                                   VideoFrame.index == index))
    if key is None:
        raise NotFound(f"video {video_id} has no frame {index}")
    return key


def masklet_frames(session: Session, mask_id: int, start: int = 0, end: int | None = None,
                   limit: int = MAX_MASKLET_FRAMES) -> dict[str, Any]:
    """A masklet's per-frame masks with ``start <= frame_index <= end``, in frame order, at most
    ``limit`` of them; ``next`` is the frame index to ask from for the rest (None: no more)."""
    mask = session.execute(select(Mask.id, Mask.height, Mask.width, Mask.first_frame)
                           .where(Mask.id == mask_id)).first()
    if mask is None or mask.first_frame is None:
        raise NotFound(f"no masklet {mask_id}")
    query = select(MaskletFrame).where(MaskletFrame.mask_id == mask_id, MaskletFrame.frame_index >= start)
    if end is not None:
        query = query.where(MaskletFrame.frame_index <= end)
    rows = list(session.scalars(query.order_by(MaskletFrame.frame_index).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    size = [mask.height, mask.width]
    return {"mask_id": mask_id, "next": rows[-1].frame_index + 1 if more else None,
            "frames": [{"frame_index": f.frame_index, "rle": {"size": size, "counts": f.rle_counts},
                        "bbox": [f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h], "area": f.area, "score": f.score}
                       for f in rows]}


# ------------------------------------------------------------------------------------ tracker requests
@dataclass(frozen=True)
class TrackAsk:
    """A click on a frame of a video task: points (x, y, label) in the frame's pixels."""

    frame_index: int
    points: Sequence[tuple[float, float, int]]
    mask_id: int | None = None  # the masklet being fixed


def track_window(frame_index: int, frame_count: int, window_frames: int) -> tuple[int, int]:
    """The frames a click propagates over: ``window_frames`` around the clicked one, inside the video."""
    half = window_frames // 2
    return max(0, frame_index - half), min(frame_count - 1, frame_index + half)


def request_track(session: Session, task_id: int, user_id: int, ask: TrackAsk, *, window_frames: int,
                  max_points: int) -> TrackRequest:
    """A queued tracker request for a video task the caller holds (flushed, not committed: the caller
    commits, then hands the request's id to the track runner)."""
    task = session.get(HumanTask, task_id)
    if task is None or task.state != TaskState.LEASED or task.lease_owner_id != user_id:
        raise LeaseLost(f"task {task_id} is not leased to you (it expired or was done)")
    if task.kind != TaskKind.CORRECT:
        raise TrackRefused(f"a {task.kind.value} task takes no clicks: objects are added or fixed in a correction")
    video_id = session.scalar(select(ImageConcept.video_id).where(ImageConcept.id == task.pair_id))
    video = session.get(Video, video_id) if video_id is not None else None
    if video is None:
        raise TrackRefused(f"task {task_id} is not a video task")
    _check_ask(session, task, video, ask, max_points)
    waiting = session.scalars(select(TrackRequest.id).where(
        TrackRequest.task_id == task.id, TrackRequest.state.in_([TrackState.QUEUED, TrackState.RUNNING]))).all()
    if len(waiting) >= MAX_OPEN_REQUESTS:
        raise TrackRefused(f"{len(waiting)} clicks of this task are still being tracked; wait for one to finish")
    first, last = track_window(ask.frame_index, video.frame_count, window_frames)
    row = TrackRequest(task_id=task.id, user_id=user_id, video_id=video.id, frame_index=ask.frame_index,
                       points=[[float(x), float(y), int(label)] for x, y, label in ask.points], mask_id=ask.mask_id,
                       state=TrackState.QUEUED, window_start=first, window_end=last, frames_done=0)
    session.add(row)
    session.flush()
    return row


def _check_ask(session: Session, task: HumanTask, video: Video, ask: TrackAsk, max_points: int) -> None:
    if not 0 <= ask.frame_index < video.frame_count:
        raise TrackRefused(f"frame {ask.frame_index} is outside the video's frames 0..{video.frame_count - 1}")
    if not 1 <= len(ask.points) <= max_points:
        raise TrackRefused(f"give 1 to {max_points} points")
    for i, (x, y, label) in enumerate(ask.points):
        if label not in (0, 1):
            raise TrackRefused(f"point {i}: the label is 1 (positive) or 0 (negative)")
        if not (0 <= x <= video.width and 0 <= y <= video.height):
            raise TrackRefused(f"point {i} lies outside the {video.width}×{video.height} frame")
    if ask.mask_id is not None and session.scalar(select(Mask.pair_id).where(Mask.id == ask.mask_id)) != task.pair_id:
        raise TrackRefused(f"mask {ask.mask_id} is not a masklet of this task")


def track_frames(session: Session, request_id: int, user_id: int, after: int = 0,
                 limit: int = MAX_TRACK_FRAMES) -> dict[str, Any]:
    """A tracker request of the caller's, with its frames that arrived after ``after`` (seq order)."""
    req = session.get(TrackRequest, request_id)
    if req is None or req.user_id != user_id:
        raise NotFound(f"no tracker request {request_id} of yours")
    height, width = session.execute(select(Video.height, Video.width).where(Video.id == req.video_id)).one()
    rows = session.scalars(select(TrackFrame).where(TrackFrame.request_id == request_id, TrackFrame.seq > after)
                           .order_by(TrackFrame.seq).limit(limit)).all()
    frames = [{"seq": f.seq, "frame_index": f.frame_index, "score": f.score,
               "rle": None if f.rle_counts is None else {"size": [height, width], "counts": f.rle_counts},
               "bbox": None if f.rle_counts is None else [f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h]}
              for f in rows]
    return {"request_id": req.id, "state": req.state.value, "error": req.error,
            "window": [req.window_start, req.window_end], "frames_done": req.frames_done, "frames": frames}


def fail_request(session: Session, request_id: int, error: str, *, running: bool = False) -> None:
    """A request that could not be handed to a runner (``running``: or whose only runner gave up on it):
    failed with why (it counts as open no more)."""
    req = session.get_one(TrackRequest, request_id)
    if req.state == TrackState.QUEUED or (running and req.state == TrackState.RUNNING):
        req.state, req.error, req.finished_at = TrackState.FAILED, error[:2000], utcnow()
