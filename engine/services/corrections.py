"""What a correction keeps and adds, checked against its pair, as the correct handler of
engine/services/annotation.py applies it through the decision model (``decisions.correct``: exactly
the kept masks and the new ones are the pair's).

Two media, one shape (:class:`Correction`): an image's correction keeps candidate masks and adds the
masks a person drew (:class:`DrawnMasks`, here); a video's keeps masklets, cuts them to a frame range
and adds masklets from tracker requests (engine/services/video_correction.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from engine.db.models import ExemplarRequest, Image
from engine.domain.masks import from_coco_segmentation
from engine.domain.vocabulary import Decider, MaskState
from engine.repositories import labels as labels_repo
from engine.repositories.model_versions import source_version
from engine.services.verdict_input import MaskIn

#: the pseudo model version of masks people made (drawn, clicked, cut, tracked)
HUMAN_MASK_SOURCE = "human-annotation"


class Correction(Protocol):
    """A correction's masks, checked: what it keeps, how many it adds, and how to store the added ones."""

    @property
    def kept(self) -> dict[int, bool]:
        """Kept mask id → the crowd flag the person gave it."""

    @property
    def n_new(self) -> int:
        """How many masks the correction adds."""

    def recorded(self, *, whole: bool = False) -> list[dict[str, Any]]:
        """The masks as the verdict's payload records them; ``whole``: with what the new ones need to
        be made again (a conflict stores the verdict without applying it)."""

    def add(self, session: Session, pair_id: int) -> list[int]:
        """Store the added masks, accepted by a person (the decision model said so); their ids."""


def exemplar_prompt(session: Session, request_id: int) -> dict[str, Any] | None:
    """What prompted a mask a person kept from an exemplar request (``masks.prompt``)."""
    req = session.get(ExemplarRequest, request_id)
    if req is None:
        return None
    return {"exemplars": {"request_id": req.id, "boxes": req.boxes, "labels": req.labels},
            "model_version_id": req.model_version_id}


@dataclass(frozen=True)
class DrawnMasks:
    """An image's correction: kept candidates (``mask_id``) and drawn masks (``rle``), checked by
    engine/services/verdict_input.py ``check_masks``."""

    image: Image
    masks: list[MaskIn]

    @property
    def kept(self) -> dict[int, bool]:
        return {m.mask_id: m.is_crowd for m in self.masks if m.mask_id is not None}

    @property
    def n_new(self) -> int:
        return sum(1 for m in self.masks if m.rle is not None)

    def recorded(self, *, whole: bool = False) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in self.masks:
            item: dict[str, Any] = {"mask_id": m.mask_id, "tool": m.tool, "is_crowd": m.is_crowd}
            if m.exemplar_id is not None:
                item["exemplar_id"] = m.exemplar_id
            if whole:
                item["rle"] = m.rle
            out.append(item)
        return out

    def add(self, session: Session, pair_id: int) -> list[int]:
        version = source_version(session, HUMAN_MASK_SOURCE)
        rows = []
        for m in self.masks:
            if m.rle is not None:
                rle = from_coco_segmentation(m.rle, self.image.height, self.image.width)
                row = labels_repo.add_mask(session, pair_id, version.id, rle, score=None, is_crowd=m.is_crowd)
                row.state, row.decided_by = MaskState.ACCEPTED, Decider.HUMAN
                if m.exemplar_id is not None:
                    row.prompt = exemplar_prompt(session, m.exemplar_id)
                rows.append(row)
        session.flush()
        return [r.id for r in rows]
