"""Retraining the AI verifiers on human verdicts (``dataengine retrain verifier``).

The training set is a verifier export (a dataset snapshot). The trainer (a port: the torch work
lives in annotators/) fine-tunes the base checkpoint — the promoted version of the kind, else the
profile's — and saves the new checkpoint. The new version is registered with its training
snapshot and metrics (loss per step, accuracy on the validation split), and its routing thresholds
are recalibrated on the validation split's *human* verdicts: examples it never trained on, with
the same per-population checks as ``dataengine calibrate`` (engine/services/calibrate.py: masks
with the final-label check; the exhaustivity verifier's two scopes together under the
positive-pair budget). With too few of those, the calibration row says how many more are
needed and has no thresholds, so routing sends the new version's items to people until
``dataengine calibrate`` (run once people have judged items it scored) finds enough."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import DatasetSnapshot, ModelVersion
from engine.domain.exports import ACCEPT_ANSWER
from engine.domain.ground_truth import PRESENCE_POSITIVE, VERIFIER_TASKS
from engine.domain.vocabulary import ModelKind, TaskKind, VerifierTask
from engine.ports import TrainConfig, TrainResult, VerifierTrainer
from engine.services.calibrate import (
    PairSample,
    annotator_error,
    calibrate_masks,
    calibrate_pair_scopes,
    calibration_row,
    pair_metrics,
)
from engine.services.common import register
from engine.services.verifier_records import is_human, load_split
from engine.settings import RoutingSettings
from engine.storage import MediaStore

MODEL_KINDS: dict[str, ModelKind] = {VerifierTask.MV: ModelKind.MASK_VERIFIER,
                                     VerifierTask.EV: ModelKind.EXHAUSTIVITY_VERIFIER}


class _CalibrationOptions(TypedDict):
    """What calibrate_masks and calibrate_pair_scopes take besides the samples."""

    routing: RoutingSettings
    target_precision: float
    method: str
    human_error: float
    verifier_version: str


class RetrainError(RuntimeError):
    """Retraining cannot run or its result cannot be registered; nothing was registered."""


@dataclass(frozen=True)
class VerifierRetrain:
    task: str  # mv | ev
    export_dir: Path
    snapshot_id: int
    base_ref: str
    output_root: Path
    config: TrainConfig = TrainConfig()
    target_precision: float = 0.95
    calibration_method: str = "isotonic"
    routing: RoutingSettings = field(default_factory=RoutingSettings)  # the per-population checks


@dataclass
class RetrainOutcome:
    version_id: int
    name: str
    version: str
    output_dir: str
    metrics: dict[str, Any]
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    new_checkpoint: bool = True  # False: the trainer produced the weights of an already registered version


def retrain_verifier(session: Session, store: MediaStore, trainer: VerifierTrainer,
                     request: VerifierRetrain) -> RetrainOutcome:
    """Fine-tune, register (flushed; the caller commits) and calibrate a verifier. The saved
    checkpoint is removed again when registering fails."""
    if request.task not in VERIFIER_TASKS:
        raise RetrainError(f"unknown verifier kind {request.task!r}; use mv or ev")
    if session.get(DatasetSnapshot, request.snapshot_id) is None:
        raise RetrainError(f"no dataset snapshot {request.snapshot_id}")
    train = load_split(request.export_dir, request.task, "train", store)
    val = load_split(request.export_dir, request.task, "val", store)
    if not train.records:
        raise RetrainError(f"the export in {request.export_dir} has no usable {request.task} training examples"
                           + (f" ({len(train.skipped)} unreadable)" if train.skipped else ""))
    result = trainer.train(request.task, request.base_ref, train.examples, val.examples.queries, request.config,
                           str(request.output_root))
    existed = _registered(session, result)
    try:
        outcome = _register(session, request, result, train.records, val.records)
    except BaseException:
        if not existed:
            shutil.rmtree(result.output_dir, ignore_errors=True)
        raise
    outcome.skipped = train.skipped + val.skipped
    outcome.new_checkpoint = not existed
    return outcome


def _registered(session: Session, result: TrainResult) -> bool:
    return session.scalars(select(ModelVersion.id).where(
        ModelVersion.kind == ModelKind(result.stamp.kind), ModelVersion.name == result.stamp.name,
        ModelVersion.version == result.stamp.version)).first() is not None


def _register(session: Session, request: VerifierRetrain, result: TrainResult, train: list[dict[str, Any]],
              val: list[dict[str, Any]]) -> RetrainOutcome:
    row = register(session, result.stamp)
    row.training_snapshot_id = request.snapshot_id
    row.metrics = training_metrics(request, result, train, val)
    session.flush()
    calibrations = _calibrate(session, request, row, val, result.val_probabilities)
    return RetrainOutcome(row.id, row.name, row.version, result.output_dir, dict(row.metrics), calibrations)


def training_metrics(request: VerifierRetrain, result: TrainResult, train: list[dict[str, Any]],
                     val: list[dict[str, Any]]) -> dict[str, Any]:
    """What the version's registry row records about its training (``train``/``val``: records)."""
    answers = [r["answer"] for r in val]
    predicted = [max(p, key=p.__getitem__) for p in result.val_probabilities]
    targets = [int(r["target"]) for r in val]
    binary = [int(p.get(ACCEPT_ANSWER, 0.0) >= 0.5) for p in result.val_probabilities]
    c = request.config
    return {
        "task": request.task, "base": request.base_ref, "mode": result.mode,
        "steps": c.steps, "learning_rate": c.learning_rate, "batch_size": c.batch_size, "seed": c.seed,
        "trainable_params": result.trainable_params, "total_params": result.total_params,
        "n_train": len(train), "n_val": len(val), "loss_curve": [round(v, 6) for v in result.losses],
        "val_accuracy": _share(predicted, answers), "val_accept_accuracy": _share(binary, targets),
    }


