"""Calibration: fit each verifier version's scores to human verdicts on the same items, choose
auto-accept / auto-reject thresholds, store them for routing.

Every population the router labels holds on its own (docs/architecture.md, "Routing and calibration
per population"; the settings are engine/settings.py ``RoutingSettings``): masks
(``calibrate_task`` with the final-label check) and the exhaustivity verifier's two scopes —
pairs with masks (``with_masks``) and without (``presence``) — calibrated together by
``calibrate_pairs`` under one budget for the positive pairs, stored as their two rows each time
(the pair-level figures in each row's ``metrics["pairs"]``). The annotators' error rate of the
final-label check is their share wrong on the task kind's gold items once there are enough of
them, else the setting."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session, aliased

from engine.db.models import Calibration, HumanTask, ImageConcept, Mask, ModelVersion, Verdict
from engine.domain import ground_truth
from engine.domain.calibration import CalibrationResult, PairCalibration, calibrate_pairs, calibrate_task
from engine.domain.exports import ACCEPT_ANSWER
from engine.domain.ground_truth import GroundTruth, mask_truth, people_decision, verifier_target
from engine.domain.vocabulary import HUMAN_SOURCES, LabelSource, ModelKind, TaskKind, VerdictKind
from engine.services.export_rows import standing
from engine.settings import RoutingSettings

#: labels that say accept, per task kind (engine/domain/ground_truth.py)
POSITIVE_LABELS = {kind: ground_truth.POSITIVE_LABELS[ground_truth.TASK_OF_KIND[kind]]
                   for kind in (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY)}
PRESENCE_POSITIVE = ground_truth.PRESENCE_POSITIVE
PAIR_SCOPES = ("with_masks", "presence")
#: the pair-level figures of a PairCalibration kept in each scope row's metrics["pairs"]
PAIR_FIELDS = ("max_positive_loss", "positive_loss", "unconstrained_loss", "positives", "reason", "loss_confidence",
               "loss_budget", "positive_final", "positive_all_human")


def human_positive(task_kind: TaskKind, label: str, scope: str) -> int:
    """A person's decision as the verifier's binary target (1: the AI should have said accept):
    the one mapping, engine.domain.ground_truth.verifier_target (the verifier training sets use
    it too); scope ``presence`` = judged without boxes."""
    return verifier_target(task_kind, label, has_masks=scope != "presence")


KINDS = {
    TaskKind.VERIFY_MASK: (ModelKind.MASK_VERIFIER, VerdictKind.MASK),
    TaskKind.CHECK_EXHAUSTIVITY: (ModelKind.EXHAUSTIVITY_VERIFIER, VerdictKind.EXHAUSTIVITY),
}


@dataclass(frozen=True)
class KindCalibration:
    verifier: str  # name:version
    task_kind: TaskKind
    scope: str  # all | with_masks | presence
    result: CalibrationResult
    calibration_id: int
    pairs: PairCalibration | None = None  # exhaustivity: the two scopes' joint calibration


@dataclass(frozen=True)
class AnnotatorError:
    """The annotators' error rate that the final-label check assumes for a task kind."""

    rate: float
    source: str  # gold (measured on gold items) | setting (too few gold answers)
    gold_answers: int
    gold_wrong: int

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "source": self.source, "gold_answers": self.gold_answers,
                "gold_wrong": self.gold_wrong}


