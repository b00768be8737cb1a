"""The tracker job on a real Celery worker: a click posted to the web app (with a broker: never run in
the web process) is sent to the gpu queue as ``dataengine.track``; the worker's tiny random-weight SAM 3
tracker on video propagates it over the window and writes the frames, which the API reads back."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from dataengine.serve import create_app
from engine.db.models import ModelVersion, TrackRequest, User
from engine.db.session import session_scope
from engine.domain.passwords import hash_password
from engine.domain.vocabulary import Role, TrackState
from tests.conftest import make_settings
from tests.web.video_seed import HEIGHT, WIDTH, seed_video_review


def test_a_click_is_tracked_by_the_worker_on_the_gpu_queue(start_worker, fresh_pg_url, broker_url, tmp_path,
                                                            models_cache_dir):
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    settings.queue.gold_rate = 0.0
    settings.queue.multi_review_rate = 0.0
    settings.video.window_frames = 4
    with session_scope(settings.db_url) as s:
        seeded = seed_video_review(s, settings.media_path, kinds=("correct",))
        s.add(User(username="ann", password_hash=hash_password("pw-for-the-worker-test", "ann"),
                   role=Role.ANNOTATOR, is_active=True))
    start_worker(queues="gpu", concurrency=1, DATAENGINE_MODELS__CACHE_DIR=str(models_cache_dir),
                 DATAENGINE_MODEL_PROFILE="tiny")
    app = create_app(settings)
    with TestClient(app) as client:
        login = client.post("/api/v1/auth/login", json={"username": "ann", "password": "pw-for-the-worker-test"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        task = client.post("/api/v1/tasks/next", json={"kinds": ["correct"]}).json()
        assert task["id"] == seeded.tasks["correct"][0]
        posted = client.post(f"/api/v1/video/tasks/{task['id']}/track",
                             json={"frame_index": 5, "points": [[40, 30, 1], [10, 10, 0]]})
        assert posted.status_code == 202, posted.text
        request_id = posted.json()["request_id"]
        assert posted.json()["window"] == [3, 7]
        body: dict = {}
        for _ in range(600):  # the worker loads the tiny tracker first
            body = client.get(f"/api/v1/video/track/{request_id}").json()
            if body["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
    assert body["state"] == "done", body
    assert [f["frame_index"] for f in body["frames"]] == [5, 6, 7, 4, 3]  # clicked, forward, backward
    for frame in body["frames"]:
        assert frame["rle"] is None or frame["rle"]["size"] == [HEIGHT, WIDTH]
    with session_scope(settings.db_url) as s:
        req = s.get(TrackRequest, request_id)
        assert req.state == TrackState.DONE and req.frames_done == 5 and req.started_at is not None
        version = s.get(ModelVersion, req.model_version_id)
        assert version.kind == "tracker" and version.random_weights is True
