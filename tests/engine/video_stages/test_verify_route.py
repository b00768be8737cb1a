"""Verify and route of a video job with fake verifiers (the ports), on SQLite and once on PostgreSQL:
the same verdicts, routing, decision model and human task kinds as for images."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db.models import (
    Calibration,
    Concept,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    ModelVersion,
    Polarity,
    StageStatus,
    TaskKind,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain.calibration import fit_isotonic
from engine.domain.vocabulary import MediaKind
from engine.services import route
from engine.services.video_stages.verify import verify_video_batch
from engine.settings import RoutingSettings
from engine.video_settings import VideoSettings
from tests.engine.video_stages.conftest import pending, proposed, rows, run
from tests.fakes import FakeExhaustivityVerifier, FakeMaskVerifier

ROUTING = RoutingSettings(audit_rate=0.0)


@pytest.fixture
def judged(settings, mined):
    """Video 1: 'good circle', 'bad square' (two masklets each); video 2: 'all birds' (two), 'nothing here' (none)."""
    first, second = mined.video_ids
    pairs, _ = proposed(settings, mined, {first: ["good circle", "bad square"], second: ["all birds", "nothing here"]})
    pending(settings, mined.job_id, "verify", mined.video_ids)
    mv, ev = FakeMaskVerifier(), FakeExhaustivityVerifier()
    report = run(settings, verify_video_batch, mined.store, mv, ev, 0.5, VideoSettings(), mined.job_id,
                 mined.video_ids)
    return pairs, report, mv, ev


def _verdicts(s, kind):
    return s.scalars(select(Verdict).where(Verdict.source == VerdictSource.AI, Verdict.kind == kind)
                     .order_by(Verdict.id)).all()


def test_verify_judges_every_masklet_and_pair_once(settings, mined, judged):
    pairs, report, mv, ev = judged
    first, second = mined.video_ids
    assert report.counts == {"done": 2}
    assert mv.seen == 6 * 4  # six masklets, each on four of its frames
    assert ev.boxes == {"good circle": 2 * 3, "bad square": 0, "all birds": 2 * 3, "nothing here": 0}
    with session_scope(settings.db_url) as s:
        mvv = s.scalars(select(ModelVersion.id).where(ModelVersion.name == "fake-mv")).one()
        masks = _verdicts(s, VerdictKind.MASK)
        assert len(masks) == s.scalar(select(func.count()).select_from(Mask)) == 6
        assert all(v.model_version_id == mvv and v.payload == {"frames": [0, 4, 7, 11]} for v in masks)
        assert all(abs(sum(v.probabilities.values()) - 1) < 1e-6 for v in masks)
        good = [v for v in masks if v.pair_id == pairs[(first, "good circle")]]
        assert good[0].label == "accept" and good[0].probabilities["accept"] == pytest.approx(0.97)
        by_pair = {v.pair_id: v for v in _verdicts(s, VerdictKind.EXHAUSTIVITY)}
        assert set(by_pair) == set(pairs.values())
        good_ids = sorted(s.scalars(select(Mask.id).where(Mask.pair_id == pairs[(first, "good circle")])))
        assert by_pair[pairs[(first, "good circle")]].payload == {"boxes": 6, "mask_ids": good_ids,
                                                                  "keyframes": [0, 6, 11]}
        assert by_pair[pairs[(first, "bad square")]].payload["mask_ids"] == []  # MV rejects them: no box
        assert rows(s, mined.job_id, "verify")[first].detail == {"masklets": 4, "pairs": 2}
    pending(settings, mined.job_id, "verify", mined.video_ids)
    mv2, ev2 = FakeMaskVerifier(), FakeExhaustivityVerifier()
    run(settings, verify_video_batch, mined.store, mv2, ev2, 0.5, VideoSettings(), mined.job_id, mined.video_ids)
    assert mv2.seen == 0 and ev2.boxes == {}  # same versions, same masklets shown: nothing judged twice


def test_a_crashing_verifier_fails_its_video_alone(settings, mined):
    first, second = mined.video_ids
    proposed(settings, mined, {first: ["crash circle"], second: ["good circle"]})
    pending(settings, mined.job_id, "verify", mined.video_ids)
    report = run(settings, verify_video_batch, mined.store, FakeMaskVerifier(), FakeExhaustivityVerifier(), 0.5,
                 VideoSettings(mv_frames=2), mined.job_id, mined.video_ids)
    assert report.counts == {"done": 1, "failed": 1}
    with session_scope(settings.db_url) as s:
        item = rows(s, mined.job_id, "verify")[first]
        assert item.error.startswith("2 verifier calls failed: masklet") and "verifier crashed" in item.error
        assert item.detail == {"masklets": 2, "pairs": 1}  # EV still judged the pair (no surviving box)
        assert len(_verdicts(s, VerdictKind.MASK)) == 2  # the other video's masklets


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_route_without_calibration_makes_human_tasks_of_the_image_kinds(settings, mined, judged):
    pending(settings, mined.job_id, "route", mined.video_ids)
    report = run(settings, route.route_batch, ROUTING, mined.job_id, mined.video_ids, media=MediaKind.VIDEO)
    assert report.counts["human"] == 6 + 4 and report.counts["done"] == 2
    with session_scope(settings.db_url) as s:
        kinds = dict(s.execute(select(HumanTask.kind, func.count()).group_by(HumanTask.kind)).all())
        assert kinds == {TaskKind.VERIFY_MASK: 6, TaskKind.CHECK_EXHAUSTIVITY: 4}
        video_pairs = set(s.scalars(select(ImageConcept.id).where(ImageConcept.video_id.is_not(None))))
        assert {t.pair_id for t in s.scalars(select(HumanTask))} == video_pairs


def _calibrate(s, name, kind, accept, reject):
    version = s.scalars(select(ModelVersion).where(ModelVersion.name == name)).one()
    s.add(Calibration(model_version_id=version.id, task_kind=kind, method="isotonic",
                      calibrator=fit_isotonic([0.0, 1.0], [0, 1]).to_dict(), target_precision=0.95,
                      accept_threshold=accept, reject_threshold=reject, n_verdicts=0, metrics={}))


def test_calibrated_route_decides_masklets_and_pairs(settings, mined, judged):
    pairs, *_ = judged
    first, _ = mined.video_ids
    with session_scope(settings.db_url) as s:
        _calibrate(s, "fake-mv", TaskKind.VERIFY_MASK, 0.95, 0.05)
        _calibrate(s, "fake-ev", TaskKind.CHECK_EXHAUSTIVITY, 0.95, 0.05)
    pending(settings, mined.job_id, "route", mined.video_ids)
    report = run(settings, route.route_batch, ROUTING, mined.job_id, mined.video_ids, media=MediaKind.VIDEO)
    assert report.counts["auto_accept"] >= 3 and report.counts["auto_reject"] >= 2
    with session_scope(settings.db_url) as s:
        states = {(p, m.state) for p, m in s.execute(select(ImageConcept.id, Mask).join(Mask)).all()}
        assert {st for p, st in states if p == pairs[(first, "good circle")]} == {MaskState.ACCEPTED}
        assert {st for p, st in states if p == pairs[(first, "bad square")]} == {MaskState.REJECTED}
        good = s.get(ImageConcept, pairs[(first, "good circle")])
        assert good.is_exhaustive and good.polarity is Polarity.POSITIVE  # through the decision model
        tasks = {t.pair_id for t in s.scalars(select(HumanTask))}
        assert good.id not in tasks
        text = dict(s.execute(select(ImageConcept.id, Concept.text).join(Concept)).all())
        assert {text[p] for p in tasks} <= {"bad square", "nothing here", "all birds"}
    assert rows_done(settings, mined) == {StageStatus.DONE}


def rows_done(settings, mined):
    with session_scope(settings.db_url) as s:
        return {i.status for i in rows(s, mined.job_id, "route").values()}
