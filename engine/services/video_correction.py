"""A video pair's correction (the same verdict, task kind and decision model as an image's): the
masklets it keeps, cut to a frame range or whole, and the masklets it adds from the task's finished
tracker requests. A masklet not listed is deleted (the decision model rejects it).

A cut keeps the masklet's frames inside the range as a NEW masklet (the cut one is rejected, so the
decision model's "exactly these masks" holds, as it does for an image's drawn masks); a range that
covers the whole masklet keeps it as it is. A tracked masklet is made of the request's frames where
the object is present (inside the range, if one is given)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import HumanTask, ImageConcept, Mask, MaskletFrame, TrackFrame, TrackRequest, Video
from engine.domain.masks import RleMask
from engine.domain.vocabulary import Decider, MaskState, TrackState
from engine.repositories import labels as labels_repo
from engine.repositories.model_versions import source_version
from engine.services.corrections import HUMAN_MASK_SOURCE
from engine.services.verdict_input import MaskIn, VerdictError, VerdictIn


@dataclass(frozen=True)
class _New:
    """A masklet to make: from a masklet's frames (``mask_id``: a cut) or a tracker request's (``track_id``)."""

    first: int
    last: int
    is_crowd: bool
    mask_id: int | None = None
    track_id: int | None = None


@dataclass
class VideoCorrection:
    """A video correction, checked (engine/services/corrections.py ``Correction``)."""

    video_id: int
    height: int
    width: int
    masks: list[MaskIn]
    kept_masks: dict[int, bool] = field(default_factory=dict)
    new: list[_New] = field(default_factory=list)

    @property
    def kept(self) -> dict[int, bool]:
        return self.kept_masks

    @property
    def n_new(self) -> int:
        return len(self.new)

    def recorded(self, *, whole: bool = False) -> list[dict[str, Any]]:
        return [{"mask_id": m.mask_id, "track_id": m.track_id, "tool": m.tool, "is_crowd": m.is_crowd,
                 "frame_range": list(m.frame_range) if m.frame_range is not None else None} for m in self.masks]

    def add(self, session: Session, pair_id: int) -> list[int]:
        version = source_version(session, HUMAN_MASK_SOURCE)
        ids = []
        for new in self.new:
            frames = _frames_of(session, new)
            largest = max(frames, key=lambda f: f.area)
            row = labels_repo.add_mask(session, pair_id, version.id, _rle(largest, self.height, self.width),
                                       score=None, is_crowd=new.is_crowd)
            row.first_frame, row.last_frame = frames[0].frame_index, frames[-1].frame_index
            row.state, row.decided_by = MaskState.ACCEPTED, Decider.HUMAN
            session.flush()
            session.add_all(MaskletFrame(mask_id=row.id, frame_index=f.frame_index, rle_counts=f.rle_counts,
                                         bbox_x=f.bbox_x, bbox_y=f.bbox_y, bbox_w=f.bbox_w, bbox_h=f.bbox_h,
                                         area=f.area, score=f.score) for f in frames)
            ids.append(row.id)
        session.flush()
        return ids


def video_of(session: Session, pair_id: int) -> Video | None:
    """The video of a video pair (None: an image pair)."""
    video_id = session.scalar(select(ImageConcept.video_id).where(ImageConcept.id == pair_id))
    return None if video_id is None else session.get(Video, video_id)


def check(session: Session, task: HumanTask, video: Video, body: VerdictIn) -> VideoCorrection:
    """Every item keeps a masklet of the pair or names a finished tracker request of this task, once;
    a range lies inside the video and leaves at least one frame with the object. ``VerdictError`` otherwise."""
    own = {m.id: (m.first_frame, m.last_frame) for m in session.execute(
        select(Mask.id, Mask.first_frame, Mask.last_frame).where(Mask.pair_id == task.pair_id))}
    out = VideoCorrection(video.id, video.height, video.width, list(body.masks))
    seen: set[tuple[str, int]] = set()
    for i, m in enumerate(body.masks):
        if m.rle is not None or (m.mask_id is None) == (m.track_id is None):
            raise VerdictError(f"mask {i}: a video correction gives mask_id (a kept masklet) or track_id (a tracked "
                               "one), not rle")
        key = ("mask", m.mask_id) if m.mask_id is not None else ("track", m.track_id or 0)
        if key in seen:
            raise VerdictError(f"mask {i}: {key[0]} {key[1]} is listed twice")
        seen.add(key)
        if m.frame_range is not None and not 0 <= m.frame_range[0] <= m.frame_range[1] < video.frame_count:
            raise VerdictError(f"mask {i}: frame_range {list(m.frame_range)} is not a range of frames "
                               f"0..{video.frame_count - 1}")
        if m.mask_id is not None:
            _check_kept(session, out, i, m, own)
        else:
            _check_tracked(session, out, i, m, task.id)
    return out


def _check_kept(session: Session, out: VideoCorrection, i: int, m: MaskIn,
                own: dict[int, tuple[int | None, int | None]]) -> None:
    assert m.mask_id is not None
    if m.mask_id not in own:
        raise VerdictError(f"mask {i}: mask {m.mask_id} is not a masklet of this task")
    first, last = own[m.mask_id]
    if first is None or last is None:
        raise VerdictError(f"mask {i}: mask {m.mask_id} is not a masklet")
    if m.frame_range is None or (m.frame_range[0] <= first and m.frame_range[1] >= last):
        out.kept_masks[m.mask_id] = m.is_crowd
        return
    a, b = m.frame_range
    n = session.scalar(select(func.count()).select_from(MaskletFrame).where(
        MaskletFrame.mask_id == m.mask_id, MaskletFrame.frame_index.between(a, b)))
    if not n:
        raise VerdictError(f"mask {i}: masklet {m.mask_id} has no frame in {a}..{b}")
    out.new.append(_New(a, b, m.is_crowd, mask_id=m.mask_id))


def _check_tracked(session: Session, out: VideoCorrection, i: int, m: MaskIn, task_id: int) -> None:
    req = session.get(TrackRequest, m.track_id)
    if req is None or req.task_id != task_id:
        raise VerdictError(f"mask {i}: tracker request {m.track_id} is not one of this task's")
    if req.state != TrackState.DONE:
        raise VerdictError(f"mask {i}: tracker request {m.track_id} is {req.state.value}, not done")
    a, b = m.frame_range or (0, 2**31 - 1)
    n = session.scalar(select(func.count()).select_from(TrackFrame).where(
        TrackFrame.request_id == req.id, TrackFrame.rle_counts.is_not(None), TrackFrame.frame_index.between(a, b)))
    if not n:
        raise VerdictError(f"mask {i}: tracker request {m.track_id} found the object on no frame"
                           + ("" if m.frame_range is None else f" in {a}..{b}"))
    out.new.append(_New(a, b, m.is_crowd, track_id=req.id))


def _frames_of(session: Session, new: _New) -> list[Any]:
    """The frames of a new masklet (frame order): its source's frames with the object inside the range."""
    if new.mask_id is not None:
        return list(session.scalars(select(MaskletFrame).where(
            MaskletFrame.mask_id == new.mask_id, MaskletFrame.frame_index.between(new.first, new.last))
            .order_by(MaskletFrame.frame_index)))
    return list(session.scalars(select(TrackFrame).where(
        TrackFrame.request_id == new.track_id, TrackFrame.rle_counts.is_not(None),
        TrackFrame.frame_index.between(new.first, new.last)).order_by(TrackFrame.frame_index)))


def _rle(frame: Any, height: int, width: int) -> RleMask:
    return RleMask(frame.rle_counts, height, width, (frame.bbox_x, frame.bbox_y, frame.bbox_w, frame.bbox_h),
                   frame.area)
