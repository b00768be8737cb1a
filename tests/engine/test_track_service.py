"""engine/services/track.py: a tracker request runs queued → running → done | failed, its frames
written in the port's order (clicked frame, forward, backward) as they arrive, with the model
version stamped; a request delivered twice is not run twice. The tracker here is a test double of the
VideoTracker port (the real tiny model runs through the API and the worker tests)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db.models import HumanTask, ModelVersion, TrackFrame, TrackRequest, User
from engine.db.session import session_scope
from engine.domain.masks import RleMask, decode_mask
from engine.domain.vocabulary import Role, TaskState, TrackState
from engine.repositories.videos import frames_of
from engine.services import track, video_review
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.web.video_seed import HEIGHT, WIDTH, ShapeTracker, box_mask, seed_video_review


@pytest.fixture
def settings(fresh_sqlite_url, tmp_path):
    return make_settings(fresh_sqlite_url, tmp_path)


def _request(settings, frame_index: int = 3, window_frames: int = 4) -> int:
    with session_scope(settings.db_url) as s:
        seeded = seed_video_review(s, settings.media_path, kinds=("correct",))
        user = User(username="ann", password_hash="x", role=Role.ANNOTATOR, is_active=True)
        s.add(user)
        s.flush()
        task = s.get(HumanTask, seeded.tasks["correct"][0])
        task.state, task.lease_owner_id = TaskState.LEASED, user.id
        ask = video_review.TrackAsk(frame_index, [(30.0, 30.0, 1), (5.0, 5.0, 0)])
        return video_review.request_track(s, task.id, user.id, ask, window_frames=window_frames, max_points=8).id


def _run(settings, request_id: int, tracker: ShapeTracker) -> track.TrackOutcome:
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        return track.run_request(s, request_id, lambda: tracker, lambda s2, v: frames_of(s2, store, v))


def test_a_request_writes_the_clicked_frame_first_then_forward_then_backward(settings):
    request_id = _request(settings, frame_index=3, window_frames=4)  # window 1..5
    tracker = ShapeTracker(absent=(5,))
    out = _run(settings, request_id, tracker)
    assert (out.state, out.frames, out.error) == ("done", 5, None)
    assert tracker.calls == [(3, (1, 5))]
    with session_scope(settings.db_url) as s:
        req = s.get(TrackRequest, request_id)
        assert (req.state, req.frames_done, req.window_start, req.window_end) == (TrackState.DONE, 5, 1, 5)
        assert req.started_at is not None and req.finished_at is not None and req.error is None
        assert s.get(ModelVersion, req.model_version_id).name == "test-shape-tracker"
        rows = s.scalars(select(TrackFrame).where(TrackFrame.request_id == request_id).order_by(TrackFrame.seq)).all()
        assert [(r.seq, r.frame_index) for r in rows] == [(1, 3), (2, 4), (3, 5), (4, 2), (5, 1)]
        absent = rows[2]
        assert absent.rle_counts is None and absent.area == 0
        first = rows[0]
        mask = decode_mask(RleMask(first.rle_counts, HEIGHT, WIDTH, (0, 0, 0, 0), first.area))
        assert (mask == box_mask(3, 0)).all() and first.area == int(box_mask(3, 0).sum())
        page = video_review.track_frames(s, request_id, req.user_id, after=2)
    assert [f["frame_index"] for f in page["frames"]] == [5, 2, 1]
    assert page["frames"][0]["rle"] is None and page["frames"][1]["rle"]["size"] == [HEIGHT, WIDTH]
    assert page["state"] == "done" and page["window"] == [1, 5]


def test_a_failing_tracker_fails_the_request_with_its_reason_and_keeps_the_frames_made(settings):
    request_id = _request(settings)
    out = _run(settings, request_id, ShapeTracker(fail_after=2))
    assert (out.state, out.frames, out.error) == ("failed", 2, "RuntimeError: the tracker ran out of memory")
    with session_scope(settings.db_url) as s:
        req = s.get(TrackRequest, request_id)
        assert req.state == TrackState.FAILED and req.error == out.error and req.finished_at is not None
        assert len(s.scalars(select(TrackFrame).where(TrackFrame.request_id == request_id)).all()) == 2


def test_masks_of_another_size_than_the_video_fail_the_request_clearly(settings):
    request_id = _request(settings)
    out = _run(settings, request_id, ShapeTracker(size=(50, 40)))
    assert out.state == "failed" and "50×40" in out.error and f"{WIDTH}×{HEIGHT}" in out.error


def test_a_request_delivered_again_runs_once_when_done_and_starts_over_while_running(settings):
    request_id = _request(settings)
    first = ShapeTracker(fail_after=1)
    with session_scope(settings.db_url) as s:  # a worker died mid-run: the request is running, one frame in
        s.get(TrackRequest, request_id).state = TrackState.RUNNING
        s.add(TrackFrame(request_id=request_id, frame_index=3, seq=1, rle_counts=None, area=0))
    again = ShapeTracker()
    out = _run(settings, request_id, again)
    assert out.state == "done" and len(again.calls) == 1
    repeat = _run(settings, request_id, first)
    assert repeat.state == "done" and repeat.frames == 0 and first.calls == []  # finished: not run again
    with session_scope(settings.db_url) as s:
        seqs = s.scalars(select(TrackFrame.seq).where(TrackFrame.request_id == request_id)).all()
        assert sorted(seqs) == list(range(1, out.frames + 1))


def test_an_unknown_request_is_reported_missing(settings):
    assert _run(settings, 12345, ShapeTracker()).state == "missing"


def test_a_task_has_a_bounded_number_of_clicks_waiting(settings):
    request_id = _request(settings)
    with session_scope(settings.db_url) as s:
        req = s.get(TrackRequest, request_id)
        ask = video_review.TrackAsk(0, [(1.0, 1.0, 1)])
        for _ in range(video_review.MAX_OPEN_REQUESTS - 1):
            video_review.request_track(s, req.task_id, req.user_id, ask, window_frames=4, max_points=8)
        with pytest.raises(video_review.TrackRefused, match="still being tracked"):
            video_review.request_track(s, req.task_id, req.user_id, ask, window_frames=4, max_points=8)
        s.query(TrackRequest).update({"state": TrackState.DONE})
        again = video_review.request_track(s, req.task_id, req.user_id, ask, window_frames=4, max_points=8)
        assert (again.window_start, again.window_end) == (0, 2)


def test_the_servers_tracker_thread_fails_a_request_it_cannot_run(settings, monkeypatch):
    """Embedded mode: a request the thread could not run at all (its model cache or database broke
    before the service took it) is failed with the reason, not left queued for the page to wait on."""
    import time

    from pipelines import tracking
    from pipelines.context import TaskContext

    def broken(ctx, request_id, database=None):
        raise RuntimeError("tracker cache exploded")

    monkeypatch.setattr(tracking, "run_track", broken)
    request_id = _request(settings)
    tracking.LocalTracking(TaskContext.from_settings(settings)).submit(request_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with session_scope(settings.db_url) as s:
            req = s.get_one(TrackRequest, request_id)
            if req.state != TrackState.QUEUED:
                break
        time.sleep(0.05)
    assert req.state == TrackState.FAILED
    assert "tracker cache exploded" in (req.error or "")
