"""Route stage: each AI-judged mask and pair goes to auto-accept, auto-reject or a human task.

Thresholds come from the latest calibration of the verifier version that judged the item
(engine/services/calibrate.py); without one everything goes to humans. A share of auto-decided
items (the audit sample, reproducible from a seed) goes to humans as well. A human decision is
never overridden; re-routing after a new verifier version cancels open (not yet leased) tasks of
items the new version now decides."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Calibration, HumanTask, ImageConcept, Mask, RouteRecord, Verdict
from engine.domain import decisions as dm
from engine.domain.audit import in_audit_sample, mask_key, pair_key
from engine.domain.calibration import Calibrator
from engine.domain.routing import KindThresholds, MaskItem, PairItem, RouteDecision, Thresholds, route_mask, route_pair
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    Decider,
    ExhaustivityVerifierAnswer,
    MaskState,
    MaskVerifierAnswer,
    MediaKind,
    RouteAction,
    RouteMaskLabel,
    RoutePairLabel,
    StageStatus,
    TaskKind,
    VerdictKind,
    VerdictSource,
)
from engine.services import decide
from engine.services.common import StageReport, claim_batch, record
from engine.settings import RoutingSettings

STAGE = "route"
AUDIT_PRIORITY = 5
AUDIT = "audit"  # the count of auto-decisions sent to a person as the audit sample
#: what a calibration was fitted on: exhaustivity splits into pairs judged with boxes and without
Scope = Literal["all", "with_masks", "presence"]


@dataclass(frozen=True)
class _Calibrated:
    calibrator: Calibrator | None
    thresholds: KindThresholds

    def p(self, raw: float) -> float:
        return self.calibrator.calibrate(raw) if self.calibrator else raw


def latest_calibration(session: Session, version_id: int, kind: TaskKind, scope: Scope = "all") -> _Calibrated:
    """The newest calibration of a verifier version for a task kind and scope (exhaustivity:
    ``with_masks`` or ``presence``; an older pooled ``all`` calibration serves both)."""
    scopes = [scope] if scope == "all" else [scope, "all"]
    row = session.scalars(select(Calibration).where(
        Calibration.model_version_id == version_id, Calibration.task_kind == kind,
        Calibration.scope.in_(scopes))
        .order_by(Calibration.id.desc()).limit(1)).one_or_none()
    if row is None:
        return _Calibrated(None, KindThresholds())
    return _Calibrated(Calibrator.from_dict(row.calibrator) if row.calibrator else None,
                       KindThresholds(accept=row.accept_threshold, reject=row.reject_threshold))


@dataclass
class _Calibrations:
    """The latest calibrations, each read once per batch."""

    session: Session
    cache: dict[tuple[int, TaskKind, Scope], _Calibrated] = field(default_factory=dict)

    def of(self, version_id: int, kind: TaskKind, scope: Scope = "all") -> _Calibrated:
        key = (version_id, kind, scope)
        if key not in self.cache:
            self.cache[key] = latest_calibration(self.session, version_id, kind, scope)
        return self.cache[key]


@dataclass(frozen=True)
class _Seen:
    """What the verdicts on an image's pairs say: the items people judged, and the latest AI
    verdict on each mask and on each pair."""

    human_masks: set[int]
    human_pairs: set[int]
    ai_masks: dict[int, Verdict]  # by mask id
    ai_pairs: dict[int, Verdict]  # by pair id


def route_batch(session: Session, settings: RoutingSettings, job_id: int, image_ids: list[int], *,
                media: MediaKind = MediaKind.IMAGE) -> StageReport:
    """Route the pairs of each image (``media`` video: of each video) of the batch."""
    batch = claim_batch(session, STAGE, job_id, image_ids)
    report = batch.report
    calibrations = _Calibrations(session)
    for item in batch.items:
        counts = _route_image(session, settings, item.subject_id, calibrations, media)
        if not any(counts.values()):
            record(report, item, StageStatus.SKIPPED, detail={"reason": "nothing judged by a verifier"})
        else:
            record(report, item, StageStatus.DONE, detail=counts)
        report.counts.update(counts)
    session.flush()
    return report


def _route_image(session: Session, settings: RoutingSettings, image_id: int,
                 calibrations: _Calibrations, media: MediaKind = MediaKind.IMAGE) -> dict[str, int]:
    """Route every AI-judged mask of the image's (or video's) pairs, then every AI-judged pair (its
    surviving masks counted after its masks were routed); the counts per action (and audit)."""
    medium = ImageConcept.video_id if media == MediaKind.VIDEO else ImageConcept.image_id
    # locked (PostgreSQL): a person's verdict on one of these pairs waits for this decision, not the reverse
    pairs = {p.id: p for p in session.scalars(select(ImageConcept).where(medium == image_id)
                                              .order_by(ImageConcept.id).with_for_update())}
    if not pairs:
        return {}
    seen = _seen(session.scalars(select(Verdict).where(Verdict.pair_id.in_(pairs))).all())
    masks = {m.id: m for m in session.scalars(select(Mask).where(Mask.pair_id.in_(pairs)))}
    counts = dict.fromkeys([RouteAction.AUTO_ACCEPT, RouteAction.AUTO_REJECT, RouteAction.HUMAN, AUDIT,
                            RouteAction.KEEP_HUMAN], 0)
    decisions = _route_masks(session, settings, calibrations, seen, masks)
    decisions += _route_pairs(session, settings, calibrations, seen, pairs, list(masks.values()))
    counts.update(Counter(_count_key(decision) for decision in decisions))
    return {str(key): n for key, n in counts.items()}


def _seen(verdicts: Sequence[Verdict]) -> _Seen:
    people = [v for v in verdicts if v.source in HUMAN_SOURCES]
    ai = sorted((v for v in verdicts if v.source == VerdictSource.AI), key=lambda v: v.id)  # the latest wins
    return _Seen(
        human_masks={v.mask_id for v in people if v.mask_id is not None},
        human_pairs={v.pair_id for v in people if v.kind != VerdictKind.MASK},
        ai_masks={v.mask_id: v for v in ai if v.kind == VerdictKind.MASK and v.mask_id is not None},
        ai_pairs={v.pair_id: v for v in ai if v.kind == VerdictKind.EXHAUSTIVITY},
    )


def _route_masks(session: Session, settings: RoutingSettings, calibrations: _Calibrations, seen: _Seen,
                 masks: dict[int, Mask]) -> list[RouteDecision]:
    """The masks pass: each mask's latest AI verdict, calibrated, decides it (or asks a person)."""
    decisions = []
    for mask_id, verdict in seen.ai_masks.items():
        mask = masks.get(mask_id)
        if mask is None or verdict.model_version_id is None:
            continue
        cal = calibrations.of(verdict.model_version_id, TaskKind.VERIFY_MASK)
        p = cal.p(_raw_accept(verdict, MaskVerifierAnswer.ACCEPT))
        decided = mask.id in seen.human_masks or mask.decided_by == Decider.HUMAN
        audit = in_audit_sample(mask_key(mask.id), settings.audit_rate, settings.audit_seed)
        decision = route_mask(MaskItem(mask.id, verdict.pair_id, p, verdict.probabilities or {}, decided),
                              Thresholds(mask=cal.thresholds), audit=audit)
        _apply_mask(session, mask, decision, verdict, p)
        decisions.append(decision)
    return decisions


