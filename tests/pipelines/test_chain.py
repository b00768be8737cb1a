"""The whole chain mine → caption → parse → propose through a real worker on PostgreSQL, with the
tiny random-weight models (outputs are noise; what is checked is that every stage ran and recorded)."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.db.models import Caption, HumanTask, ImageConcept, Mask, ModelVersion, StageItem, StageStatus
from engine.db.session import session_scope
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo


def test_whole_chain_through_a_worker(start_worker, fresh_pg_url, broker_url, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(5):
        (src / f"{n}.jpg").write_bytes(jpeg_bytes(photo(700 + n, (96, 72))))
        (src / f"{n}.txt").write_text(f"a small dog and {n + 2} red balls on a wooden table")
    start_worker(queues="io,cpu,gpu", concurrency=1, DATAENGINE_MODELS__PROPOSE__SCORE_THRESHOLD="0",
                 DATAENGINE_BATCH_SIZES__CAPTION="2")
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    result = run_mine(settings, str(src), job_name="chain", timeout_s=240)
    assert result.finished, result.report
    assert result.report.status == "done"
    assert [s.stage for s in result.report.stages] == [
        "mine", "caption", "parse", "propose", "negatives", "verify", "route"]
    with session_scope(fresh_pg_url) as s:
        statuses = dict(s.execute(select(StageItem.stage, func.count()).where(
            StageItem.status == StageStatus.DONE).group_by(StageItem.stage)).all())
        assert statuses == {"caption": 5, "parse": 5, "propose": 5, "negatives": 5, "verify": 5, "route": 5}
        names = set(s.scalars(select(ModelVersion.name).where(ModelVersion.random_weights)))
        # the propose stage stores its pooled vision features as image embeddings under their own version
        assert names == {"tiny-mllama", "tiny-sam3", "tiny-sam3 (image embedding)"}
        kinds = set(s.scalars(select(ModelVersion.kind).where(ModelVersion.random_weights)))
        assert {k.value for k in kinds} == {"captioner", "proposer", "mask_verifier", "exhaustivity_verifier"}
        masks = s.scalar(select(func.count()).select_from(Mask))
        pairs = s.scalar(select(func.count()).select_from(ImageConcept))
        # no calibration: every mask gets a verify task and every pair an exhaustivity check
        tasks = dict(s.execute(select(HumanTask.kind, func.count()).group_by(HumanTask.kind)).all())
        assert {k.value: n for k, n in tasks.items()} == {"verify_mask": masks, "check_exhaustivity": pairs}
        assert s.scalar(select(func.count()).select_from(Caption)) >= 10  # alt-text + model
        # spaCy on the alt-text: "small dog", "red ball", "wooden table" for every image
        assert s.scalar(select(func.count()).select_from(ImageConcept)) >= 15
        assert s.scalar(select(func.count()).select_from(Mask)) > 0
