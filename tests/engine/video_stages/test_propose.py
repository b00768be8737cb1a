"""Propose for a video job with a fake masklet proposer (the port), on SQLite and once on PostgreSQL."""

from __future__ import annotations

import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import func, select

from engine.db.models import Mask, MaskletFrame, MaskState, ModelVersion, StageStatus
from engine.db.session import session_scope
from engine.services.video_stages.propose import propose_video_batch
from engine.video_settings import VideoSettings
from tests.engine.video_stages.conftest import FRAMES, pending, proposed, rows, run
from tests.engine.video_stages.fakes import FakeMaskletProposer


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_masklets_with_per_frame_rles_and_stamp(settings, mined):
    first, second = mined.video_ids
    proposer = FakeMaskletProposer()
    pairs, report = proposed(settings, mined, {first: ["red circle", "blue square"], second: ["nothing here"]},
                             proposer)
    assert report.counts == {"done": 2, "masklets": 4}
    assert proposer.calls == [["red circle", "blue square"], ["nothing here"]]  # one session per video, all phrases
    with session_scope(settings.db_url) as s:
        version = s.scalars(select(ModelVersion).where(ModelVersion.name == "fake-proposer/sam3-video")).one()
        assert version.params == {"video": True, "objects": 2}
        masks = s.scalars(select(Mask).order_by(Mask.id)).all()
        assert len(masks) == 4 and {m.pair_id for m in masks} == {pairs[(first, "red circle")],
                                                                   pairs[(first, "blue square")]}
        for m in masks:
            assert (m.first_frame, m.last_frame, m.height, m.width) == (0, FRAMES - 1, 120, 160)
            assert m.model_version_id == version.id and m.state is MaskState.CANDIDATE
            assert m.score == pytest.approx(0.9) or m.score == pytest.approx(0.8)  # the mean of its frames' scores
            frames = s.scalars(select(MaskletFrame).where(MaskletFrame.mask_id == m.id)
                               .order_by(MaskletFrame.frame_index)).all()
            assert [f.frame_index for f in frames] == list(range(FRAMES))
            for f in frames:  # compressed RLE at the stored frame size, box and area agree with it
                rle = {"size": [120, 160], "counts": f.rle_counts.encode()}
                assert int(mask_utils.area(rle)) == f.area == 80
                assert list(mask_utils.toBbox(rle)) == [f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h]
            assert m.area == max(f.area for f in frames)
        st = rows(s, mined.job_id, "propose")
        assert st[first].status is StageStatus.DONE and st[first].detail == {"phrases": 2, "masklets": 4}
        assert st[second].status is StageStatus.DONE and st[second].detail == {"phrases": 1, "masklets": 0}


def test_caps_and_short_masklets(settings, mined):
    first = mined.video_ids[0]
    _, report = proposed(settings, mined, {first: ["red circle", "short one"]}, FakeMaskletProposer(objects=3),
                         max_masklets_per_phrase=2, min_masklet_frames=2)
    assert report.counts["masklets"] == 2
    with session_scope(settings.db_url) as s:
        scores = sorted(round(m.score, 3) for m in s.scalars(select(Mask)))
        assert scores == [0.8, 0.9]  # the best two of three; the one-frame masklets dropped
        assert s.scalar(select(func.count()).select_from(MaskletFrame)) == 2 * FRAMES  # no orphan frame


def test_a_failing_phrase_fails_alone_and_rerun_is_idempotent(settings, mined):
    first, second = mined.video_ids
    proposer = FakeMaskletProposer()
    _, report = proposed(settings, mined, {first: ["red circle", "explode now"], second: ["blue square"]}, proposer)
    assert report.counts["failed"] == 1 and report.counts["done"] == 1
    assert proposer.calls == [["red circle", "explode now"], ["red circle"], ["explode now"], ["blue square"]]
    with session_scope(settings.db_url) as s:
        item = rows(s, mined.job_id, "propose")[first]
        assert item.error == "1 of 2 phrases failed: 'explode now': RuntimeError: proposer failed (fake)"
        assert s.scalar(select(func.count()).select_from(Mask)) == 4  # nothing of the failed attempts is left
        frames_before = s.scalar(select(func.count()).select_from(MaskletFrame))
        assert frames_before == 4 * FRAMES
    pending(settings, mined.job_id, "propose", [first, second])
    again = FakeMaskletProposer()
    run(settings, propose_video_batch, mined.store, again, VideoSettings(), mined.job_id, [first, second])
    assert again.calls == [["explode now"]]  # proposed phrases are not proposed again by the same version
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Mask)) == 4


def test_unreadable_video_fails_alone(settings, mined):
    first, second = mined.video_ids
    with session_scope(settings.db_url) as s:
        from engine.db.models import VideoFrame
        for frame in s.scalars(select(VideoFrame).where(VideoFrame.video_id == second)):
            s.delete(frame)
    _, report = proposed(settings, mined, {first: ["red circle"], second: ["blue square"]})
    assert report.counts["done"] == 1 and report.counts["failed"] == 1
    with session_scope(settings.db_url) as s:
        assert rows(s, mined.job_id, "propose")[second].error == "the video has no sampled frames"
