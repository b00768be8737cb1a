"""Exemplar prompts in correction: boxes around instances (label 1) or wrong detections (label 0) on an
image correction task's image. The web process validates and queues an ``exemplar_requests`` row; a
worker runs SAM 3 with the task's phrase plus the boxes (``run_request``) and stores every matching
instance as candidate masks on the row; the page reads them back (``read_request``) into its working set.

Nothing here loads a model: the proposer is handed in by the worker's model cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Concept, ExemplarRequest, HumanTask, Image, ImageConcept
from engine.domain.masks import encode_mask
from engine.domain.vocabulary import TaskKind, TaskState, TrackState
from engine.ports import ExemplarProposer, Proposal
from engine.services.common import describe, register
from engine.services.queue import LeaseLost
from engine.services.verdict_input import VerdictError

log = logging.getLogger(__name__)
#: most exemplar requests of one task that may wait or run at once
MAX_OPEN_REQUESTS = 4


class ExemplarInvalid(VerdictError):
    """Boxes or labels that do not fit the image (HTTP 422)."""


class ExemplarRefused(RuntimeError):
    """A task that takes no exemplars: not a correction, or not on an image (HTTP 409)."""


class NotFound(LookupError):
    """No such exemplar request of the caller's."""


@dataclass(frozen=True)
class ExemplarOutcome:
    request_id: int
    state: str  # a TrackState value, or "missing"
    masks: int
    error: str | None = None


def request_exemplars(session: Session, task_id: int, user_id: int, boxes: Sequence[Sequence[float]],
                      labels: Sequence[int], *, max_boxes: int) -> ExemplarRequest:
    """A queued request for an image correction task the caller holds (flushed, not committed: the caller
    commits, then hands the id to the runner)."""
    task = session.get(HumanTask, task_id)
    if task is None or task.state != TaskState.LEASED or task.lease_owner_id != user_id:
        raise LeaseLost(f"task {task_id} is not leased to you (it expired or was done)")
    if task.kind != TaskKind.CORRECT:
        raise ExemplarRefused(f"a {task.kind.value} task takes no exemplars: they are drawn in a correction")
    image_id = session.scalar(select(ImageConcept.image_id).where(ImageConcept.id == task.pair_id))
    image = session.get(Image, image_id) if image_id is not None else None
    if image is None:
        raise ExemplarRefused(f"task {task_id} is not an image task")
    check_boxes(boxes, labels, image.width, image.height, max_boxes)
    waiting = session.scalars(select(ExemplarRequest.id).where(
        ExemplarRequest.task_id == task.id,
        ExemplarRequest.state.in_([TrackState.QUEUED, TrackState.RUNNING]))).all()
    if len(waiting) >= MAX_OPEN_REQUESTS:
        raise ExemplarInvalid(f"{len(waiting)} exemplar requests of this task are still running; wait for one")
    row = ExemplarRequest(task_id=task.id, user_id=user_id, image_id=image.id,
                          boxes=[[float(v) for v in box] for box in boxes], labels=[int(x) for x in labels],
                          state=TrackState.QUEUED)
    session.add(row)
    session.flush()
    return row


