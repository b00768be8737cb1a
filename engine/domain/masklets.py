"""Masklets: one object's masks across a video's sampled frames, kept as compressed RLE.

A video model hands out boolean masks frame by frame; :class:`MaskletBuilder` encodes each one at once
(COCO compressed RLE with its box and area, :func:`engine.domain.masks.encode_mask`) so memory grows
with the compressed masks only. A :class:`Masklet` knows its first and last frame, its largest frame
(what image-shaped code reads as "the" mask) and its mean score; :func:`pick_frames` chooses evenly
spaced frames of it (what the mask verifier sees) and :func:`cut` keeps a frame range.

Long videos are proposed window by window (:func:`windows`); :class:`IdStitcher` keeps an object's id
across windows: the objects of two consecutive windows that overlap by at least ``threshold`` IoU on the
frames the windows share (:func:`track_iou`, intersection and union summed over those frames) and were
prompted by the same phrase are one object (:func:`stitch`, greedy, best pairs first, one to one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from engine.domain.masks import RleMask, encode_mask, validate_mask


@dataclass(frozen=True)
class MaskletFrame:
    """One frame of a masklet: the sampled frame's index, its mask and the model's score there."""

    frame_index: int
    mask: RleMask
    score: float


def encode_frame(frame_index: int, mask: npt.NDArray[np.generic], score: float) -> MaskletFrame:
    """A boolean H×W mask of one frame → compressed RLE with box and area."""
    return MaskletFrame(frame_index=frame_index, mask=encode_mask(mask), score=float(score))


@dataclass(frozen=True)
class Masklet:
    """One object across frames (frames in order, each with a non-empty mask)."""

    object_id: int
    phrase_index: int
    frames: tuple[MaskletFrame, ...]

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a masklet has at least one frame")

    @property
    def first_frame(self) -> int:
        return self.frames[0].frame_index

    @property
    def last_frame(self) -> int:
        return self.frames[-1].frame_index

    @property
    def largest(self) -> MaskletFrame:
        """The frame of largest area (the earliest of equals)."""
        return max(self.frames, key=lambda f: (f.mask.area, -f.frame_index))

    @property
    def mean_score(self) -> float:
        return float(np.mean([f.score for f in self.frames]))


@dataclass
class MaskletBuilder:
    """Accumulates per-frame masks per object id, compressed as they come.

    Frames must be added in increasing frame order per object (a video model's order); an empty mask
    (the object is absent on that frame) is not stored. ``min_frames``: masklets with fewer frames are
    left out of :meth:`masklets`.
    """

    min_frames: int = 1
    _frames: dict[int, list[MaskletFrame]] = field(default_factory=dict)
    _phrase: dict[int, int] = field(default_factory=dict)

    def add(self, frame_index: int, object_id: int, mask: npt.NDArray[np.generic], score: float,
            phrase_index: int = 0) -> MaskletFrame | None:
        """Encode and keep one object's mask on one frame; None (nothing kept) when the mask is empty."""
        frame = encode_frame(frame_index, mask, score)
        if frame.mask.area == 0:
            return None
        held = self._frames.setdefault(object_id, [])
        if held and held[-1].frame_index >= frame_index:
            raise ValueError(f"object {object_id}: frame {frame_index} after frame {held[-1].frame_index}")
        held.append(frame)
        self._phrase.setdefault(object_id, phrase_index)
        return frame

    def __len__(self) -> int:
        return len(self._frames)

    def masklets(self) -> list[Masklet]:
        """The masklets of at least ``min_frames`` frames, by phrase then object id."""
        out = [Masklet(object_id, self._phrase[object_id], tuple(frames))
               for object_id, frames in self._frames.items() if len(frames) >= self.min_frames]
        return sorted(out, key=lambda m: (m.phrase_index, m.object_id))


def evenly_spaced(count: int, n: int) -> list[int]:
    """``n`` evenly spaced positions among ``count`` (both ends included when n ≥ 2; all when n ≥ count)."""
    if count <= 0 or n <= 0:
        return []
    if n >= count:
        return list(range(count))
    if n == 1:
        return [(count - 1) // 2]
    return sorted({int(i * (count - 1) / (n - 1) + 0.5) for i in range(n)})  # halves round up


def pick_frames(masklet: Masklet, n: int) -> list[MaskletFrame]:
    """``n`` evenly spaced frames of the masklet (all of them when it has fewer)."""
    return [masklet.frames[i] for i in evenly_spaced(len(masklet.frames), n)]


def cut(masklet: Masklet, start: int, end: int) -> Masklet | None:
    """The masklet's frames within ``[start, end]`` (inclusive); None when none is left."""
    if start > end:
        raise ValueError(f"frame range [{start}, {end}] is empty")
    kept = tuple(f for f in masklet.frames if start <= f.frame_index <= end)
    return Masklet(masklet.object_id, masklet.phrase_index, kept) if kept else None


def windows(frame_count: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[start, end)`` of at most ``size`` frames covering ``frame_count`` frames, consecutive ones
    sharing ``overlap`` frames (clamped to half a window: a frame is shared by two windows at most, which
    stitching window after window relies on). One window when the video fits in one."""
    if frame_count <= 0:
        return []
    if size < 2:
        raise ValueError(f"a window holds at least 2 frames, got {size}")
    overlap = max(0, min(overlap, size // 2))
    out = []
    start = 0
    while True:
        end = min(start + size, frame_count)
        out.append((start, end))
        if end >= frame_count:
            return out
        start = end - overlap


# --- stitching windows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """An object's masks on the frames two windows share: {frame index: mask}, and its phrase."""

    phrase_index: int
    masks: Mapping[int, RleMask]


def _coco(mask: RleMask) -> dict[str, Any]:
    validate_mask(mask)
    return {"size": [mask.height, mask.width], "counts": mask.counts.encode()}


def _intersection(a: RleMask, b: RleMask) -> int:
    if a.area == 0 or b.area == 0:
        return 0
    if (a.height, a.width) != (b.height, b.width):
        raise ValueError(f"masks of sizes {a.height}×{a.width} and {b.height}×{b.width}")
    return int(mask_utils.area(mask_utils.merge([_coco(a), _coco(b)], intersect=True)))


def track_iou(a: Mapping[int, RleMask], b: Mapping[int, RleMask]) -> float:
    """IoU of two objects over frames: intersections summed over the frames both have, divided by the
    summed unions over every frame either has (a frame only one of them has counts in the union)."""
    inter = 0
    union = 0
    for frame in set(a) | set(b):
        ma, mb = a.get(frame), b.get(frame)
        i = _intersection(ma, mb) if ma is not None and mb is not None else 0
        inter += i
        union += (ma.area if ma is not None else 0) + (mb.area if mb is not None else 0) - i
    return inter / union if union else 0.0


def stitch(previous: Mapping[int, Track], current: Mapping[int, Track], threshold: float) -> dict[int, int]:
    """Current object id → previous object id for the pairs of the same phrase whose :func:`track_iou` is at
    least ``threshold``; greedy on IoU (best first), each object matched at most once."""
    pairs = []
    for cid, ctrack in current.items():
        for pid, ptrack in previous.items():
            if ctrack.phrase_index != ptrack.phrase_index:
                continue
            iou = track_iou(ptrack.masks, ctrack.masks)
            if iou >= threshold and iou > 0:
                pairs.append((-iou, cid, pid))
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _, cid, pid in sorted(pairs):
        if cid not in matched and pid not in used:
            matched[cid] = pid
            used.add(pid)
    return matched


class IdStitcher:
    """Stable object ids over a video proposed window by window.

    Per window, :meth:`start_window` takes the previous window's objects on the shared frames (by stable id)
    and the new window's objects on the same frames (by the window's own ids) and matches them
    (:func:`stitch`); :meth:`stable_id` then maps a window id to its stable id, giving a fresh one to an
    object seen for the first time.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._next = 1
        self._map: dict[int, int] = {}

    def start_window(self, previous: Mapping[int, Track], current: Mapping[int, Track]) -> dict[int, int]:
        """Forget the last window's ids; match the new window's to the stable ones. Returns the matches."""
        self._map = dict(stitch(previous, current, self.threshold)) if previous and current else {}
        return dict(self._map)

    def stable_id(self, window_id: int) -> int:
        if window_id not in self._map:
            self._map[window_id] = self._next
            self._next += 1
        return self._map[window_id]

    def is_new(self, window_id: int) -> bool:
        """Whether the window id has no stable id yet (not matched, not seen before in this window)."""
        return window_id not in self._map


def tracks(frames: Iterable[tuple[int, Iterable[tuple[int, int, RleMask]]]]) -> dict[int, Track]:
    """Tracks from frames of (frame index, [(object id, phrase index, mask)])."""
    masks: dict[int, dict[int, RleMask]] = {}
    phrase: dict[int, int] = {}
    for frame_index, objects in frames:
        for object_id, phrase_index, mask in objects:
            masks.setdefault(object_id, {})[frame_index] = mask
            phrase.setdefault(object_id, phrase_index)
    return {oid: Track(phrase[oid], m) for oid, m in masks.items()}
