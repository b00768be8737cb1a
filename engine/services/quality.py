"""Quality per model version (``dataengine report``, the dashboard's quality panel).

- Proposers (and imported external predictions): cgF1, pmF1 and IL_MCC (engine/domain/metrics.py)
  against the *human-verified* ground truth: pairs a person declared exhaustive (their accepted
  masks — people's own and the proposals they accepted or kept — are the ground truth; pairs with
  a crowd mask are not instance-exhaustive and are left out, as SA-Co evaluates) and negatives a
  person confirmed (no mask). A version is scored on the pairs it ran on: pairs it left
  masks on, and the pairs of images its propose stage finished (so finding nothing counts).
- Verifiers: AI–human agreement per version (engine/services/dashboard.py defines it).
- Acceptance per version: of a proposer's masks, how many were decided and how many accepted;
  of a verifier's verdicts, how many said accept and where the router sent its items.
- Throughput: human verdicts per hour, and per model stage and version the images done and the
  seconds they took.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import (
    Decider, ImageConcept, Mask, MaskState, ModelKind, ModelVersion, Polarity, RouteDecision, StageItem, StageStatus,
    Verdict, VerdictSource,
)
from engine.domain.ground_truth import GroundTruth
from engine.domain.masks import iou_matrix
from engine.domain.metrics import PairMatch, match_pair, quality
from engine.repositories.labels import rle_of
from engine.services import dashboard, propose

EVALUATED_KINDS = (ModelKind.PROPOSER, ModelKind.EXTERNAL)
VERIFIER_KINDS = (ModelKind.MASK_VERIFIER, ModelKind.EXHAUSTIVITY_VERIFIER)


@dataclass(frozen=True)
class ProposerQuality:
    model_version_id: int
    model: str  # name:version
    kind: str
    promoted: bool
    pairs: int  # ground-truth pairs it ran on
    positive_pairs: int
    cg_f1: float | None
    pm_f1: float | None
    il_mcc: float | None
    il_counts: dict[str, int]


@dataclass(frozen=True)
class Acceptance:
    model_version_id: int
    model: str
    kind: str
    promoted: bool
    outputs: int  # masks (proposers) or AI verdicts (verifiers)
    decided: int  # masks decided (proposers) or items routed (verifiers)
    accepted: int  # masks accepted (proposers) or verdicts saying accept (verifiers)
    acceptance: float | None  # accepted / decided (proposers) or accepted / outputs (verifiers)
    routes: dict[str, int] = field(default_factory=dict)  # verifiers: route action → items


@dataclass(frozen=True)
class StageThroughput:
    stage: str
    model_version_id: int | None
    model: str
    images: int
    seconds: float
    images_per_s: float | None


@dataclass(frozen=True)
class QualityReport:
    generated_at: dt.datetime
    proposers: list[ProposerQuality]
    verifiers: list[dashboard.VerifierAgreement]
    acceptance: list[Acceptance]
    stages: list[StageThroughput]
    human_per_hour: list[dashboard.HourCount]


def quality_report(session: Session, *, hours: int = 24, now: dt.datetime | None = None) -> QualityReport:
    now = now or utcnow()
    return QualityReport(now, proposer_quality(session), dashboard.verifier_agreement(session),
                         proposer_acceptance(session) + verifier_acceptance(session), stage_throughput(session),
                         dashboard.throughput(session, hours=hours, now=now))


def _label(v: ModelVersion) -> str:
    return f"{v.name}:{v.version}"


# ------------------------------------------------------------------------------ proposers
def ground_truth_pairs(session: Session, label_source: str = "human") -> dict[int, int]:
    """Pair id → image id of every instance-exhaustive ground-truth pair under ``label_source``
    (the deciders allowed: human | ai | both), as engine/domain/ground_truth.py defines it for the
    exports too: a negative, or an exhaustive pair without a crowd mask (a group of instances
    cannot be matched one to one). Its accepted masks are its ground-truth masks."""
    rows = session.execute(select(ImageConcept.id, ImageConcept.image_id).where(
        GroundTruth(label_source).instance_exhaustive_pair()))
    return {pair_id: image_id for pair_id, image_id in rows}


def _ran_on(session: Session, version_id: int, truth: dict[int, int]) -> list[int]:
    """Ground-truth pairs the version ran on: it left masks there, or proposed on the image."""
    with_masks = set(session.scalars(select(Mask.pair_id).where(Mask.model_version_id == version_id).distinct()))
    images = set(session.scalars(select(StageItem.subject_id).where(
        StageItem.stage == propose.STAGE, StageItem.model_version_id == version_id,
        StageItem.status == StageStatus.DONE)))
    return sorted(p for p, image in truth.items() if p in with_masks or image in images)


def _matches(session: Session, version_id: int, pair_ids: list[int]) -> Iterator[PairMatch]:
    for i in range(0, len(pair_ids), 500):
        chunk = pair_ids[i:i + 500]
        masks = session.scalars(select(Mask).where(Mask.pair_id.in_(chunk), or_(
            Mask.state == MaskState.ACCEPTED, Mask.model_version_id == version_id)).order_by(Mask.id)).all()
        for pair_id in chunk:
            own = [m for m in masks if m.pair_id == pair_id]
            gt = [rle_of(m) for m in own if m.state == MaskState.ACCEPTED]
            pred = [m for m in own if m.model_version_id == version_id]
            scores = [1.0 if m.score is None else float(m.score) for m in pred]
            yield match_pair(iou_matrix(gt, [rle_of(m) for m in pred]).reshape(len(gt), len(pred)), scores)


def proposer_quality(session: Session) -> list[ProposerQuality]:
    truth = ground_truth_pairs(session)
    out = []
    for v in session.scalars(select(ModelVersion).where(ModelVersion.kind.in_(EVALUATED_KINDS))
                             .order_by(ModelVersion.id)):
        pair_ids = _ran_on(session, v.id, truth) if truth else []
        if not pair_ids:
            continue
        q = quality(list(_matches(session, v.id, pair_ids)))
        out.append(ProposerQuality(v.id, _label(v), v.kind.value, v.is_promoted, q.pairs, q.positive_pairs,
                                   q.cg_f1, q.pm_f1, q.il_mcc, q.il_counts))
    return out


# ----------------------------------------------------------------------------- acceptance
def proposer_acceptance(session: Session) -> list[Acceptance]:
    decided = Mask.state != MaskState.CANDIDATE
    rows = session.execute(
        select(ModelVersion, func.count(Mask.id), func.count(Mask.id).filter(decided),
               func.count(Mask.id).filter(Mask.state == MaskState.ACCEPTED))
        .join(Mask, Mask.model_version_id == ModelVersion.id)
        .where(ModelVersion.kind.in_(EVALUATED_KINDS)).group_by(ModelVersion.id).order_by(ModelVersion.id)).all()
    return [Acceptance(v.id, _label(v), v.kind.value, v.is_promoted, n, d, a, a / d if d else None)
            for v, n, d, a in rows]


def verifier_acceptance(session: Session) -> list[Acceptance]:
    counts = session.execute(
        select(ModelVersion, func.count(Verdict.id), func.count(Verdict.id).filter(Verdict.label == "accept"))
        .join(Verdict, and_(Verdict.model_version_id == ModelVersion.id, Verdict.source == VerdictSource.AI))
        .where(ModelVersion.kind.in_(VERIFIER_KINDS)).group_by(ModelVersion.id).order_by(ModelVersion.id)).all()
    routes: dict[int, dict[str, int]] = {}
    for version_id, action, n in session.execute(
            select(RouteDecision.verifier_version_id, RouteDecision.action, func.count())
            .group_by(RouteDecision.verifier_version_id, RouteDecision.action)):
        if version_id is not None:
            routes.setdefault(version_id, {})[action.value] = int(n)
    return [Acceptance(v.id, _label(v), v.kind.value, v.is_promoted, n, sum(routes.get(v.id, {}).values()), a,
                       a / n if n else None, routes.get(v.id, {})) for v, n, a in counts]


# ----------------------------------------------------------------------------- throughput
def stage_throughput(session: Session) -> list[StageThroughput]:
    """Per model stage and version: images done and the seconds the stage spent on them."""
    rows = session.execute(
        select(StageItem.stage, StageItem.model_version_id, func.count(), func.coalesce(func.sum(StageItem.seconds), 0.0))
        .where(StageItem.status == StageStatus.DONE)
        .group_by(StageItem.stage, StageItem.model_version_id)).all()
    names = {v.id: _label(v) for v in session.scalars(select(ModelVersion).where(
        ModelVersion.id.in_([r[1] for r in rows if r[1] is not None])))}
    out = [StageThroughput(stage, vid, names.get(vid, "-") if vid else "-", int(n), float(s),
                           int(n) / float(s) if s else None) for stage, vid, n, s in rows]
    return sorted(out, key=lambda r: (r.stage, r.model_version_id or 0))