def _share(a: list[Any], b: list[Any]) -> float | None:
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(b) if b else None


def _scope(task: str, record: dict[str, Any]) -> str:
    if task == VerifierTask.MV:
        return "all"
    return "with_masks" if record["masks"] else "presence"


def _calibrate(session: Session, request: VerifierRetrain, row: ModelVersion, val: list[dict[str, Any]],
               probabilities: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One calibration per scope from the validation split's human verdicts, with the checks of
    ``request.routing`` (the exhaustivity scopes together, under one positive-pair budget)."""
    task_kind = TaskKind(VERIFIER_TASKS[request.task])
    error = annotator_error(session, task_kind, request.routing)
    name = f"{row.name}:{row.version}"

    def sample(scope: str) -> PairSample:
        picked = [(r, p) for r, p in zip(val, probabilities, strict=True)
                  if is_human(r) and _scope(request.task, r) == scope]
        return PairSample(
            scores=[float(p.get(ACCEPT_ANSWER, 0.0)) for _, p in picked],
            labels=[int(r["target"]) for r, _ in picked],
            ai_labels=[int(max(p, key=p.__getitem__) == ACCEPT_ANSWER) for _, p in picked],
            # a person's "not present" on a pair shown with masks: the phrase is absent
            present=[r.get("label") not in PRESENCE_POSITIVE for r, _ in picked] if scope == "with_masks" else None)

    options: _CalibrationOptions = {"routing": request.routing, "target_precision": request.target_precision,
                                     "method": request.calibration_method, "human_error": error.rate,
                                     "verifier_version": name}
    metrics: dict[str, Any] = {"source": "validation split of the training snapshot",
                               "annotator_error": error.to_dict()}
    if request.task == VerifierTask.MV:
        s = sample("all")
        rows = [("all", calibrate_masks(s.scores, s.labels, s.ai_labels, **options), len(s.scores), metrics)]
    else:
        with_masks, presence = sample("with_masks"), sample("presence")
        pairs = calibrate_pair_scopes(with_masks, presence, **options)
        joint = {**metrics, "pairs": pair_metrics(pairs)}
        rows = [("with_masks", pairs.with_masks, len(with_masks.scores), joint),
                ("presence", pairs.presence, len(presence.scores), joint)]
    out = []
    for scope, result, n, extra in rows:
        session.add(calibration_row(row.id, task_kind, scope, result, n, extra))
        out.append({"scope": scope, "n": n, "accept_threshold": result.accept_threshold,
                    "reject_threshold": result.reject_threshold, "reason": result.reason})
    session.flush()
    return out