def annotator_error(session: Session, task_kind: TaskKind, routing: RoutingSettings) -> AnnotatorError:
    """The share of people's gold answers of ``task_kind`` that were wrong (a superseded answer
    counts once, as its replacement), when there are at least ``routing.min_gold_answers``;
    else ``routing.human_error``."""
    _, verdict_kind = KINDS[task_kind]
    newer = aliased(Verdict)
    wrong = case((Verdict.payload["gold_correct"].as_boolean(), 0), else_=1)
    answers, wrong_n = session.execute(
        select(func.count(Verdict.id), func.sum(wrong)).select_from(Verdict)
        .join(HumanTask, HumanTask.id == Verdict.task_id)
        .where(HumanTask.is_gold.is_(True), Verdict.kind == verdict_kind, Verdict.source.in_(HUMAN_SOURCES),
               ~exists().where(newer.supersedes_id == Verdict.id))).one()
    answers, wrong_n = int(answers or 0), int(wrong_n or 0)
    if answers >= routing.min_gold_answers:
        return AnnotatorError(min(wrong_n / answers, 0.499), "gold", answers, wrong_n)
    return AnnotatorError(routing.human_error, "setting", answers, wrong_n)


def calibrate_masks(scores: Sequence[float], labels: Sequence[int], ai_labels: Sequence[int], *,
                    routing: RoutingSettings, target_precision: float, method: str, human_error: float,
                    verifier_version: str) -> CalibrationResult:
    """The mask verifier: its automatic decisions at the target precision and, with
    ``routing.max_final_drop``, the accepted masks' final labels within that of all-human."""
    return calibrate_task(scores, labels, target_precision, method, ai_labels=ai_labels,
                          verifier_version=verifier_version, task_kind=TaskKind.VERIFY_MASK.value,
                          human_error=human_error, max_final_drop=routing.max_final_drop)


@dataclass(frozen=True)
class PairSample:
    """One exhaustivity scope's calibration sample: the verifier's P(accept), the people's targets
    (verifier_target), the verifier's own answers (1: accept) and whether the phrase is present
    (None: the default of calibrate_pairs — every pair with masks, the pairs without with target 0)."""

    scores: Sequence[float]
    labels: Sequence[int]
    ai_labels: Sequence[int]
    present: Sequence[bool] | None = None


Target = tuple[int | None, int]  # (mask id, pair id)


def _sample(task_kind: TaskKind, scopes: dict[str, list[Target]], ai: dict[Target, Verdict],
            human: dict[Target, str], scope: str) -> PairSample:
    """The sample of one scope: the targets both the verifier and people judged."""
    keys = scopes[scope]
    return PairSample(
        scores=[float((ai[k].probabilities or {}).get(ACCEPT_ANSWER, 0.0)) for k in keys],
        labels=[human_positive(task_kind, human[k], scope) for k in keys],
        ai_labels=[int(ai[k].label in POSITIVE_LABELS[task_kind]) for k in keys],
        # a person's "not present" on a pair shown with masks: the phrase is absent
        present=[human[k] not in PRESENCE_POSITIVE for k in keys] if scope == "with_masks" else None)


def calibrate_pair_scopes(with_masks: PairSample, presence: PairSample, *, routing: RoutingSettings,
                          target_precision: float, method: str, human_error: float,
                          verifier_version: str) -> PairCalibration:
    """The exhaustivity verifier's two scopes together (``calibrate_pairs``): each scope's
    automatic decisions at the target precision with the final-label check, and one budget
    (``routing.max_positive_loss``, held on average or with ``routing.positive_loss_confidence``)
    for the positive pairs that the two accept sides may label wrongly."""
    return calibrate_pairs(
        with_masks.scores, with_masks.labels, presence.scores, presence.labels, target_precision, method,
        max_positive_loss=routing.max_positive_loss, with_masks_present=with_masks.present,
        presence_present=presence.present, human_error=human_error, max_final_drop=routing.max_final_drop,
        with_masks_ai_labels=with_masks.ai_labels, presence_ai_labels=presence.ai_labels,
        verifier_version=verifier_version, task_kind=TaskKind.CHECK_EXHAUSTIVITY.value,
        loss_confidence=routing.positive_loss_confidence)


def pair_metrics(pairs: PairCalibration) -> dict[str, Any]:
    """The pair-level figures of a joint calibration, as each scope row keeps them."""
    whole = pairs.to_dict()
    return {key: whole[key] for key in PAIR_FIELDS}


