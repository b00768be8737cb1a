"""The exemplar endpoints: boxes on an image correction you hold → 202, run off the request by the
served app's embedded runner on the tiny random-weight SAM 3 (shapes and links, not quality), read
back only by the person who asked; bad boxes 422, other tasks 409, roles without annotate 403."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.db.models import ExemplarRequest, Mask, ModelVersion
from engine.db.session import session_scope
from tests.factories import seed_review_items
from tests.web.conftest import PASSWORD

W, H = 96, 64


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("fresh_sqlite_url")


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), size=(W, H),
                                 kinds=("check_exhaustivity", "correct"))


def _client(app, username: str) -> TestClient:
    client = TestClient(app)
    login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    return client


def _lease(client: TestClient, kind: str) -> dict:
    response = client.post("/api/v1/tasks/next", json={"kinds": [kind]})
    assert response.status_code == 200, response.text
    return response.json()


def _wait(client: TestClient, request_id: int, tries: int = 1200) -> dict:
    body: dict = {}
    for _ in range(tries):
        body = client.get(f"/api/v1/exemplars/{request_id}").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"exemplar request {request_id} never finished: {body}")


def test_exemplars_run_on_the_tiny_sam3_in_the_embedded_runner(web_settings, seeded, models_cache_dir):
    from dataengine.serve import create_app as serve_app

    web_settings.models.cache_dir = models_cache_dir
    web_settings.exemplars.score_threshold = 0.0  # random weights: keep what the model returns
    app = serve_app(web_settings)
    with _client(app, "ann") as ann, _client(app, "ann2") as other:
        task = _lease(ann, "correct")
        posted = ann.post(f"/api/v1/tasks/{task['id']}/exemplars", json={"boxes": [[5, 5, 40, 30], [50, 10, 90, 60]],
                                                                           "labels": [1, 0]})
        assert posted.status_code == 202 and posted.json()["state"] == "queued", posted.text
        request_id = posted.json()["request_id"]
        done = _wait(ann, request_id)
        assert other.get(f"/api/v1/exemplars/{request_id}").status_code == 404
        assert done["state"] == "done" and done["error"] is None, done
        kept = {"rle": done["masks"][0]["rle"], "tool": "exemplar"}
        verdict = f"/api/v1/tasks/{task['id']}/verdict"
        bad = ann.post(verdict, json={"client_id": "exemplar-bad-1", "label": "corrected", "active_ms": 900,
                                      "masks": [{**kept, "exemplar_id": request_id + 1}]})
        assert bad.status_code == 422, bad.text
        good = ann.post(verdict, json={"client_id": "exemplar-ok-1", "label": "corrected", "active_ms": 900,
                                       "masks": [{**kept, "exemplar_id": request_id}]})
        assert good.status_code == 201, good.text
    assert done["masks"] and all(m["rle"]["size"] == [H, W] and len(m["bbox"]) == 4 for m in done["masks"])
    assert len(done["masks"]) <= web_settings.exemplars.max_masks
    with session_scope(web_settings.db_url) as s:
        req = s.get(ExemplarRequest, request_id)
        assert (req.boxes, req.labels, req.task_id) == ([[5, 5, 40, 30], [50, 10, 90, 60]], [1, 0], task["id"])
        version = s.get(ModelVersion, req.model_version_id)
        assert version.random_weights and version.params["exemplars"] is True
        made = s.scalars(select(Mask).where(Mask.prompt.is_not(None))).all()
        assert len(made) == 1 and made[0].rle_counts == done["masks"][0]["rle"]["counts"]
        assert made[0].prompt == {"exemplars": {"request_id": request_id, "boxes": [[5, 5, 40, 30], [50, 10, 90, 60]],
                                                "labels": [1, 0]}, "model_version_id": version.id}


def test_bad_input_roles_and_tasks_are_refused(web_settings, seeded):
    from web.app import create_app

    class Recorder:
        def __init__(self) -> None:
            self.submitted: list[int] = []

        def submit(self, request_id: int) -> None:
            self.submitted.append(request_id)

    runner = Recorder()
    app = create_app(web_settings, exemplar_runner=runner, installed_ports=False)
    with _client(app, "ann") as ann, _client(app, "mle") as mle:
        check = _lease(ann, "check_exhaustivity")
        assert ann.post(f"/api/v1/tasks/{check['id']}/exemplars",
                        json={"boxes": [[1, 1, 5, 5]], "labels": [1]}).status_code == 409
        ann.post(f"/api/v1/tasks/{check['id']}/release")
        task = _lease(ann, "correct")
        url = f"/api/v1/tasks/{task['id']}/exemplars"
        for body in ({"boxes": [[1, 1, 5, 5]], "labels": [2]}, {"boxes": [[1, 1, 5, 500]], "labels": [1]},
                     {"boxes": [[5, 5, 5, 9]], "labels": [1]}, {"boxes": [[1, 1, 5, 5]] * 9, "labels": [1] * 9},
                     {"boxes": [], "labels": []}, {"boxes": [[1, 1, 5, 5]], "labels": [1, 0]}):
            assert ann.post(url, json=body).status_code == 422, body
        assert mle.post(url, json={"boxes": [[1, 1, 5, 5]], "labels": [1]}).status_code == 403
        assert runner.submitted == []
        ok = ann.post(url, json={"boxes": [[1, 1, 5, 5]], "labels": [1]})
        assert ok.status_code == 202 and runner.submitted == [ok.json()["request_id"]]
