"""Hard negatives of a video job with fake models: adversarial candidates kept with their masklets."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.db.models import Concept, ImageConcept, Mask, MaskletFrame, PairOrigin, StageStatus
from engine.db.session import session_scope
from engine.repositories import labels
from engine.services.video_stages.negatives import negatives_video_batch
from engine.settings import NegativeSettings
from engine.video_settings import VideoSettings
from tests.engine.video_stages.conftest import FRAMES, pending, proposed, rows, run
from tests.engine.video_stages.fakes import FakeMaskletProposer
from tests.fakes import FakeEmbedder, FakeSuggester


def _setup(settings, mined):
    first, second = mined.video_ids
    proposed(settings, mined, {first: ["red circle", "blue square"], second: ["nothing here"]})
    with session_scope(settings.db_url) as s:  # known concepts: neighbours of 'red circle' by their last word
        labels.concept_ids(s, {"decoy circle", "green circle"})
    pending(settings, mined.job_id, "negatives", mined.video_ids)
    return first, second


def _negatives(s):
    return dict(s.execute(select(Concept.text, ImageConcept.id).join(Concept, Concept.id == ImageConcept.concept_id)
                          .where(ImageConcept.origin == PairOrigin.HARD_NEGATIVE)).all())


def test_adversarial_candidates_kept_and_a_failing_one_alone(settings, mined):
    first, second = _setup(settings, mined)
    proposer = FakeMaskletProposer()
    suggester = FakeSuggester({"red circle": ["a decoy ball", "explode thing"]})
    report = run(settings, negatives_video_batch, mined.store, proposer, FakeEmbedder(), suggester,
                 NegativeSettings(), VideoSettings(), mined.job_id, mined.video_ids)
    assert report.counts["hard_negatives"] == 2
    assert sorted(proposer.calls[0]) == ["decoy ball", "decoy circle", "explode thing", "green circle"]  # one session
    with session_scope(settings.db_url) as s:
        negatives = _negatives(s)
        assert set(negatives) == {"decoy circle", "decoy ball"}  # green circle's masklets are elsewhere
        for pair_id in negatives.values():
            masks = s.scalars(select(Mask).where(Mask.pair_id == pair_id)).all()
            assert len(masks) == 2 and all((m.first_frame, m.last_frame) == (0, FRAMES - 1) for m in masks)
            assert s.scalar(select(func.count()).select_from(MaskletFrame).where(
                MaskletFrame.mask_id.in_([m.id for m in masks]))) == 2 * FRAMES
        st = rows(s, mined.job_id, "negatives")
        assert st[first].status is StageStatus.FAILED
        assert st[first].error == "1 candidates failed: 'explode thing': RuntimeError: proposer failed (fake)"
        assert {k["phrase"] for k in st[first].detail["kept"]} == {"decoy circle", "decoy ball"}
        assert all(k["of"] == "red circle" and k["iou"] == 1.0 for k in st[first].detail["kept"])
        assert st[second].status is StageStatus.SKIPPED  # no positive with masklets


def test_rerun_adds_nothing_and_off_skips(settings, mined):
    _setup(settings, mined)
    args = (mined.store, FakeMaskletProposer(), FakeEmbedder(), None, NegativeSettings(), VideoSettings(),
            mined.job_id, mined.video_ids)
    assert run(settings, negatives_video_batch, *args).counts["hard_negatives"] == 1
    pending(settings, mined.job_id, "negatives", mined.video_ids)
    again = FakeMaskletProposer()
    report = run(settings, negatives_video_batch, mined.store, again, *args[2:])
    assert report.counts == {"done": 1, "skipped": 1} and again.calls == []  # this version's search stands
    with session_scope(settings.db_url) as s:
        assert set(_negatives(s)) == {"decoy circle"}
        assert s.scalar(select(func.count()).select_from(Mask)) == 6
    pending(settings, mined.job_id, "negatives", mined.video_ids)
    off = run(settings, negatives_video_batch, *args[:4], NegativeSettings(enabled=False), *args[5:])
    assert off.counts == {"skipped": 2}
