"""Masklets written as a video model's frames arrive: an object's ``Mask`` row when it first
appears, its per-frame masks (compressed RLE at the stored frames' size) in batches of rows, its
summary (largest frame, frame range, mean score) and the caps when the video is done. Memory holds
one decoded mask at a time and, per masklet, its largest frame's RLE."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from engine.db.models import Mask
from engine.domain.mask_scale import encode_at
from engine.domain.masks import RleMask
from engine.repositories import masklets as masklets_repo

FLUSH_ROWS = 256  # frame rows written per statement


@dataclass
class _Open:
    """A masklet being written."""

    mask: Mask
    pair_id: int
    largest: RleMask
    first: int
    last: int
    frames: int = 0
    score_sum: float = 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / max(self.frames, 1)


@dataclass
class MaskletWriter:
    """Writes the masklets of one video's pairs by one model version; ``size`` is the stored
    frames' (height, width)."""

    session: Session
    version: int
    size: tuple[int, int]
    open: dict[Hashable, _Open] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def add(self, pair_id: int, key: Hashable, frame_index: int, mask: npt.NDArray[np.bool_], score: float) -> None:
        """One object's mask on one frame (at the model's frame size; an empty mask is no frame)."""
        self.add_rle(pair_id, key, frame_index, encode_at(mask, *self.size), score)

    def add_rle(self, pair_id: int, key: Hashable, frame_index: int, rle: RleMask, score: float) -> None:
        """One object's mask on one frame, encoded at the stored frames' size already."""
        if rle.area == 0:
            return
        masklet = self.open.get(key)
        if masklet is None:
            row = masklets_repo.open_masklet(self.session, pair_id, self.version, frame_index, rle, score)
            masklet = self.open[key] = _Open(row, pair_id, rle, frame_index, frame_index)
        if rle.area > masklet.largest.area:
            masklet.largest = rle
        masklet.first, masklet.last = min(masklet.first, frame_index), max(masklet.last, frame_index)
        masklet.frames += 1
        masklet.score_sum += float(score)
        self.pending.append(masklets_repo.frame_row(masklet.mask.id, frame_index, rle, float(score)))
        if len(self.pending) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        masklets_repo.add_frames(self.session, self.pending)
        self.pending = []

    def finish(self, min_frames: int, per_pair: int) -> dict[int, list[Mask]]:
        """Write what is left, drop masklets shorter than ``min_frames`` and all but the best
        ``per_pair`` (by mean score) of each pair; the masklets kept, by pair."""
        self.flush()
        by_pair: dict[int, list[_Open]] = {}
        for masklet in self.open.values():
            by_pair.setdefault(masklet.pair_id, []).append(masklet)
        kept: dict[int, list[Mask]] = {}
        dropped: list[int] = []
        for pair_id, own in by_pair.items():
            best = sorted((m for m in own if m.frames >= min_frames), key=lambda m: -m.mean_score)[:per_pair]
            for masklet in best:
                masklets_repo.close_masklet(masklet.mask, masklet.largest, masklet.first, masklet.last,
                                            masklet.mean_score)
            kept[pair_id] = [m.mask for m in best]
            dropped += [m.mask.id for m in own if all(m is not b for b in best)]
        masklets_repo.drop(self.session, dropped)
        self.open = {}
        return kept