def calibration_row(version_id: int, task_kind: TaskKind, scope: str, result: CalibrationResult, n: int,
                    metrics: dict[str, Any]) -> Calibration:
    return Calibration(
        model_version_id=version_id, task_kind=task_kind, scope=scope, method=result.method,
        calibrator=result.calibrator.to_dict() if result.calibrator else None,
        target_precision=result.target_precision, accept_threshold=result.accept_threshold,
        reject_threshold=result.reject_threshold, n_verdicts=n, metrics={**result.to_dict(), **metrics})


def _scopes(task_kind: TaskKind, ai: dict[tuple[int | None, int], Verdict]) -> dict[str, list[tuple[int | None, int]]]:
    """Exhaustivity is calibrated apart for pairs judged with boxes and without (presence): the
    plentiful easy negatives must not lend their precision to pairs with masks."""
    if task_kind != TaskKind.CHECK_EXHAUSTIVITY:
        return {"all": list(ai)}
    out: dict[str, list[tuple[int | None, int]]] = {"with_masks": [], "presence": []}
    for key, verdict in ai.items():
        out["with_masks" if (verdict.payload or {}).get("boxes") else "presence"].append(key)
    return out


def _target(verdict: Verdict) -> tuple[int | None, int]:
    return (verdict.mask_id, verdict.pair_id)


def _has_calibration(session: Session, version_id: int, task_kind: TaskKind, scope: str) -> bool:
    return session.scalars(select(Calibration.id).where(
        Calibration.model_version_id == version_id, Calibration.task_kind == task_kind,
        Calibration.scope == scope).limit(1)).first() is not None


def human_decisions(session: Session, task_kind: TaskKind) -> dict[tuple[int | None, int], str]:
    """The calibration targets of a task kind: (mask id, pair id) → the people's decision (their
    majority label, a tie to the latest, as the queue decides; gold answers only score people), for
    items that are ground truth under the label source ``human`` (engine/domain/ground_truth.py): a
    mask whose decision a person made (accepted as a ground-truth mask, or rejected) and agrees with
    that label's target; a pair whose claim a person made."""
    _, verdict_kind = KINDS[task_kind]
    gold_task = exists().where(HumanTask.id == Verdict.task_id, HumanTask.is_gold.is_(True))
    labels: dict[tuple[int | None, int], list[str]] = {}
    for mask_id, pair_id, label in session.execute(
            select(Verdict.mask_id, Verdict.pair_id, Verdict.label).where(
                Verdict.kind == verdict_kind, ~gold_task, Verdict.source.in_(HUMAN_SOURCES), standing())
            .order_by(Verdict.id)):
        labels.setdefault((mask_id, pair_id), []).append(label)
    decided = {key: given[people_decision(given)] for key, given in labels.items()}
    gt = GroundTruth(LabelSource.HUMAN)
    by_people = (Verdict.kind == verdict_kind, Verdict.source.in_(HUMAN_SOURCES), standing())
    if task_kind == TaskKind.VERIFY_MASK:
        truth = {mask_id: mask_truth(bool(is_truth), bool(is_rejection)) for mask_id, is_truth, is_rejection in
                 session.execute(select(Mask.id, gt.mask_is_ground_truth(), gt.mask_rejection_is_ground_truth())
                                 .join(ImageConcept, ImageConcept.id == Mask.pair_id)
                                 .where(exists().where(Verdict.mask_id == Mask.id, *by_people)))}
        return {key: label for key, label in decided.items()
                if key[0] is not None and truth.get(key[0]) == human_positive(task_kind, label, "all")}
    claimed = set(session.scalars(select(ImageConcept.id).where(
        exists().where(Verdict.pair_id == ImageConcept.id, *by_people), gt.decided_claim())))
    return {key: label for key, label in decided.items() if key[1] in claimed}


#: what is stored per scope: (scope, result, sample size, metrics, the pairs' joint calibration or None)
ScopeResult = tuple[str, CalibrationResult, int, dict[str, Any], PairCalibration | None]


