"""The video page's API (web/routers/video.py, the contract in docs): video task payloads, frames,
masklet frames, tracker requests run off the request (the embedded runner) and read back by polling
and as server-sent events, and video corrections through the same verdict endpoint and decision model.

SQLite unless a test asks for PostgreSQL; the tracker is a test double of the port except in the test
marked ``models`` (the tiny random-weight SAM 3 tracker on video)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.db.models import HumanTask, TrackRequest, User
from engine.db.session import session_scope
from engine.domain.vocabulary import TrackState
from engine.storage import LocalMediaStore
from pipelines.context import TaskContext
from pipelines.tracking import LocalTracking
from tests.factories import seed_review_items
from tests.web.conftest import PASSWORD
from tests.web.video_seed import FRAMES, HEIGHT, WIDTH, ShapeTracker, seed_video_review
from web.app import create_app


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite unless a test asks for PostgreSQL (``parametrize("database_url", ["postgresql"], indirect=True)``)."""
    return request.getfixturevalue("fresh_sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


class _Models:
    """A model cache whose video tracker is the given one."""

    def __init__(self, tracker: ShapeTracker) -> None:
        self.tracker = tracker

    def video_tracker(self) -> ShapeTracker:
        return self.tracker


@pytest.fixture
def tracker() -> ShapeTracker:
    return ShapeTracker(absent=(6,))


@pytest.fixture
def app(web_settings, tracker):
    """The app with an embedded track runner whose tracker is the test double."""
    context = TaskContext(settings=web_settings, store=LocalMediaStore(web_settings.media_path),
                          models=_Models(tracker))  # type: ignore[arg-type]
    return create_app(web_settings, tracking=LocalTracking(context))


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_video_review(s, web_settings.media_path)


def lease(client: TestClient, kind: str) -> dict:
    response = client.post("/api/v1/tasks/next", json={"kinds": [kind]})
    assert response.status_code == 200, response.text
    return response.json()


def wait_done(client: TestClient, request_id: int, tries: int = 200) -> dict:
    body: dict = {}
    for _ in range(tries):
        body = client.get(f"/api/v1/video/track/{request_id}").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"tracker request {request_id} never finished: {body}")


# ------------------------------------------------------------------------------------ payload
def test_video_tasks_carry_the_video_its_masklets_and_the_frame_url(login, seeded):
    client = login("ann")
    verify = lease(client, "verify_mask")
    assert verify["media"] == "video" and verify["image"] is None and verify["phrase"] == "moving shape"
    assert verify["video"] == {"id": seeded.video_id, "width": WIDTH, "height": HEIGHT, "frame_count": FRAMES,
                               "sample_fps": 6.0, "fps": 12.0, "duration_s": FRAMES / 6}
    assert verify["frame_url"] == "/api/v1/video/{video_id}/frames/{index}"
    (one,) = verify["masklets"]
    assert one["id"] == verify["target_mask_id"] and (one["first_frame"], one["last_frame"]) == (0, FRAMES - 1)
    assert one["color_index"] == seeded.masklets.index(one["id"]) and one["state"] == "candidate"
    assert verify["keys"] == {"accept": "a", "reject": "r", "ungroundable": "u"}
    exhaustive = lease(client, "check_exhaustivity")
    assert [m["id"] for m in exhaustive["masklets"]] == seeded.masklets
    assert [m["color_index"] for m in exhaustive["masklets"]] == [0, 1]
    assert client.get(f"/api/v1/tasks/{exhaustive['id']}").json()["masklets"] == exhaustive["masklets"]
    frame = client.get(verify["frame_url"].format(video_id=seeded.video_id, index=FRAMES - 1))
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"


def test_image_tasks_say_their_medium(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("check_exhaustivity",))
    task = lease(login("ann"), "check_exhaustivity")
    assert task["media"] == "image" and task["image"]["id"] and "video" not in task


