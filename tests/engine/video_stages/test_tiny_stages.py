"""A video job's stages as the workers run them (pipelines/stages.py binds each to its video service),
with the tiny random-weight models of the real architectures: rows, links, stamps and idempotency —
not quality (the weights are random)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db.models import (
    Caption,
    HumanTask,
    ImageConcept,
    Mask,
    MaskletFrame,
    ModelVersion,
    StageItem,
    StageStatus,
    Verdict,
    VerdictKind,
)
from engine.db.session import session_scope
from engine.services import flow
from engine.video_settings import VideoSettings
from pipelines.context import TaskContext
from pipelines.stages import BY_NAME, STAGE_NAMES
from tests.conftest import make_settings

ORDER = STAGE_NAMES[1:]  # caption, parse, propose, negatives, verify, route


@pytest.fixture
def settings(database_url, tmp_path, models_cache_dir):
    """The tiny profile; every masklet the random proposer finds is kept (at most two per phrase)."""
    settings = make_settings(database_url, tmp_path, video=VideoSettings(score_threshold=0.0, max_masklets_per_phrase=2,
                                                                         mv_frames=2, ev_keyframes=2, keyframes=2))
    settings.models.cache_dir = models_cache_dir
    settings.models.caption.max_new_tokens = settings.models.negatives.llm_max_new_tokens = 8  # random words anyway
    return settings


def _run(ctx, mined, stage):
    with ctx.session() as s:
        report = BY_NAME[stage].service(ctx, s, mined.job_id, mined.video_ids)
        flow.hand_over(s, mined.job_id, stage, report.image_ids, STAGE_NAMES)
    return report


def test_video_job_through_the_stages_with_tiny_models(settings, mined):
    ctx = TaskContext.from_settings(settings)
    reports = {stage: _run(ctx, mined, stage) for stage in ORDER}
    assert all(reports[stage].image_ids == mined.video_ids for stage in ORDER)  # handed on as video ids
    with session_scope(settings.db_url) as s:
        items = s.scalars(select(StageItem).where(StageItem.job_id == mined.job_id,
                                                  StageItem.stage.in_(ORDER))).all()
        assert {i.status for i in items} <= {StageStatus.DONE, StageStatus.SKIPPED}, [i.error for i in items]
        versions = {v.id: v for v in s.scalars(select(ModelVersion))}
        captions = s.scalars(select(Caption).where(Caption.video_id == mined.video_ids[0])).all()
        assert any(versions[c.model_version_id].random_weights for c in captions)  # the tiny captioner's
        pairs = s.scalars(select(ImageConcept)).all()
        assert pairs and all(p.video_id in mined.video_ids and p.image_id is None for p in pairs)
        masks = s.scalars(select(Mask)).all()
        for m in masks:  # the tiny video proposer's masklets, each with its frames
            assert versions[m.model_version_id].random_weights and m.first_frame is not None
            assert s.scalar(select(func.count()).select_from(MaskletFrame).where(MaskletFrame.mask_id == m.id)) >= 1
        verdicts = s.scalars(select(Verdict)).all()
        assert len([v for v in verdicts if v.kind == VerdictKind.MASK]) == len(masks)
        assert len([v for v in verdicts if v.kind == VerdictKind.EXHAUSTIVITY]) == len(pairs)
        assert s.scalar(select(func.count()).select_from(HumanTask)) == len(masks) + len(pairs)  # uncalibrated
        counts = (len(masks), len(verdicts))
    for stage in ("propose", "verify"):  # again: the same versions add nothing
        with session_scope(settings.db_url) as s:
            for item in s.scalars(select(StageItem).where(StageItem.stage == stage)):
                item.status = StageStatus.PENDING
        _run(ctx, mined, stage)
    with session_scope(settings.db_url) as s:
        assert (s.scalar(select(func.count()).select_from(Mask)),
                s.scalar(select(func.count()).select_from(Verdict))) == counts
