"""Masklets: a video pair's masks (``Mask`` rows with a frame range) and their per-frame masks
(``MaskletFrame`` rows, compressed COCO RLE at the ``Mask`` row's height × width)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engine.db.models import Mask, MaskletFrame
from engine.domain.masks import RleMask, validate_mask


def open_masklet(session: Session, pair_id: int, model_version_id: int, frame_index: int, first: RleMask,
                 score: float | None) -> Mask:
    """A new masklet row from its first frame (its summary is set by :func:`close_masklet`); flushed,
    so that its frames can name it."""
    validate_mask(first)
    x, y, w, h = first.bbox
    row = Mask(pair_id=pair_id, model_version_id=model_version_id, rle_counts=first.counts, height=first.height,
               width=first.width, bbox_x=x, bbox_y=y, bbox_w=w, bbox_h=h, area=first.area, score=score,
               first_frame=frame_index, last_frame=frame_index)
    session.add(row)
    session.flush()
    return row


def frame_row(mask_id: int, frame_index: int, rle: RleMask, score: float | None) -> dict[str, Any]:
    """One frame of a masklet as a row for :func:`add_frames` (validated: no invalid RLE is stored)."""
    validate_mask(rle)
    x, y, w, h = rle.bbox
    return {"mask_id": mask_id, "frame_index": frame_index, "rle_counts": rle.counts, "bbox_x": x, "bbox_y": y,
            "bbox_w": w, "bbox_h": h, "area": rle.area, "score": score}


def add_frames(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write frame rows in one statement."""
    if rows:
        session.execute(insert(MaskletFrame), list(rows))


def close_masklet(mask: Mask, largest: RleMask, first_frame: int, last_frame: int, score: float | None) -> None:
    """The masklet's summary: its largest frame's mask, its frame range and its (mean) score."""
    validate_mask(largest)
    mask.rle_counts, mask.height, mask.width, mask.area = largest.counts, largest.height, largest.width, largest.area
    mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h = largest.bbox
    mask.first_frame, mask.last_frame, mask.score = first_frame, last_frame, score


def drop(session: Session, mask_ids: Iterable[int]) -> None:
    """Delete masklets and their frames."""
    ids = list(mask_ids)
    if ids:
        session.execute(delete(MaskletFrame).where(MaskletFrame.mask_id.in_(ids)))
        session.execute(delete(Mask).where(Mask.id.in_(ids)))


def of_pairs(session: Session, pair_ids: Sequence[int]) -> list[Mask]:
    """The pairs' masklets, oldest first."""
    return list(session.scalars(select(Mask).where(Mask.pair_id.in_(pair_ids)).order_by(Mask.id)))


def frame_indices(session: Session, mask_id: int) -> list[int]:
    """The frames a masklet has a mask on, in order."""
    return list(session.scalars(select(MaskletFrame.frame_index).where(MaskletFrame.mask_id == mask_id)
                                .order_by(MaskletFrame.frame_index)))


def frames(session: Session, masks: Sequence[Mask], frame_indices: Iterable[int] | None = None,
           ) -> dict[int, dict[int, RleMask]]:
    """Per masklet id: its masks by frame index (all of its frames, or only ``frame_indices``)."""
    sizes = {m.id: (m.height, m.width) for m in masks}
    query = select(MaskletFrame).where(MaskletFrame.mask_id.in_(list(sizes)))
    if frame_indices is not None:
        query = query.where(MaskletFrame.frame_index.in_(list(frame_indices)))
    out: dict[int, dict[int, RleMask]] = {mask_id: {} for mask_id in sizes}
    for row in session.scalars(query.order_by(MaskletFrame.mask_id, MaskletFrame.frame_index)):
        out[row.mask_id][row.frame_index] = rle_of(row, *sizes[row.mask_id])
    return out


def rle_of(row: MaskletFrame, height: int, width: int) -> RleMask:
    """A stored frame of a masklet as the domain's RLE record."""
    return RleMask(row.rle_counts, height, width, (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h), row.area)
