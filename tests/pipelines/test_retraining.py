"""The retraining loop with the tiny random-weight models, in process, on both databases:
mine → verify → route → people decide some items → verifier export → fine-tune the tiny verifier
→ register → promote → the backlog is re-scored through the verify and route stages, leaving what
people decided alone. And SAM 3 retraining through a real (small) training command."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotators.loading import checkpoint_version
from engine.db.models import (
    Calibration,
    DatasetSnapshot,
    Decider,
    HumanTask,
    Image,
    ImageConcept,
    JobStatus,
    Mask,
    MiningJob,
    ModelKind,
    ModelVersion,
    RouteRecord,
    StageItem,
    StageStatus,
    TaskKind,
    TaskState,
    User,
    Verdict,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.ports import TrainConfig
from engine.repositories.model_versions import promoted_uri
from engine.services.annotation import VerdictIn, submit
from engine.services.calibrate import calibrate
from engine.services.export_rows import ExportFilters
from engine.services.promote import PromotionError
from engine.services.retrain_sam3 import TrainingCommandError
from engine.settings import QueueSettings
from pipelines.promotion import promote_version
from pipelines.retraining import run_sam3_retrain, run_verifier_retrain
from pipelines.runner import run_mine
from tests.factories import jpeg_bytes, photo, seed_labelled


@pytest.fixture
def tiny(settings, models_cache_dir):
    settings.models.cache_dir = models_cache_dir
    settings.models.device = "cpu"
    settings.models.caption.use_model = False  # the alt-text is the caption
    settings.models.negatives.enabled = False
    settings.models.propose.score_threshold = 0.0  # random weights: keep every candidate
    settings.routing.audit_rate = 0.0
    return settings


@pytest.fixture
def mined(tiny, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(4):
        (src / f"{n}.jpg").write_bytes(jpeg_bytes(photo(300 + n, (96, 72))))
        (src / f"{n}.txt").write_text("a dog next to a red ball")
    result = run_mine(tiny, str(src), job_name="loop")
    assert result.report.status == "done"
    return result.plan.job_id


def _judge(s, user_id: int, task: HumanTask, label: str) -> None:
    task.state, task.lease_owner_id = TaskState.LEASED, user_id
    task.lease_expires_at = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    s.flush()
    submit(s, task.id, user_id, VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=500),
           QueueSettings(multi_review_rate=0.0))


def people_decide(settings) -> None:
    """People answer most mask tasks (alternating accept/reject) and one exhaustivity check;
    the last mask task of each pair stays open for the AI."""
    with session_scope(settings.db_url) as s:
        user = User(username="ann", role="annotator")
        s.add(user)
        s.flush()
        tasks = s.scalars(select(HumanTask).where(HumanTask.kind == TaskKind.VERIFY_MASK,
                                                  HumanTask.state == TaskState.OPEN).order_by(HumanTask.id)).all()
        by_pair: dict[int, list[HumanTask]] = {}
        for task in tasks:
            by_pair.setdefault(task.pair_id, []).append(task)
        n = 0
        for pair_tasks in by_pair.values():
            for task in pair_tasks[:-1]:
                _judge(s, user.id, task, "accept" if n % 2 == 0 else "reject")
                n += 1
        ev = s.scalars(select(HumanTask).where(HumanTask.kind == TaskKind.CHECK_EXHAUSTIVITY)
                       .order_by(HumanTask.id)).first()
        _judge(s, user.id, ev, "complete")
        assert n >= 8


def state_of(settings):
    with session_scope(settings.db_url) as s:
        masks = {m.id: (m.state, m.decided_by) for m in s.scalars(select(Mask))}
        pairs = {p.id: (p.polarity, p.is_exhaustive, p.decided_by) for p in s.scalars(select(ImageConcept))}
        verdicts: dict[int, list[tuple]] = {m: [] for m in masks}  # per mask
        for v in s.scalars(select(Verdict).where(Verdict.mask_id.is_not(None)).order_by(Verdict.id)):
            verdicts[v.mask_id].append((v.id, v.source, v.label, v.model_version_id))
        human_masks = {m for m, (_, by) in masks.items() if by == Decider.HUMAN}
        human_pairs = {p for p, (*_, by) in pairs.items() if by == Decider.HUMAN}
    return masks, pairs, verdicts, human_masks, human_pairs


def val_percent_for_both_splits(settings) -> int:
    """A val share that puts the image with the lowest hash bucket (see split_of) alone in val."""
    with session_scope(settings.db_url) as s:
        buckets = sorted(int(sha[:8], 16) % 100 for sha in s.scalars(select(Image.sha256).where(
            Image.duplicate_of_id.is_(None))))
    assert len(buckets) >= 2 and buckets[0] < buckets[1], buckets
    return buckets[0] + 1


def test_verifier_fine_tunes_registers_promotes_and_rescores_the_backlog(tiny, mined):
    people_decide(tiny)
    masks0, pairs0, verdicts0, human_masks, human_pairs = state_of(tiny)
    assert human_masks and human_pairs and set(masks0) - human_masks

    outcome = run_verifier_retrain(
        tiny, "mv", filters=ExportFilters(label_source="human", val_percent=val_percent_for_both_splits(tiny)),
        config=TrainConfig(steps=8, learning_rate=1e-3, batch_size=4, device="cpu", lora_rank=0))
    losses = outcome.metrics["loss_curve"]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    assert Path(outcome.output_dir).is_dir() and Path(outcome.output_dir).parent == tiny.models.cache_dir / "finetuned"
    with session_scope(tiny.db_url) as s:
        row = s.get(ModelVersion, outcome.version_id)
        snapshot = s.get(DatasetSnapshot, row.training_snapshot_id)
        assert row.kind == ModelKind.MASK_VERIFIER and not row.is_promoted
        assert snapshot.format == "verifier"
        counts = snapshot.manifest["counts"]
        assert row.metrics["n_train"] + row.metrics["n_val"] == sum(c.get("mv", 0) for c in counts.values())
        assert row.metrics["mode"] == "full" and row.metrics["val_accuracy"] is not None
        cal = s.scalars(select(Calibration).where(Calibration.model_version_id == row.id)).one()
        # a handful of human verdicts cannot meet the target precision: no thresholds, says why
        assert cal.task_kind == TaskKind.VERIFY_MASK and cal.accept_threshold is None
        assert cal.n_verdicts == row.metrics["n_val"] and "more" in cal.metrics["reason"]
        new_version = row.id

    promotion = promote_version(tiny, new_version)
    assert promotion.images > 0 and promotion.kind == ModelKind.MASK_VERIFIER

    masks1, pairs1, verdicts1, _, _ = state_of(tiny)
    for mask_id in human_masks:  # people's masks: untouched, not even judged again
        assert masks1[mask_id] == masks0[mask_id]
        assert verdicts1[mask_id] == verdicts0[mask_id]
    for pair_id in human_pairs:
        assert pairs1[pair_id] == pairs0[pair_id]
    rescored = set(masks0) - human_masks
    for mask_id in rescored:  # the rest: judged by the promoted version
        judged_by = {v[3] for v in verdicts1[mask_id] if v[1] == VerdictSource.AI}
        assert new_version in judged_by
    with session_scope(tiny.db_url) as s:
        promoted = s.scalars(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.MASK_VERIFIER,
                                                           ModelVersion.is_promoted.is_(True))).all()
        assert promoted == [new_version]
        # the tiny-derived version serves the tiny profile only, never a real-model profile
        assert promoted_uri(s, ModelKind.MASK_VERIFIER, random_weights=True) == str(Path(outcome.output_dir).resolve())
        assert promoted_uri(s, ModelKind.MASK_VERIFIER, random_weights=False) is None
        routed = set(s.scalars(select(RouteRecord.mask_id).where(RouteRecord.verifier_version_id == new_version)))
        assert routed == rescored
        assert s.scalar(select(func.count()).select_from(StageItem).where(
            StageItem.status == StageStatus.PENDING)) == 0
        assert s.scalars(select(MiningJob.status)).one() == JobStatus.DONE
    with session_scope(tiny.db_url) as s:  # no person judged what it scored: its calibration stays
        calibrate(s, target_precision=0.95, method="isotonic")
        assert len(s.scalars(select(Calibration).where(Calibration.model_version_id == new_version)).all()) == 1


def test_promotion_refuses_what_cannot_be_promoted(tiny, mined):
    with session_scope(tiny.db_url) as s:
        captioner = s.scalars(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.SOURCE)).first()
    with pytest.raises(PromotionError, match="not promoted"):
        promote_version(tiny, captioner)
    with pytest.raises(PromotionError, match="no model version"):
        promote_version(tiny, 10_000)


TRAINER = """
import os, shutil, sys
from transformers import Sam3Model
src, out, export = sys.argv[1], os.environ["DATAENGINE_OUTPUT_DIR"], os.environ["DATAENGINE_EXPORT_DIR"]
assert os.path.isfile(os.path.join(export, "instances_train.json")), os.listdir(export)
model = Sam3Model.from_pretrained(src)
next(model.parameters()).data.add_(0.01)  # one "training" step
model.save_pretrained(out)
for name in os.listdir(src):  # the processor's files and the marker
    if not os.path.exists(os.path.join(out, name)):
        shutil.copy(os.path.join(src, name), out)