def calibrate(session: Session, *, target_precision: float, method: str,
              kinds: tuple[TaskKind, ...] = tuple(KINDS),
              routing: RoutingSettings | None = None) -> list[KindCalibration]:
    """One calibration per verifier version and task kind that has judged anything, against the
    people's decisions on items that are ground truth under label source human
    (:func:`human_decisions`), with the per-population checks of ``routing`` (default: the
    defaults of :class:`RoutingSettings`; ``target_precision`` and ``method`` override its own).

    A version that has a calibration and no overlap with the people's decisions keeps it (e.g. a
    retrained version's validation-split one). The exhaustivity verifier's two scopes share the
    positive-pair budget, so their rows are written together whenever either scope has overlap."""
    routing = routing or RoutingSettings()
    out = []
    for task_kind in kinds:
        model_kind, verdict_kind = KINDS[task_kind]
        human = human_decisions(session, task_kind)
        error = annotator_error(session, task_kind, routing)
        versions = session.scalars(select(ModelVersion).where(ModelVersion.kind == model_kind)
                                   .order_by(ModelVersion.id)).all()
        for version in versions:
            ai = _latest_ai_verdicts(session, verdict_kind, version.id)
            if not ai:
                continue
            scopes = {scope: [key for key in keys if key in human] for scope, keys in _scopes(task_kind, ai).items()}
            if not any(scopes.values()) and any(_has_calibration(session, version.id, task_kind, scope)
                                                for scope in scopes):
                continue  # nothing new to learn: keep e.g. a retrained version's validation-split one
            name = f"{version.name}:{version.version}"
            sample = functools.partial(_sample, task_kind, scopes, ai, human)
            rows = _calibration_rows(task_kind, sample, error, routing=routing, target_precision=target_precision,
                                     method=method, verifier_version=name)
            for scope, result, n, metrics, pairs_cal in rows:
                row = calibration_row(version.id, task_kind, scope, result, n, metrics)
                session.add(row)
                session.flush()
                out.append(KindCalibration(name, task_kind, scope, result, row.id, pairs_cal))
    return out


def _latest_ai_verdicts(session: Session, verdict_kind: VerdictKind, version_id: int) -> dict[Target, Verdict]:
    """The version's latest verdict of ``verdict_kind`` per target."""
    ai: dict[Target, Verdict] = {}
    for v in session.scalars(select(Verdict).where(
            Verdict.kind == verdict_kind, Verdict.model_version_id == version_id).order_by(Verdict.id)):
        ai[_target(v)] = v
    return ai


def _calibration_rows(task_kind: TaskKind, sample: Callable[[str], PairSample], error: AnnotatorError, *,
                      routing: RoutingSettings, target_precision: float, method: str,
                      verifier_version: str) -> list[ScopeResult]:
    """Calibrate one verifier version on the samples of its scopes (``sample(scope)``): the mask
    verifier's one scope ``all``, or the exhaustivity verifier's two together."""
    common: dict[str, Any] = {"annotator_error": error.to_dict()}
    if task_kind == TaskKind.VERIFY_MASK:
        s = sample("all")
        result = calibrate_masks(s.scores, s.labels, s.ai_labels, routing=routing,
                                 target_precision=target_precision, method=method,
                                 human_error=error.rate, verifier_version=verifier_version)
        return [("all", result, len(s.scores), common, None)]
    samples = {scope: sample(scope) for scope in PAIR_SCOPES}
    pairs = calibrate_pair_scopes(samples["with_masks"], samples["presence"], routing=routing,
                                  target_precision=target_precision, method=method,
                                  human_error=error.rate, verifier_version=verifier_version)
    joint = {**common, "pairs": pair_metrics(pairs)}
    return [("with_masks", pairs.with_masks, len(samples["with_masks"].scores), joint, pairs),
            ("presence", pairs.presence, len(samples["presence"].scores), joint, pairs)]