# ------------------------------------------------------------------------------------ frames
def test_frames_are_served_by_video_and_index_to_those_who_may_read_media(login, seeded, app):
    url = f"/api/v1/video/{seeded.video_id}/frames/3"
    for who in ("ann", "mle", "root"):
        response = login(who).get(url)
        assert response.status_code == 200 and response.content[:3] == b"\xff\xd8\xff", who
        assert response.headers["cache-control"].startswith("private, max-age=")
    client = login("ann")
    etag = client.get(url).headers["etag"]
    assert client.get(url, headers={"if-none-match": etag}).status_code == 304
    assert client.get(f"/api/v1/video/{seeded.video_id}/frames/{FRAMES}").status_code == 404
    assert client.get(f"/api/v1/video/{seeded.video_id + 1}/frames/0").status_code == 404
    assert client.get(f"/api/v1/video/{seeded.video_id}/frames/-1").status_code == 422
    assert client.get(f"/api/v1/video/{seeded.video_id}/frames/x").status_code == 422
    with TestClient(app) as anonymous:
        assert anonymous.get(url).status_code == 401


def test_masklet_frames_come_in_frame_order_page_by_page(login, seeded, web_settings):
    client = login("rev")
    mask_id = seeded.masklets[1]
    whole = client.get(f"/api/v1/video/masklets/{mask_id}/frames").json()
    assert whole["mask_id"] == mask_id and whole["next"] is None
    assert [f["frame_index"] for f in whole["frames"]] == list(range(FRAMES))
    first = whole["frames"][0]
    assert first["rle"]["size"] == [HEIGHT, WIDTH] and first["area"] > 0 and len(first["bbox"]) == 4
    part = client.get(f"/api/v1/video/masklets/{mask_id}/frames", params={"start": 2, "end": 4}).json()
    assert [f["frame_index"] for f in part["frames"]] == [2, 3, 4]
    from engine.services import video_review

    with session_scope(web_settings.db_url) as s:
        paged = video_review.masklet_frames(s, mask_id, 1, None, limit=3)
    assert [f["frame_index"] for f in paged["frames"]] == [1, 2, 3] and paged["next"] == 4
    assert client.get("/api/v1/video/masklets/999999/frames").status_code == 404
    assert client.get(f"/api/v1/video/masklets/{mask_id}/frames", params={"start": -1}).status_code == 422


def test_an_image_mask_is_no_masklet(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        made = seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=())
    assert login("ann").get(f"/api/v1/video/masklets/{made['masks'][0]}/frames").status_code == 404