print("trained into", out)
"""


@pytest.fixture
def labelled(tiny):
    with session_scope(tiny.db_url) as s:
        seed_labelled(s, tiny.media_path)
    return tiny


def test_sam3_training_command_registers_its_checkpoint(labelled, tmp_path, models_cache_dir):
    script = tmp_path / "train.py"
    script.write_text(TRAINER)
    src = models_cache_dir / "tiny" / "sam3"
    outcome = run_sam3_retrain(labelled, f"{sys.executable} {script} {src} --out {{output_dir}}")
    assert not outcome.reused and outcome.output_dir.is_dir()
    with session_scope(labelled.db_url) as s:
        row = s.get(ModelVersion, outcome.version_id)
        assert row.kind == ModelKind.PROPOSER and row.uri == str(outcome.output_dir.resolve())
        assert s.get(DatasetSnapshot, row.training_snapshot_id).format == "coco"
        assert row.metrics["training_command"].startswith(sys.executable)
        assert row.version == checkpoint_version(str(outcome.output_dir)) != checkpoint_version(str(src))
        assert f"trained into {outcome.output_dir}" in Path(row.metrics["training_log"]).read_text()
    promotion = promote_version(labelled, outcome.version_id)
    assert promotion.backlog == {}  # a proposer serves new runs; nothing is re-proposed


def test_a_failing_training_command_registers_nothing(labelled):
    with session_scope(labelled.db_url) as s:
        before = s.scalar(select(func.count()).select_from(ModelVersion))
    runs = labelled.models.cache_dir / "sam3-trained"
    folders = set(runs.iterdir()) if runs.is_dir() else set()
    command = f"{sys.executable} -c \"import sys; print('out of memory'); sys.exit(3)\""
    with pytest.raises(TrainingCommandError, match="status 3") as caught:
        run_sam3_retrain(labelled, command)
    assert "out of memory" in str(caught.value)
    with session_scope(labelled.db_url) as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == before
    assert set(runs.iterdir()) == folders  # its output folder is gone


def test_a_command_that_leaves_no_weights_registers_nothing(labelled):
    with pytest.raises(TrainingCommandError, match="no weight files"):
        run_sam3_retrain(labelled, "echo nothing > {output_dir}/notes.txt")


def _export(settings, out: Path, val_percent: int = 0):
    from engine.services.export import commit_or_discard, export_dataset

    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, "verifier", out, ExportFilters(label_source="human",
                                                                             val_percent=val_percent))
        commit_or_discard(s, result)
    return result


def test_ev_retrain_on_an_earlier_export(labelled, tmp_path):
    export = _export(labelled, tmp_path / "v", val_percent=0)
    outcome = run_verifier_retrain(labelled, "ev", snapshot_dir=export.out_dir,
                                   config=TrainConfig(steps=2, learning_rate=1e-3, device="cpu", lora_rank=2))
    assert outcome.metrics["mode"] == "lora(r=2)"
    assert 0 < outcome.metrics["trainable_params"] < outcome.metrics["total_params"]
    assert outcome.metrics["n_train"] == export.manifest["counts"]["train"]["ev"] and outcome.metrics["n_val"] == 0
    assert [c["scope"] for c in outcome.calibrations] == ["with_masks", "presence"]
    with session_scope(labelled.db_url) as s:
        row = s.get(ModelVersion, outcome.version_id)
        assert row.kind == ModelKind.EXHAUSTIVITY_VERIFIER and row.training_snapshot_id == export.snapshot_id
        assert row.name.endswith("+ev-finetune")


def test_a_changed_or_unknown_export_is_refused(labelled, tmp_path):
    from engine.services.training_data import TrainingDataError
    from engine.services.verifier_records import RecordError, read_records

    export = _export(labelled, tmp_path / "v")
    with (export.out_dir / "mv.train.jsonl").open("a") as handle:
        handle.write('{"task": "mv"}\n')
    with pytest.raises(TrainingDataError, match="changed since it was made: mv.train.jsonl"):
        run_verifier_retrain(labelled, "mv", snapshot_dir=export.out_dir)
    with pytest.raises(RecordError, match="missing"):
        list(read_records(export.out_dir, "mv", "train"))
    (tmp_path / "other").mkdir()
    ((tmp_path / "other") / "manifest.json").write_text("{}")
    with pytest.raises(TrainingDataError, match="not a recorded dataset snapshot"):
        run_verifier_retrain(labelled, "mv", snapshot_dir=tmp_path / "other")
    with session_scope(labelled.db_url) as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion).where(
            ModelVersion.training_snapshot_id.is_not(None))) == 0
