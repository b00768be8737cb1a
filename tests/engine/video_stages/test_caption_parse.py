"""Caption and parse of a video job with fake models, on SQLite (and PostgreSQL for the first)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db.models import Caption, Concept, ImageConcept, ModelVersion, PairOrigin, Polarity, StageStatus
from engine.db.session import session_scope
from engine.services.video_stages.caption import caption_video_batch
from engine.services.video_stages.parse import parse_video_batch
from tests.engine.video_stages.conftest import pending, rows, run
from tests.fakes import FakeCaptioner, FakeParser


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_caption_keyframes_and_source_captions(settings, mined):
    cap = FakeCaptioner(default="a red circle and a blue square")
    report = run(settings, caption_video_batch, mined.store, cap, mined.job_id, mined.video_ids, keyframes=3)
    assert report.counts == {"done": 2} and report.image_ids == mined.video_ids
    assert cap.calls == [3, 3]  # three keyframes per video
    with session_scope(settings.db_url) as s:
        version = s.scalars(select(ModelVersion.id).where(ModelVersion.name == "fake-captioner")).one()
        texts = {(c.video_id, c.model_version_id == version, c.text) for c in s.scalars(select(Caption))}
        first, second = mined.video_ids
        said = "a red circle and a blue square"
        assert texts == {(first, True, said), (second, True, said),
                         (first, False, "a striped cat and a blue sofa")}  # identical keyframe texts stored once
        st = rows(s, mined.job_id, "caption")
        assert st[first].model_version_id == version and st[first].detail["keyframes"] == 3
        assert all(c.image_id is None for c in s.scalars(select(Caption)))


def test_caption_is_idempotent_and_failures_stay_alone(settings, mined):
    first, second = mined.video_ids
    with session_scope(settings.db_url) as s:  # the second video's frames are gone from the store
        from engine.db.models import VideoFrame
        frame = s.scalars(select(VideoFrame).where(VideoFrame.video_id == second, VideoFrame.index == 0)).one()
        (settings.media_path / frame.storage_key).unlink()
    report = run(settings, caption_video_batch, mined.store, FakeCaptioner(), mined.job_id, mined.video_ids,
                 keyframes=2)
    assert report.counts == {"done": 1, "failed": 1}
    with session_scope(settings.db_url) as s:
        assert rows(s, mined.job_id, "caption")[second].error.startswith("cannot read a stored frame")
    pending(settings, mined.job_id, "caption", mined.video_ids)
    cap = FakeCaptioner()
    again = run(settings, caption_video_batch, mined.store, cap, mined.job_id, [first], keyframes=2)
    assert again.counts == {"done": 1} and cap.calls == []  # reused, not recomputed
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Caption).where(Caption.video_id == first)) == 2


def test_captioner_failing_on_every_keyframe_fails_the_video(settings, mined):
    cap = FakeCaptioner(fail_sizes={(160, 120)})
    report = run(settings, caption_video_batch, mined.store, cap, mined.job_id, mined.video_ids, keyframes=2)
    assert report.counts == {"failed": 2}
    with session_scope(settings.db_url) as s:
        assert rows(s, mined.job_id, "caption")[mined.video_ids[1]].error.startswith("captioner failed: RuntimeError")
        # the source's caption is kept all the same
        assert s.scalar(select(func.count()).select_from(Caption)) == 1


def test_model_captions_off_keeps_source_captions(settings, mined):
    report = run(settings, caption_video_batch, mined.store, None, mined.job_id, mined.video_ids, keyframes=2)
    assert report.counts == {"skipped": 2}
    with session_scope(settings.db_url) as s:
        assert list(s.scalars(select(Caption.text))) == ["a striped cat and a blue sofa"]


def test_parse_makes_video_pairs(settings, mined):
    cap = FakeCaptioner(default="a red circle and a blue square")
    run(settings, caption_video_batch, mined.store, cap, mined.job_id, mined.video_ids, keyframes=3)
    pending(settings, mined.job_id, "parse", mined.video_ids)
    report = run(settings, parse_video_batch, FakeParser(), mined.job_id, mined.video_ids)
    assert report.counts == {"done": 2}
    with session_scope(settings.db_url) as s:
        pairs = s.execute(select(ImageConcept.video_id, Concept.text, ImageConcept.origin, ImageConcept.polarity,
                                 ImageConcept.image_id, ImageConcept.caption_id)
                          .join(Concept, Concept.id == ImageConcept.concept_id)).all()
        first, second = mined.video_ids
        assert {(v, t) for v, t, *_ in pairs} == {
            (first, "red circle"), (first, "blue square"), (first, "striped cat"), (first, "blue sofa"),
            (second, "red circle"), (second, "blue square")}
        assert all(o == PairOrigin.CAPTION and p == Polarity.UNKNOWN and i is None and c is not None
                   for _, _, o, p, i, c in pairs)
    pending(settings, mined.job_id, "parse", mined.video_ids)
    run(settings, parse_video_batch, FakeParser(), mined.job_id, mined.video_ids)  # again: nothing new
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(ImageConcept)) == 6


def test_parse_without_captions_skips(settings, mined):
    pending(settings, mined.job_id, "parse", mined.video_ids)
    report = run(settings, parse_video_batch, FakeParser(), mined.job_id, [mined.video_ids[1]])
    assert report.counts == {"skipped": 1}
    with session_scope(settings.db_url) as s:
        assert rows(s, mined.job_id, "parse")[mined.video_ids[1]].status is StageStatus.SKIPPED