def check_boxes(boxes: Sequence[Sequence[float]], labels: Sequence[int], width: int, height: int,
                max_boxes: int) -> None:
    """1..max_boxes boxes [x0, y0, x1, y1] inside the image with a positive area, one label 0/1 each."""
    if not 1 <= len(boxes) <= max_boxes:
        raise ExemplarInvalid(f"give 1 to {max_boxes} boxes")
    if len(labels) != len(boxes):
        raise ExemplarInvalid(f"{len(boxes)} boxes need {len(boxes)} labels, got {len(labels)}")
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        if isinstance(label, bool) or label not in (0, 1):
            raise ExemplarInvalid(f"box {i}: the label is 1 (an instance) or 0 (not one)")
        if len(box) != 4:
            raise ExemplarInvalid(f"box {i}: give [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ExemplarInvalid(f"box {i} is not a box of positive area inside the {width}×{height} image")


def read_request(session: Session, request_id: int, user_id: int) -> dict[str, Any]:
    """The caller's request with its candidate masks once done."""
    req = session.get(ExemplarRequest, request_id)
    if req is None or req.user_id != user_id:
        raise NotFound(f"no exemplar request {request_id} of yours")
    return {"request_id": req.id, "state": req.state.value, "error": req.error, "masks": list(req.result or [])}


def fail_request(session: Session, request_id: int, error: str, *, running: bool = False) -> None:
    """A request that could not be handed to a runner (or whose runner gave up): failed with why."""
    req = session.get_one(ExemplarRequest, request_id)
    if req.state == TrackState.QUEUED or (running and req.state == TrackState.RUNNING):
        req.state, req.error, req.finished_at = TrackState.FAILED, error[:2000], utcnow()


def run_request(session: Session, request_id: int, load_proposer: Callable[[], ExemplarProposer],
                image_of: Callable[[Session, int], PILImage.Image], *, score_threshold: float,
                max_masks: int) -> ExemplarOutcome:
    """Run the request on a worker: the phrase and boxes through the proposer, the masks scored at least
    ``score_threshold`` (best first, at most ``max_masks``) stored on the row. Commits itself."""
    claimed = _claim(session, request_id)
    if isinstance(claimed, ExemplarOutcome):
        return claimed
    image_id, phrase, boxes, labels = claimed
    try:
        proposer = load_proposer()
        version_id = register(session, proposer.stamp).id
        image = image_of(session, image_id)
        found = proposer.propose_with_exemplars(f"image:{image_id}", image, phrase, boxes, labels)
        result = _result(found, image.size, score_threshold, max_masks)
    except Exception as exc:  # noqa: BLE001 - the request fails with its reason
        log.exception("exemplar request %s failed", request_id)
        session.rollback()
        return _finish(session, request_id, TrackState.FAILED, describe(exc), None, None)
    return _finish(session, request_id, TrackState.DONE, None, result, version_id)


def _claim(session: Session, request_id: int) -> tuple[int, str, list[tuple[float, float, float, float]],
                                                       list[int]] | ExemplarOutcome:
    req = session.get(ExemplarRequest, request_id, with_for_update=True, populate_existing=True)
    if req is None:
        session.rollback()
        return ExemplarOutcome(request_id, "missing", 0, f"no exemplar request {request_id}")
    if req.state in (TrackState.DONE, TrackState.FAILED):
        out = ExemplarOutcome(request_id, req.state.value, len(req.result or []), req.error)
        session.rollback()
        return out
    phrase = session.scalar(select(Concept.text).join(ImageConcept, ImageConcept.concept_id == Concept.id)
                            .join(HumanTask, HumanTask.pair_id == ImageConcept.id)
                            .where(HumanTask.id == req.task_id))
    req.state, req.started_at, req.error = TrackState.RUNNING, utcnow(), None
    boxes = [(float(a), float(b), float(c), float(d)) for a, b, c, d in req.boxes]
    claimed = (req.image_id, phrase or "", boxes, [int(x) for x in req.labels])
    session.commit()
    return claimed


def _result(found: Sequence[Proposal], size: tuple[int, int], score_threshold: float,
            max_masks: int) -> list[dict[str, Any]]:
    width, height = size
    out: list[dict[str, Any]] = []
    for p in sorted(found, key=lambda p: -p.score):
        if p.score < score_threshold or len(out) >= max_masks:
            break
        if p.mask.shape != (height, width):
            raise ValueError(f"the proposer's mask is {p.mask.shape[1]}×{p.mask.shape[0]}, the image {width}×{height}")
        rle = encode_mask(p.mask)
        if rle.area == 0:
            continue
        out.append({"rle": {"size": [height, width], "counts": rle.counts}, "bbox": list(rle.bbox),
                    "score": round(float(p.score), 4)})
    return out


def _finish(session: Session, request_id: int, state: TrackState, error: str | None,
            result: list[dict[str, Any]] | None, version_id: int | None) -> ExemplarOutcome:
    req = session.get_one(ExemplarRequest, request_id, populate_existing=True)
    req.state, req.error, req.finished_at = state, error, utcnow()
    if result is not None:
        req.result = result
    if version_id is not None:
        req.model_version_id = version_id
    session.commit()
    return ExemplarOutcome(request_id, state.value, len(req.result or []), error)
