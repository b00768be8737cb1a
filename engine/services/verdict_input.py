"""What a verdict's submission may carry: the input types (``VerdictIn``, ``MaskIn``), their bounds,
and the checks that a submission fits its task (``validate``: label, active time, masks for the kind;
``check_masks``: a correction's masks against its pair and image). Every failure is a ``VerdictError``
(HTTP 422). engine/services/annotation.py submits what passes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import HumanTask, Image, Mask
from engine.domain.masks import MaskError, from_coco_segmentation
from engine.domain.vocabulary import LABELS, CorrectionLabel, TaskKind

MAX_MASKS = 256
MAX_ACTIVE_MS = 24 * 3600 * 1000


class VerdictError(ValueError):
    """The submission is invalid (HTTP 422)."""


@dataclass(frozen=True)
class MaskIn:
    """A mask submitted with a correction: a new one (``rle``) or a kept candidate (``mask_id``); of a
    video pair, a kept masklet (``mask_id``, optionally cut to ``frame_range``) or a new masklet from a
    finished tracker request of the task (``track_id``, optionally cut to ``frame_range``)."""

    rle: dict[str, Any] | None = None
    mask_id: int | None = None
    is_crowd: bool = False
    tool: str = "brush"  # tracker | brush | existing | exemplar
    exemplar_id: int | None = None  # image: a candidate of a finished exemplar request of the task (with its rle)
    track_id: int | None = None  # video: a tracker request's masklet
    frame_range: tuple[int, int] | None = None  # video: first and last sampled frame kept, inclusive


@dataclass(frozen=True)
class VerdictIn:
    client_id: str
    label: str
    active_ms: int
    started_at: dt.datetime | None = None
    masks: list[MaskIn] = field(default_factory=list)
    comment: str | None = None


def validate(task: HumanTask, body: VerdictIn) -> None:
    """The verdict's fields fit the task's kind (a correction's masks are checked against its image later)."""
    if not 8 <= len(body.client_id) <= 64:
        raise VerdictError("client_id must be 8–64 characters")
    if body.label not in LABELS[task.kind]:
        raise VerdictError(f"label {body.label!r} is not one of {', '.join(LABELS[task.kind])} for {task.kind.value}")
    if not 0 <= body.active_ms <= MAX_ACTIVE_MS:
        raise VerdictError("active_ms must lie between 0 and 24 hours")
    if task.kind != TaskKind.CORRECT and body.masks:
        raise VerdictError(f"a {task.kind.value} verdict carries no masks")
    if task.kind == TaskKind.CORRECT:
        _validate_correction(body)


def _validate_correction(body: VerdictIn) -> None:
    if body.label == CorrectionLabel.NOT_PRESENT and body.masks:
        raise VerdictError("not_present means zero masks; remove the masks or submit 'corrected'")
    if body.label == CorrectionLabel.CORRECTED and not body.masks:
        raise VerdictError("'corrected' needs at least one mask; submit not_present for an absent phrase")
    if len(body.masks) > MAX_MASKS:
        raise VerdictError(f"at most {MAX_MASKS} masks per verdict")


def check_masks(session: Session, task: HumanTask, image: Image, body: VerdictIn) -> list[MaskIn]:
    """Every mask decodes at the image's size and is not empty; kept ids belong to the pair."""
    own = set(session.scalars(select(Mask.id).where(Mask.pair_id == task.pair_id)))
    out = []
    for i, m in enumerate(body.masks):
        if m.track_id is not None or m.frame_range is not None:
            raise VerdictError(f"mask {i}: track_id and frame_range are for video tasks")
        if (m.rle is None) == (m.mask_id is None):
            raise VerdictError(f"mask {i}: give either rle (a new mask) or mask_id (a kept candidate)")
        if m.exemplar_id is not None:
            _check_exemplar(session, task, i, m)
        if m.mask_id is not None:
            if m.mask_id not in own:
                raise VerdictError(f"mask {i}: mask {m.mask_id} is not a candidate of this task")
            out.append(m)
            continue
        size = (m.rle or {}).get("size")
        if list(size or []) != [image.height, image.width]:
            raise VerdictError(f"mask {i}: size {size} differs from the image's [{image.height}, {image.width}]")
        try:
            rle = from_coco_segmentation(m.rle, image.height, image.width)
        except MaskError as exc:
            raise VerdictError(f"mask {i}: {exc}") from None
        if rle.area == 0:
            raise VerdictError(f"mask {i} is empty")
        out.append(MaskIn(rle={"size": [rle.height, rle.width], "counts": rle.counts}, is_crowd=m.is_crowd,
                          tool=m.tool, exemplar_id=m.exemplar_id))
    return out


def _check_exemplar(session: Session, task: HumanTask, i: int, m: MaskIn) -> None:
    """A mask from an exemplar request: a new mask (rle) of a finished request of this task."""
    from engine.db.models import ExemplarRequest
    from engine.domain.vocabulary import TrackState

    if m.rle is None:
        raise VerdictError(f"mask {i}: an exemplar mask is sent with its rle")
    req = session.get(ExemplarRequest, m.exemplar_id)
    if req is None or req.task_id != task.id or req.state != TrackState.DONE:
        raise VerdictError(f"mask {i}: exemplar request {m.exemplar_id} is no finished request of this task")
