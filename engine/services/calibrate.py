"""Calibration: fit each verifier version's scores to human verdicts on the same items, choose
auto-accept / auto-reject thresholds at the target precision, store them for routing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from engine.db.models import (
    Calibration, HumanTask, ImageConcept, Mask, ModelKind, ModelVersion, TaskKind, Verdict, VerdictKind,
    VerdictSource,
)
from engine.domain import ground_truth
from engine.domain.calibration import CalibrationResult, calibrate_task
from engine.domain.ground_truth import GroundTruth, mask_truth, people_decision, verifier_target

HUMAN_SOURCES = (VerdictSource.HUMAN, VerdictSource.LABEL_STUDIO)
#: labels that say accept, per task kind (engine/domain/ground_truth.py)
POSITIVE_LABELS = {kind: ground_truth.POSITIVE_LABELS[ground_truth.TASK_OF_KIND[kind.value]]
                   for kind in (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY)}
PRESENCE_POSITIVE = ground_truth.PRESENCE_POSITIVE


def human_positive(task_kind: TaskKind, label: str, scope: str) -> int:
    """A person's decision as the verifier's binary target (1: the AI should have said accept):
    the one mapping, engine.domain.ground_truth.verifier_target (the verifier training sets use
    it too); scope ``presence`` = judged without boxes."""
    return verifier_target(task_kind.value, label, has_masks=scope != "presence")


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
                Verdict.kind == verdict_kind, ~gold_task, Verdict.source.in_(HUMAN_SOURCES)).order_by(Verdict.id)):
        labels.setdefault((mask_id, pair_id), []).append(label)
    decided = {key: given[people_decision(given)] for key, given in labels.items()}
    gt = GroundTruth("human")
    by_people = (Verdict.kind == verdict_kind, Verdict.source.in_(HUMAN_SOURCES))
    if task_kind == TaskKind.VERIFY_MASK:
        truth = {mask_id: mask_truth(bool(is_truth), bool(is_rejection)) for mask_id, is_truth, is_rejection in
                 session.execute(select(Mask.id, gt.mask_is_ground_truth(), gt.mask_rejection_is_ground_truth())
                                 .join(ImageConcept, ImageConcept.id == Mask.pair_id)
                                 .where(exists().where(Verdict.mask_id == Mask.id, *by_people)))}
        return {key: label for key, label in decided.items()
                if truth.get(key[0]) is not None and truth[key[0]] == human_positive(task_kind, label, "all")}
    claimed = set(session.scalars(select(ImageConcept.id).where(
        exists().where(Verdict.pair_id == ImageConcept.id, *by_people), gt.decided_claim())))
    return {key: label for key, label in decided.items() if key[1] in claimed}


def calibrate(session: Session, *, target_precision: float, method: str,
              kinds: tuple[TaskKind, ...] = tuple(KINDS)) -> list[KindCalibration]:
    """One calibration per verifier version and task kind that has judged anything, against the
    people's decisions on items that are ground truth under label source human
    (:func:`human_decisions`)."""
    out = []
    for task_kind in kinds:
        model_kind, verdict_kind = KINDS[task_kind]
        human = human_decisions(session, task_kind)
        versions = session.scalars(select(ModelVersion).where(ModelVersion.kind == model_kind)
                                   .order_by(ModelVersion.id)).all()
        for version in versions:
            ai: dict[tuple[int | None, int], Verdict] = {}
            for v in session.scalars(select(Verdict).where(
                    Verdict.kind == verdict_kind, Verdict.model_version_id == version.id).order_by(Verdict.id)):
                ai[_target(v)] = v
            if not ai:
                continue
            for scope, keys in _scopes(task_kind, ai).items():
                both = [key for key in keys if key in human]
                if not both and _has_calibration(session, version.id, task_kind, scope):
                    continue  # nothing new to learn: keep e.g. a retrained version's validation-split one
                scores = [float((ai[k].probabilities or {}).get("accept", 0.0)) for k in both]
                labels = [human_positive(task_kind, human[k], scope) for k in both]
                ai_labels = [int(ai[k].label in POSITIVE_LABELS[task_kind]) for k in both]
                result = calibrate_task(scores, labels, target_precision, method, ai_labels=ai_labels,
                                        verifier_version=f"{version.name}:{version.version}",
                                        task_kind=task_kind.value)
                row = Calibration(
                    model_version_id=version.id, task_kind=task_kind, scope=scope, method=method,
                    calibrator=result.calibrator.to_dict() if result.calibrator else None,
                    target_precision=target_precision, accept_threshold=result.accept_threshold,
                    reject_threshold=result.reject_threshold, n_verdicts=len(both), metrics=result.to_dict())
                session.add(row)
                session.flush()
                out.append(KindCalibration(f"{version.name}:{version.version}", task_kind, scope, result, row.id))
    return out