def _route_pairs(session: Session, settings: RoutingSettings, calibrations: _Calibrations, seen: _Seen,
                 pairs: dict[int, ImageConcept], masks: list[Mask]) -> list[RouteDecision]:
    """The pairs pass: each pair's latest exhaustivity verdict, calibrated for how it was judged
    (with boxes or without), decides it with the masks that survived the masks pass."""
    decisions = []
    for pair_id, verdict in seen.ai_pairs.items():
        pair = pairs[pair_id]
        if verdict.model_version_id is None:
            continue
        judged_with_boxes = bool((verdict.payload or {}).get("boxes"))
        cal = calibrations.of(verdict.model_version_id, TaskKind.CHECK_EXHAUSTIVITY,
                              "with_masks" if judged_with_boxes else "presence")
        raw = _raw_accept(verdict, ExhaustivityVerifierAnswer.ACCEPT)
        surviving = sum(1 for m in masks if m.pair_id == pair_id and m.state != MaskState.REJECTED)
        decided = pair_id in seen.human_pairs or pair.decided_by == Decider.HUMAN
        audit = in_audit_sample(pair_key(pair_id), settings.audit_rate, settings.audit_seed)
        presence = None if judged_with_boxes else 1.0 - raw
        decision = route_pair(PairItem(pair_id, cal.p(raw), surviving, presence, verdict.probabilities or {}, decided),
                              Thresholds(exhaustivity=cal.thresholds), audit=audit)
        _apply_pair(session, pair, decision, verdict, cal.p(raw))
        decisions.append(decision)
    return decisions


