"""Retraining runs, end to end: training data (a new export or a recorded one), the trainer from
annotators/, registration in one transaction. The CLI and tests call these."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from engine.db.session import session_scope
from engine.domain.vocabulary import LabelSource
from engine.ports import TrainConfig
from engine.repositories.model_versions import promoted_uri
from engine.services.export import commit_or_discard
from engine.services.export_rows import ExportFilters
from engine.services.retrain import MODEL_KINDS, RetrainOutcome, VerifierRetrain, retrain_verifier
from engine.services.retrain_sam3 import Sam3Outcome, Sam3Retrain, retrain_sam3
from engine.services.training_data import TrainingData, existing_export, new_export
from engine.settings import Settings
from engine.stores import make_store


def _training_data(session: Session, settings: Settings, fmt: str, snapshot_dir: Path | None,
                   filters: ExportFilters) -> TrainingData:
    data = existing_export(session, snapshot_dir, fmt) if snapshot_dir else new_export(session, settings, fmt, filters)
    if data.created is not None:
        commit_or_discard(session, data.created)
    return data


def _commit_or_remove(session: Session, folder: Path, made: bool) -> None:
    try:
        session.commit()
    except BaseException:
        session.rollback()
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def run_verifier_retrain(settings: Settings, task: str, *, snapshot_dir: Path | None = None,
                         filters: ExportFilters | None = None, config: TrainConfig | None = None) -> RetrainOutcome:
    """Fine-tune the mask (``mv``) or exhaustivity (``ev``) verifier from the promoted version of
    its kind (else the profile's checkpoint) on a verifier export, register and calibrate it."""
    from annotators.registry import verifier_ref
    from annotators.verifier_training import VerifierFineTuner

    config = config or TrainConfig(device=settings.models.device)
    with session_scope(settings.db_url) as session:  # our commit first; its own then has nothing to do
        data = _training_data(session, settings, "verifier", snapshot_dir,
                              filters or ExportFilters(label_source=LabelSource.HUMAN))
        base = (promoted_uri(session, MODEL_KINDS[task], random_weights=settings.model_profile == "tiny")
                if task in MODEL_KINDS else None)
        assert settings.models.cache_dir is not None
        request = VerifierRetrain(task=task, export_dir=data.folder, snapshot_id=data.snapshot_id,
                                  base_ref=base or verifier_ref(settings, task),
                                  output_root=Path(settings.models.cache_dir) / "finetuned", config=config,
                                  target_precision=settings.routing.target_precision,
                                  calibration_method=settings.routing.calibration_method,
                                  routing=settings.routing)
        outcome = retrain_verifier(session, make_store(settings), VerifierFineTuner(), request)
        _commit_or_remove(session, Path(outcome.output_dir), made=outcome.new_checkpoint)
        return outcome


def run_sam3_retrain(settings: Settings, command: str, *, snapshot_dir: Path | None = None,
                     filters: ExportFilters | None = None, timeout_s: float | None = None) -> Sam3Outcome:
    """Export SAM 3's training data (COCO), run the training command, register its checkpoint."""
    from annotators.registry import make_proposer

    with session_scope(settings.db_url) as session:  # our commit first; its own then has nothing to do
        data = _training_data(session, settings, "coco", snapshot_dir, filters or ExportFilters())
        run = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        assert settings.models.cache_dir is not None
        request = Sam3Retrain(command=command, export_dir=data.folder, snapshot_id=data.snapshot_id,
                              output_dir=Path(settings.models.cache_dir) / "sam3-trained" / run,
                              log_path=settings.data_dir / "retrain-logs" / f"sam3-{run}.log", timeout_s=timeout_s)
        outcome = retrain_sam3(session, request, lambda ref: make_proposer(settings, ref).stamp)
        _commit_or_remove(session, request.output_dir, made=not outcome.reused)
        return outcome

