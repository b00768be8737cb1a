"""Per-concept statistics for concept balancing and the coverage views: accepted (ground-truth)
masks and positive pairs, confirmed negatives, the proposer's acceptance and the verifiers'
agreement with people on the concept.

Definitions (all aggregated in SQL, GROUP BY concept; PostgreSQL and SQLite):

- accepted masks / positive pairs / negative pairs: engine/domain/ground_truth.py ``GroundTruth``
  under ``label_source`` (its ground-truth masks, pairs with one, its negative pairs).
- model acceptance: accepted masks over decided (accepted or rejected) masks of the concept.
- human decided: masks and pairs of the concept whose state a person decided (``decided_by``).
- agreement: per target (a mask for mask verification, a pair for exhaustivity) the latest AI
  verdict against the latest human verdict, gold answers excluded, both read as the verifier's
  binary target by ``ground_truth.verifier_target`` (the one mapping calibration uses; the
  person's "not present" on an exhaustivity item shown without boxes is positive, as on the
  dashboard).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.orm import Session, aliased

from engine.balancing_settings import BalancingSettings
from engine.db.models import Concept, ImageConcept, Mask, Verdict
from engine.domain.balancing import ConceptStats, is_saturated, saturated_concepts, skip_pair
from engine.domain.ground_truth import GroundTruth, verifier_target
from engine.domain.vocabulary import HUMAN_SOURCES, Decider, MaskState, VerdictKind, VerdictSource
from engine.services.export_rows import not_gold, standing

TASKS = {VerdictKind.MASK: "mv", VerdictKind.EXHAUSTIVITY: "ev"}
MAX_CONCEPTS = 200  # rows of the coverage view (the dashboard)


@dataclass(frozen=True)
class ConceptCoverage:
    concept_id: int
    text: str
    accepted_masks: int
    positive_pairs: int
    negative_pairs: int
    model_acceptance: float | None
    agreement: float | None
    compared: int
    human_decided: int
    saturated: bool


def concept_stats(session: Session, *, label_source: str = "both",
                  concept_ids: list[int] | None = None) -> list[ConceptStats]:
    """Statistics of every concept with a pair (or of ``concept_ids``), most accepted masks first."""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts: dict[int, str] = {}
    where = [ImageConcept.concept_id.in_(concept_ids)] if concept_ids is not None else []
    for cid, text, n in session.execute(
            select(Concept.id, Concept.text, func.count(ImageConcept.id))
            .join(ImageConcept, ImageConcept.concept_id == Concept.id).where(*where)
            .group_by(Concept.id, Concept.text)):
        texts[cid] = text
        counts[cid]["pairs"] = int(n)
    _mask_counts(session, counts, label_source, where)
    _pair_counts(session, counts, label_source, where)
    _agreement(session, counts, where)
    out = [ConceptStats(concept_id=cid, text=texts[cid], **{k: v for k, v in counts[cid].items() if k != "pairs"})
           for cid in texts]
    return sorted(out, key=lambda s: (-s.accepted_masks, s.text))


def _sum(cond: Any) -> Any:
    return func.coalesce(func.sum(cast(cond, Integer)), 0)


def _mask_counts(session: Session, counts: dict[int, dict[str, int]], label_source: str, where: list[Any]) -> None:
    truth = GroundTruth(label_source)
    rows = session.execute(
        select(ImageConcept.concept_id, _sum(truth.mask_is_ground_truth()),
               _sum(Mask.state != MaskState.CANDIDATE), _sum(Mask.decided_by == Decider.HUMAN))
        .join(Mask, Mask.pair_id == ImageConcept.id).where(*where).group_by(ImageConcept.concept_id))
    for cid, accepted, decided, human in rows:
        counts[cid]["accepted_masks"] = int(accepted)
        counts[cid]["decided_masks"] = int(decided)
        counts[cid]["human_decided"] += int(human)


def _pair_counts(session: Session, counts: dict[int, dict[str, int]], label_source: str, where: list[Any]) -> None:
    truth = GroundTruth(label_source)
    rows = session.execute(
        select(ImageConcept.concept_id, _sum(truth.has_ground_truth_mask()), _sum(truth.negative_pair()),
               _sum(ImageConcept.decided_by == Decider.HUMAN))
        .where(*where).group_by(ImageConcept.concept_id))
    for cid, positive, negative, human in rows:
        counts[cid]["positive_pairs"] = int(positive)
        counts[cid]["negative_pairs"] = int(negative)
        counts[cid]["human_decided"] += int(human)


def _latest(sources: Any, kind: VerdictKind, name: str, where: list[Any]) -> Any:
    """The latest verdict of ``kind`` from ``sources`` per target (on the concepts ``where`` names)."""
    v = aliased(Verdict)
    scope = [v.pair_id.in_(select(ImageConcept.id).where(*where))] if where else []
    latest = (select(func.max(v.id).label("id")).where(v.kind == kind, sources(v), not_gold(v), standing(v), *scope)
              .group_by(v.pair_id, v.mask_id).subquery())
    return select(Verdict.pair_id, Verdict.mask_id, Verdict.label, Verdict.payload).join(
        latest, latest.c.id == Verdict.id).subquery(name)


def _agreement(session: Session, counts: dict[int, dict[str, int]], where: list[Any]) -> None:
    for kind, task in TASKS.items():
        human = _latest(lambda v: v.source.in_(HUMAN_SOURCES), kind, f"human_{task}", where)
        ai = _latest(lambda v: v.source == VerdictSource.AI, kind, f"ai_{task}", where)
        same = and_(ai.c.pair_id == human.c.pair_id,
                    func.coalesce(ai.c.mask_id, 0) == func.coalesce(human.c.mask_id, 0))
        boxes = func.coalesce(ai.c.payload["boxes"].as_integer(), 0) > 0
        rows = session.execute(
            select(ImageConcept.concept_id, ai.c.label, human.c.label, boxes, func.count())
            .select_from(ai).join(human, same).join(ImageConcept, ImageConcept.id == ai.c.pair_id)
            .where(*where).group_by(ImageConcept.concept_id, ai.c.label, human.c.label, boxes))
        for cid, ai_label, human_label, has_boxes, n in rows:
            has_masks = bool(has_boxes) if task == "ev" else True
            agree = verifier_target(task, ai_label, has_masks=True) == verifier_target(
                task, human_label, has_masks=has_masks)
            counts[cid]["compared"] += int(n)
            counts[cid]["agreed"] += int(n) if agree else 0


def balance_pairs(session: Session, by_image: dict[int, list[tuple[int, str]]],
                  settings: BalancingSettings) -> dict[int, list[str]]:
    """Take the pairs of saturated concepts out of ``by_image`` (image id → [(pair id, phrase)]),
    keeping the explored share; returns image id → the phrases left out."""
    pair_ids = [pair_id for todo in by_image.values() for pair_id, _ in todo]
    if not settings.enabled or not pair_ids:
        return {}
    concept_of: dict[int, int] = {pair_id: concept_id for pair_id, concept_id in session.execute(
        select(ImageConcept.id, ImageConcept.concept_id).where(ImageConcept.id.in_(pair_ids)))}
    stats = concept_stats(session, label_source=settings.label_source,
                          concept_ids=sorted(set(concept_of.values())))
    saturated = saturated_concepts(stats, settings)
    if not saturated:
        return {}
    out: dict[int, list[str]] = {}
    for image_id, todo in by_image.items():
        keep = [(p, t) for p, t in todo if not skip_pair(p, concept_of[p], saturated, settings)]
        if len(keep) < len(todo):
            out[image_id] = [t for p, t in todo if (p, t) not in keep]
            by_image[image_id] = keep
    return out


def concept_coverage(session: Session, settings: BalancingSettings, *,
                     limit: int = MAX_CONCEPTS) -> list[ConceptCoverage]:
    """Per concept its statistics and whether it is saturated, most accepted masks first."""
    return [ConceptCoverage(
        concept_id=s.concept_id, text=s.text, accepted_masks=s.accepted_masks, positive_pairs=s.positive_pairs,
        negative_pairs=s.negative_pairs, model_acceptance=s.model_acceptance, agreement=s.agreement,
        compared=s.compared, human_decided=s.human_decided, saturated=is_saturated(s, settings))
        for s in concept_stats(session, label_source=settings.label_source)[:limit]]
