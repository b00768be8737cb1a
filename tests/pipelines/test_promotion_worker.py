"""Promotion re-scores the backlog through a real Celery worker on PostgreSQL: the worker's model
cache swaps to the promoted verifier checkpoint, verify and route run there, and what people
decided stays as it was."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from engine.db.models import StageItem, StageStatus, VerdictSource
from engine.db.session import session_scope
from engine.ports import TrainConfig
from engine.services.export_rows import ExportFilters
from pipelines.promotion import promote_version
from pipelines.retraining import run_verifier_retrain
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo
from tests.pipelines.test_retraining import people_decide, state_of, val_percent_for_both_splits

WORKER_ENV = {"DATAENGINE_MODELS__DEVICE": "cpu", "DATAENGINE_MODELS__CAPTION__USE_MODEL": "false",
              "DATAENGINE_MODELS__NEGATIVES__ENABLED": "false", "DATAENGINE_MODELS__PROPOSE__SCORE_THRESHOLD": "0",
              "DATAENGINE_ROUTING__AUDIT_RATE": "0"}


def _settings(url, tmp_path, models_cache_dir, **extra):
    settings = make_settings(url, tmp_path, **extra)
    settings.models.cache_dir = models_cache_dir
    settings.models.device = "cpu"
    settings.models.caption.use_model = False
    settings.models.negatives.enabled = False
    settings.models.propose.score_threshold = 0.0
    settings.routing.audit_rate = 0.0
    return settings


def test_promotion_rescores_the_backlog_on_a_worker(start_worker, fresh_pg_url, broker_url, tmp_path,
                                                    models_cache_dir):
    local = _settings(fresh_pg_url, tmp_path, models_cache_dir)  # mining and training here, in process
    src = tmp_path / "src"
    src.mkdir()
    for n in range(4):
        (src / f"{n}.jpg").write_bytes(jpeg_bytes(photo(300 + n, (96, 72))))
        (src / f"{n}.txt").write_text("a dog next to a red ball")
    assert run_mine(local, str(src), job_name="loop").report.status == "done"
    people_decide(local)
    masks0, pairs0, verdicts0, human_masks, human_pairs = state_of(local)
    outcome = run_verifier_retrain(
        local, "mv", filters=ExportFilters(label_source="human", val_percent=val_percent_for_both_splits(local)),
        config=TrainConfig(steps=2, learning_rate=1e-3, batch_size=4, device="cpu", lora_rank=0))

    start_worker(queues="cpu,gpu", concurrency=1, DATAENGINE_MODELS__CACHE_DIR=str(models_cache_dir), **WORKER_ENV)
    remote = _settings(fresh_pg_url, tmp_path, models_cache_dir, broker_url=broker_url)
    promotion = promote_version(remote, outcome.version_id)
    assert promotion.images > 0
    deadline = time.monotonic() + 180
    while True:
        with session_scope(fresh_pg_url) as s:
            pending = s.scalar(select(func.count()).select_from(StageItem).where(
                StageItem.status == StageStatus.PENDING))
        if not pending:
            break
        assert time.monotonic() < deadline, f"{pending} stage items still pending"
        time.sleep(0.5)

    masks1, pairs1, verdicts1, _, _ = state_of(local)
    assert all(masks1[m] == masks0[m] and verdicts1[m] == verdicts0[m] for m in human_masks)
    assert all(pairs1[p] == pairs0[p] for p in human_pairs)
    for mask_id in set(masks0) - human_masks:
        assert outcome.version_id in {v[3] for v in verdicts1[mask_id] if v[1] == VerdictSource.AI}
