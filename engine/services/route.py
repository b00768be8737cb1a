"""Route stage: each AI-judged mask and pair goes to auto-accept, auto-reject or a human task.

Thresholds come from the latest calibration of the verifier version that judged the item
(engine/services/calibrate.py); without one everything goes to humans. A share of auto-decided
items (the audit sample, reproducible from a seed) goes to humans as well. A human decision is
never overridden; re-routing after a new verifier version cancels open (not yet leased) tasks of
items the new version now decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import (
    Calibration, Decider, HumanTask, ImageConcept, Mask, MaskState, RouteAction, RouteDecision, StageStatus,
    TaskKind, Verdict, VerdictKind, VerdictSource,
)
from engine.domain import decisions as dm
from engine.domain.audit import in_audit_sample, mask_key, pair_key
from engine.domain.calibration import Calibrator
from engine.domain.routing import (
    LABEL_NEGATIVE, Action, KindThresholds, MaskItem, PairItem, Thresholds, route_mask, route_pair,
)
from engine.repositories import stages as stages_repo
from engine.services import decide
from engine.services.common import StageReport, record
from engine.settings import RoutingSettings

STAGE = "route"
HUMAN_SOURCES = (VerdictSource.HUMAN, VerdictSource.LABEL_STUDIO)
AUDIT_PRIORITY = 5


@dataclass(frozen=True)
class _Calibrated:
    calibrator: Calibrator | None
    thresholds: KindThresholds

    def p(self, raw: float) -> float:
        return self.calibrator.calibrate(raw) if self.calibrator else raw


def latest_calibration(session: Session, version_id: int, kind: TaskKind, scope: str = "all") -> _Calibrated:
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


def route_batch(session: Session, settings: RoutingSettings, job_id: int, image_ids: list[int]) -> StageReport:
    report = StageReport(STAGE)
    items = stages_repo.claim_pending(session, job_id, STAGE, image_ids)
    if not items:
        return report
    cache: dict[tuple[int, TaskKind, str], _Calibrated] = {}

    def calibration(version: int, kind: TaskKind, scope: str = "all") -> _Calibrated:
        if (version, kind, scope) not in cache:
            cache[(version, kind, scope)] = latest_calibration(session, version, kind, scope)
        return cache[(version, kind, scope)]

    for item in items:
        counts = _route_image(session, settings, item.subject_id, calibration)
        if not any(counts.values()):
            record(report, item, StageStatus.SKIPPED, detail={"reason": "nothing judged by a verifier"})
        else:
            record(report, item, StageStatus.DONE, detail=counts)
        for key, n in counts.items():
            report.counts[key] += n
    session.flush()
    return report


def _latest_ai(verdicts: list[Verdict]) -> dict[tuple[int | None, int], Verdict]:
    out: dict[tuple[int | None, int], Verdict] = {}
    for v in sorted(verdicts, key=lambda v: v.id):
        out[(v.mask_id, v.pair_id)] = v
    return out


def _route_image(session: Session, settings: RoutingSettings, image_id: int, calibration: Any) -> dict[str, int]:
    # locked (PostgreSQL): a person's verdict on one of these pairs waits for this decision, not the reverse
    pairs = {p.id: p for p in session.scalars(select(ImageConcept).where(ImageConcept.image_id == image_id)
                                              .order_by(ImageConcept.id).with_for_update())}
    if not pairs:
        return {}
    verdicts = session.scalars(select(Verdict).where(Verdict.pair_id.in_(pairs))).all()
    human_masks = {v.mask_id for v in verdicts if v.source in HUMAN_SOURCES and v.mask_id is not None}
    human_pairs = {v.pair_id for v in verdicts if v.source in HUMAN_SOURCES and v.kind != VerdictKind.MASK}
    ai_mask = _latest_ai([v for v in verdicts if v.source == VerdictSource.AI and v.kind == VerdictKind.MASK])
    ai_pair = _latest_ai([v for v in verdicts if v.source == VerdictSource.AI and v.kind == VerdictKind.EXHAUSTIVITY])
    masks = {m.id: m for m in session.scalars(select(Mask).where(Mask.pair_id.in_(pairs)))}
    counts = {"auto_accept": 0, "auto_reject": 0, "human": 0, "audit": 0, "keep_human": 0}
    for (mask_id, pair_id), verdict in ai_mask.items():
        mask = masks.get(mask_id)  # type: ignore[arg-type]
        if mask is None or verdict.model_version_id is None:
            continue
        cal = calibration(verdict.model_version_id, TaskKind.VERIFY_MASK)
        raw = float((verdict.probabilities or {}).get("accept", 0.0))
        decided = mask.id in human_masks or mask.decided_by == Decider.HUMAN
        audit = in_audit_sample(mask_key(mask.id), settings.audit_rate, settings.audit_seed)
        decision = route_mask(MaskItem(mask.id, pair_id, cal.p(raw), verdict.probabilities or {}, decided),
                              Thresholds(mask=cal.thresholds), audit=audit)
        _apply_mask(session, mask, decision, verdict, cal.p(raw))
        counts[_count_key(decision)] += 1
    for (_, pair_id), verdict in ai_pair.items():
        pair = pairs[pair_id]
        if verdict.model_version_id is None:
            continue
        judged_with_boxes = bool((verdict.payload or {}).get("boxes"))
        cal = calibration(verdict.model_version_id, TaskKind.CHECK_EXHAUSTIVITY,
                          "with_masks" if judged_with_boxes else "presence")
        raw = float((verdict.probabilities or {}).get("accept", 0.0))
        surviving = sum(1 for m in masks.values() if m.pair_id == pair_id and m.state != MaskState.REJECTED)
        decided = pair_id in human_pairs or pair.decided_by == Decider.HUMAN
        audit = in_audit_sample(pair_key(pair_id), settings.audit_rate, settings.audit_seed)
        presence = None if judged_with_boxes else 1.0 - raw
        decision = route_pair(PairItem(pair_id, cal.p(raw), surviving, presence, verdict.probabilities or {}, decided),
                              Thresholds(exhaustivity=cal.thresholds), audit=audit)
        _apply_pair(session, pair, decision, verdict, cal.p(raw))
        counts[_count_key(decision)] += 1
    return counts


def _count_key(decision: Any) -> str:
    if decision.is_audit:
        return "audit"
    return str(decision.action.value)


def _apply_mask(session: Session, mask: Mask, decision: Any, verdict: Verdict, p: float) -> None:
    task_id = None
    if decision.action in (Action.AUTO_ACCEPT, Action.AUTO_REJECT):
        label = "accept" if decision.action == Action.AUTO_ACCEPT else "reject"
        facts = decide.facts(session, mask.pair_id)
        decide.write(session, mask.pair_id, dm.route_mask(facts, mask.id, label), before=facts)
        _cancel_open(session, TaskKind.VERIFY_MASK, mask.pair_id, mask.id)
    elif decision.action == Action.HUMAN:
        task_id = decide.ensure_task(session, TaskKind(decision.task_kind), mask.pair_id, decision.reason,
                                     AUDIT_PRIORITY if decision.is_audit else 0, mask_id=mask.id)
    _log(session, mask.pair_id, mask.id, decision, verdict, p, task_id)


def _apply_pair(session: Session, pair: ImageConcept, decision: Any, verdict: Verdict, p: float) -> None:
    task_id = None
    if decision.action == Action.AUTO_ACCEPT:
        label = "negative" if decision.auto_label == LABEL_NEGATIVE else "exhaustive"
        facts = decide.facts(session, pair.id)
        outcome = dm.route_pair(facts, label)
        decide.write(session, pair.id, outcome, before=facts)
        if outcome.pair is not None:  # decided: a person need not check it (an audit task stays)
            for kind in (TaskKind.CHECK_EXHAUSTIVITY, TaskKind.CORRECT):
                _cancel_open(session, kind, pair.id, None)
    elif decision.action == Action.HUMAN:
        task_id = decide.ensure_task(session, TaskKind(decision.task_kind), pair.id, decision.reason,
                                     AUDIT_PRIORITY if decision.is_audit else 0)
    _log(session, pair.id, None, decision, verdict, p, task_id)


def _cancel_open(session: Session, kind: TaskKind, pair_id: int, mask_id: int | None) -> None:
    decide.cancel_open(session, [HumanTask.kind == kind, HumanTask.pair_id == pair_id,
                                 HumanTask.mask_id.is_(None) if mask_id is None else HumanTask.mask_id == mask_id],
                       "decided by a newer verifier version")


def _log(session: Session, pair_id: int, mask_id: int | None, decision: Any, verdict: Verdict, p: float,
         task_id: int | None) -> None:
    session.add(RouteDecision(
        pair_id=pair_id, mask_id=mask_id, action=RouteAction(decision.action.value),
        task_kind=TaskKind(decision.task_kind) if decision.task_kind else None,
        label=decision.auto_label or getattr(decision, "audited_label", None), probability=p,
        reason=decision.reason[:4000], audit=bool(decision.is_audit),
        verifier_version_id=verdict.model_version_id, task_id=task_id))