def _raw_accept(verdict: Verdict, accept: MaskVerifierAnswer | ExhaustivityVerifierAnswer) -> float:
    """The verifier's raw P(accept): the probability of its ``accept`` choice."""
    return float((verdict.probabilities or {}).get(accept, 0.0))


def _count_key(decision: RouteDecision) -> str:
    return AUDIT if decision.is_audit else decision.action


def _apply_mask(session: Session, mask: Mask, decision: RouteDecision, verdict: Verdict, p: float) -> None:
    task_id = None
    if decision.action in (RouteAction.AUTO_ACCEPT, RouteAction.AUTO_REJECT):
        label = RouteMaskLabel.ACCEPT if decision.action == RouteAction.AUTO_ACCEPT else RouteMaskLabel.REJECT
        facts = decide.facts(session, mask.pair_id)
        decide.write(session, mask.pair_id, dm.route_mask(facts, mask.id, label), before=facts)
        _cancel_open(session, TaskKind.VERIFY_MASK, mask.pair_id, mask.id)
    elif decision.action == RouteAction.HUMAN and decision.task_kind is not None:  # a human route has a kind
        task_id = decide.ensure_task(session, decision.task_kind, mask.pair_id, decision.reason,
                                     AUDIT_PRIORITY if decision.is_audit else 0, mask_id=mask.id)
    _log(session, mask.pair_id, mask.id, decision, verdict, p, task_id)


def _apply_pair(session: Session, pair: ImageConcept, decision: RouteDecision, verdict: Verdict, p: float) -> None:
    task_id = None
    if decision.action == RouteAction.AUTO_ACCEPT:
        negative = decision.auto_label == RoutePairLabel.NEGATIVE
        label = RoutePairLabel.NEGATIVE if negative else RoutePairLabel.EXHAUSTIVE
        facts = decide.facts(session, pair.id)
        outcome = dm.route_pair(facts, label)
        decide.write(session, pair.id, outcome, before=facts)
        if outcome.pair is not None:  # decided: a person need not check it (an audit task stays)
            for kind in (TaskKind.CHECK_EXHAUSTIVITY, TaskKind.CORRECT):
                _cancel_open(session, kind, pair.id, None)
    elif decision.action == RouteAction.HUMAN and decision.task_kind is not None:  # a human route has a kind
        task_id = decide.ensure_task(session, decision.task_kind, pair.id, decision.reason,
                                     AUDIT_PRIORITY if decision.is_audit else 0)
    _log(session, pair.id, None, decision, verdict, p, task_id)


def _cancel_open(session: Session, kind: TaskKind, pair_id: int, mask_id: int | None) -> None:
    decide.cancel_open(session, [HumanTask.kind == kind, HumanTask.pair_id == pair_id,
                                 HumanTask.mask_id.is_(None) if mask_id is None else HumanTask.mask_id == mask_id],
                       "decided by a newer verifier version")


def _log(session: Session, pair_id: int, mask_id: int | None, decision: RouteDecision, verdict: Verdict, p: float,
         task_id: int | None) -> None:
    session.add(RouteRecord(
        pair_id=pair_id, mask_id=mask_id, action=decision.action,
        task_kind=decision.task_kind,
        label=decision.auto_label or decision.audited_label, probability=p,
        reason=decision.reason[:4000], audit=decision.is_audit,
        verifier_version_id=verdict.model_version_id, task_id=task_id))
