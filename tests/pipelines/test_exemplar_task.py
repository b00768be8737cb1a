"""The exemplar job on a real Celery worker: boxes posted to the web app (with a broker: never run in
the web process) go to the gpu queue as ``dataengine.exemplars``; the worker's tiny random-weight SAM 3
returns candidate masks at the image's size, which the API reads back (shapes and links, not quality)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from dataengine.serve import create_app
from engine.db.models import ExemplarRequest, ModelVersion, User
from engine.db.session import session_scope
from engine.domain.passwords import hash_password
from engine.domain.vocabulary import Role, TrackState
from tests.conftest import make_settings
from tests.factories import seed_review_items

W, H = 96, 64


def test_exemplars_are_run_by_the_worker_on_the_gpu_queue(start_worker, fresh_pg_url, broker_url, tmp_path,
                                                           models_cache_dir):
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    settings.queue.gold_rate = 0.0
    settings.queue.multi_review_rate = 0.0
    with session_scope(settings.db_url) as s:
        seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",), size=(W, H), kinds=("correct",))
        s.add(User(username="ann", password_hash=hash_password("pw-for-the-worker-test", "ann"),
                   role=Role.ANNOTATOR, is_active=True))
    start_worker(queues="gpu", concurrency=1, DATAENGINE_MODELS__CACHE_DIR=str(models_cache_dir),
                 DATAENGINE_MODEL_PROFILE="tiny", DATAENGINE_EXEMPLARS__SCORE_THRESHOLD="0")
    with TestClient(create_app(settings)) as client:
        login = client.post("/api/v1/auth/login", json={"username": "ann", "password": "pw-for-the-worker-test"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        task = client.post("/api/v1/tasks/next", json={"kinds": ["correct"]}).json()
        posted = client.post(f"/api/v1/tasks/{task['id']}/exemplars", json={"boxes": [[5, 5, 40, 30]], "labels": [1]})
        assert posted.status_code == 202, posted.text
        request_id = posted.json()["request_id"]
        body: dict = {}
        for _ in range(600):  # the worker loads the tiny SAM 3 first
            body = client.get(f"/api/v1/exemplars/{request_id}").json()
            if body["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
    assert body["state"] == "done", body
    assert body["masks"] and all(m["rle"]["size"] == [H, W] for m in body["masks"])
    with session_scope(settings.db_url) as s:
        req = s.get(ExemplarRequest, request_id)
        assert req.state == TrackState.DONE and req.started_at is not None
        version = s.get(ModelVersion, req.model_version_id)
        assert version.kind == "proposer" and version.random_weights is True