# ------------------------------------------------------------------------------------ tracker requests
def test_clicks_are_refused_with_a_reason_unless_they_fit_the_task(login, seeded, web_settings):
    web_settings.video.max_track_points = 3
    client, other = login("ann"), login("ann2")
    verify = lease(client, "verify_mask")
    correct = lease(client, "correct")
    url = f"/api/v1/video/tasks/{correct['id']}/track"
    ok = {"frame_index": 2, "points": [[30, 30, 1]]}
    assert other.post(url, json=ok).status_code == 409  # not their lease
    engineer = login("mle")  # may read media, not work the queue
    assert engineer.post(url, json=ok).status_code == 403
    assert engineer.get("/api/v1/video/track/1").status_code == 403
    assert client.post(f"/api/v1/video/tasks/{verify['id']}/track", json=ok).status_code == 422  # not a correction
    for bad in ({"frame_index": FRAMES, "points": [[30, 30, 1]]}, {"frame_index": 0, "points": []},
                {"frame_index": 0, "points": [[WIDTH + 1, 3, 1]]}, {"frame_index": 0, "points": [[3, 3, 2]]},
                {"frame_index": 0, "points": [[1, 1, 1]] * 4}, {"frame_index": -1, "points": [[3, 3, 1]]},
                {"frame_index": 0, "points": [[3, 3, 1]], "mask_id": 999999}, {"points": [[3, 3, 1]]}):
        response = client.post(url, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "invalid"
    nan = client.post(url, content=b'{"frame_index": 0, "points": [[NaN, 1, 1]]}',
                      headers={"content-type": "application/json"})
    assert nan.status_code == 422
    with session_scope(web_settings.db_url) as s:
        assert s.scalars(select(TrackRequest)).all() == []


def test_an_image_correction_takes_no_video_click(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("correct",))
    client = login("ann")
    task = lease(client, "correct")
    response = client.post(f"/api/v1/video/tasks/{task['id']}/track", json={"frame_index": 0, "points": [[3, 3, 1]]})
    assert response.status_code == 422 and "not a video task" in response.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_click_is_tracked_off_the_request_and_read_back_by_polling_and_as_events(login, seeded, tracker):
    client = login("ann")
    task = lease(client, "correct")
    response = client.post(f"/api/v1/video/tasks/{task['id']}/track",
                           json={"frame_index": 4, "points": [[40, 30, 1], [5, 5, 0]], "mask_id": seeded.masklets[0]})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["state"] == "queued" and accepted["window"] == [0, FRAMES - 1]
    done = wait_done(client, accepted["request_id"])
    assert done["state"] == "done" and done["error"] is None and done["frames_done"] == FRAMES
    order = [f["frame_index"] for f in done["frames"]]
    assert order == [4, 5, 6, 7, 3, 2, 1, 0]  # the clicked frame, forward, backward
    assert [f["seq"] for f in done["frames"]] == list(range(1, FRAMES + 1))
    absent = done["frames"][2]
    assert absent["frame_index"] == 6 and absent["rle"] is None and absent["bbox"] is None
    assert done["frames"][0]["rle"]["size"] == [HEIGHT, WIDTH]
    later = client.get(f"/api/v1/video/track/{accepted['request_id']}", params={"after": 6}).json()
    assert [f["seq"] for f in later["frames"]] == [7, 8]
    assert login("ann2").get(f"/api/v1/video/track/{accepted['request_id']}").status_code == 404  # not theirs
    with client.stream("GET", f"/api/v1/video/track/{accepted['request_id']}/events", params={"after": 2}) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        text = "".join(events.iter_text())
    assert text.count("event: frame") == FRAMES - 2 and text.count("event: end") == 1
    assert text.index("id: 3\n") < text.index("event: end") and '"timed_out":false' in text
    assert tracker.calls == [(4, (0, FRAMES - 1))]


def test_an_unfinished_request_streams_until_its_timeout(login, seeded, web_settings):
    with session_scope(web_settings.db_url) as s:  # queued, never run
        task = s.get(HumanTask, seeded.tasks["correct"][0])
        user_id = s.scalar(select(User.id).where(User.username == "ann"))
        req = TrackRequest(task_id=task.id, user_id=user_id, video_id=seeded.video_id, frame_index=0,
                           points=[[1, 1, 1]], state=TrackState.QUEUED, window_start=0, window_end=3)
        s.add(req)
        s.flush()
        request_id = req.id
    client = login("ann")
    with client.stream("GET", f"/api/v1/video/track/{request_id}/events", params={"timeout_s": 0.3}) as events:
        text = "".join(events.iter_text())
    assert "event: frame" not in text and text.count("event: end") == 1 and '"timed_out":true' in text
    assert client.get("/api/v1/video/track/999999/events").status_code == 404


def test_without_a_track_runner_a_click_is_refused_as_unavailable(web_settings, seeded):
    app = create_app(web_settings, installed_ports=False)
    with TestClient(app) as client:
        login = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        task = lease(client, "correct")
        response = client.post(f"/api/v1/video/tasks/{task['id']}/track", json={"frame_index": 0,
                                                                                 "points": [[3, 3, 1]]})
    assert response.status_code == 503


def test_a_click_runs_on_the_tiny_video_tracker_in_the_embedded_runner(web_settings, seeded, models_cache_dir):
    """The served app as `dataengine serve` builds it without a broker: its track runner is a thread of
    the process with the process's model cache (the tiny random-weight SAM 3 tracker on video)."""
    from dataengine.serve import create_app as serve_app

    web_settings.models.cache_dir = models_cache_dir
    web_settings.video.window_frames = 4
    with TestClient(serve_app(web_settings)) as client:
        login = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        task = lease(client, "correct")
        posted = client.post(f"/api/v1/video/tasks/{task['id']}/track", json={"frame_index": 1,
                                                                               "points": [[30, 30, 1]]})
        assert posted.status_code == 202 and posted.json()["window"] == [0, 3]
        done = wait_done(client, posted.json()["request_id"], tries=1200)
    assert done["state"] == "done", done
    assert [f["frame_index"] for f in done["frames"]] == [1, 2, 3, 0]
    assert all(f["rle"] is None or f["rle"]["size"] == [HEIGHT, WIDTH] for f in done["frames"])
