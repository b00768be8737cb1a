"""Promotion: which registered version new pipeline runs use, and the backlog it re-scores.

Promoting a verifier version reopens the verify and route stages of every image that has an item
no person has decided (MV: a mask; EV: a pair), in each job that verified it. The caller enqueues
the returned images into the verify stage after commit; the verify stage then judges them with
the promoted version (it never judges human-decided items) and the route stage re-routes on the
newest verdicts (it never overrides a person). Promoting a proposer changes what new runs propose;
its backlog is not re-proposed (that would add candidates next to the ones people are judging)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from engine.db.models import ImageConcept, Mask, ModelVersion, StageItem
from engine.domain.vocabulary import Decider, ModelKind, StageStatus
from engine.repositories import model_versions
from engine.services import flow, route, verify

PROMOTABLE = (ModelKind.PROPOSER, ModelKind.MASK_VERIFIER, ModelKind.EXHAUSTIVITY_VERIFIER)


class PromotionError(ValueError):
    """A version that cannot be promoted (unknown, of a kind that is not promoted, no checkpoint)."""


@dataclass
class Promotion:
    version_id: int
    kind: ModelKind
    previous_id: int | None
    backlog: dict[int, list[int]] = field(default_factory=dict)  # job id → images to verify again

    @property
    def images(self) -> int:
        return sum(len(ids) for ids in self.backlog.values())


def promote(session: Session, version_id: int, *, rescore: bool = True) -> Promotion:
    """Promote a version (flushed; the caller commits, then enqueues ``backlog`` into verify)."""
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise PromotionError(f"no model version {version_id}")
    if row.kind not in PROMOTABLE:
        raise PromotionError(f"a {row.kind.value} version is not promoted; promote one of: "
                             + ", ".join(k.value for k in PROMOTABLE))
    if not row.uri:
        raise PromotionError(f"model version {version_id} has no checkpoint uri to load")
    previous = model_versions.set_promoted(session, row)
    promotion = Promotion(row.id, row.kind, previous.id if previous else None)
    if rescore and row.kind != ModelKind.PROPOSER:
        promotion.backlog = reopen_backlog(session, row.kind)
    return promotion


def undecided_images(kind: ModelKind) -> Select[int | None]:
    """Images with an item of this verifier's kind that no person has decided (a subquery)."""
    if kind == ModelKind.MASK_VERIFIER:
        return (select(ImageConcept.image_id).join(Mask, Mask.pair_id == ImageConcept.id)
                .where(ImageConcept.image_id.is_not(None),
                       or_(Mask.decided_by.is_(None), Mask.decided_by != Decider.HUMAN)))
    return select(ImageConcept.image_id).where(
        ImageConcept.image_id.is_not(None),
        or_(ImageConcept.decided_by.is_(None), ImageConcept.decided_by != Decider.HUMAN))


def reopen_backlog(session: Session, kind: ModelKind) -> dict[int, list[int]]:
    """Set the verify and route rows of the backlog's images back to pending; job → image ids."""
    rows = session.execute(select(StageItem.job_id, StageItem.subject_id).where(
        StageItem.stage == verify.STAGE, StageItem.status != StageStatus.PENDING,
        StageItem.subject_id.in_(undecided_images(kind))).order_by(StageItem.job_id, StageItem.subject_id)).all()
    backlog: dict[int, list[int]] = {}
    for job_id, image_id in rows:
        backlog.setdefault(job_id, []).append(image_id)
    for job_id, ids in backlog.items():
        for i in range(0, len(ids), 1000):
            session.execute(update(StageItem).where(
                StageItem.job_id == job_id, StageItem.stage.in_([verify.STAGE, route.STAGE]),
                StageItem.subject_id.in_(ids[i:i + 1000])).values(status=StageStatus.PENDING, error=None))
        flow.finish_if_complete(session, job_id)  # pending work reopens a finished job
    return backlog
