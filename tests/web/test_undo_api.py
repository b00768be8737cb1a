"""Undo of the last verdict through the HTTP API (web/routers/undo.py), on both databases: the author
takes back their verdict and gets the task back; every refusal is a 409 that says why (too late,
a later verdict, another person's, nothing to undo); a role without the queue is refused; junk is a
404/422, never a 500."""

from __future__ import annotations

import uuid

import pytest

from engine.db.models import HumanTask, Mask, MaskState, TaskState, Verdict
from engine.db.session import session_scope
from tests.factories import seed_review_items


@pytest.fixture
def one_pair(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=2,
                                 kinds=("verify_mask",))


def lease(client):
    response = client.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]})
    assert response.status_code == 200, response.text
    return response.json()


def judge(client, task_id, label):
    response = client.post(f"/api/v1/tasks/{task_id}/verdict",
                           json={"client_id": uuid.uuid4().hex, "label": label, "active_ms": 800})
    assert response.status_code == 201, response.text
    return response.json()["verdict_id"]


def refused(response, why):
    assert response.status_code == 409, response.text
    assert response.headers["X-Error-Code"] == "not_undoable" and why in response.json()["detail"]


def test_the_author_undoes_and_gets_the_task_back(login, one_pair, web_settings):
    ann = login("ann")
    task = lease(ann)
    verdict_id = judge(ann, task["id"], "accept")
    offered = ann.get("/api/v1/verdicts/undo").json()
    assert offered["undoable"] and offered["verdict_id"] == verdict_id and offered["task_id"] == task["id"]

    response = ann.post("/api/v1/verdicts/undo", json={"verdict_id": verdict_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["undone_verdict_id"] == verdict_id and body["task"]["id"] == task["id"]
    assert ann.get(f"/api/v1/tasks/{task['id']}").status_code == 200  # leased to the author again
    with session_scope(web_settings.db_url) as s:
        assert s.get(Mask, task["target_mask_id"]).state == MaskState.CANDIDATE
        assert s.get(Verdict, body["verdict_id"]).supersedes_id == verdict_id
    again = ann.get("/api/v1/verdicts/undo").json()
    assert not again["undoable"] and "undone already" in again["reason"]
    refused(ann.post("/api/v1/verdicts/undo"), "undone already")
    judge(ann, task["id"], "reject")  # answered differently
    with session_scope(web_settings.db_url) as s:
        assert s.get(Mask, task["target_mask_id"]).state == MaskState.REJECTED


def test_refusals_are_409s_that_say_why(login, one_pair, web_settings):
    ann, ann2 = login("ann"), login("ann2")
    refused(ann.post("/api/v1/verdicts/undo", json={}), "no verdict")
    first = lease(ann)
    second = lease(ann)
    mine = judge(ann, first["id"], "accept")
    refused(ann2.post("/api/v1/verdicts/undo", json={"verdict_id": mine}), "another person")
    judge(ann, second["id"], "reject")
    refused(ann.post("/api/v1/verdicts/undo", json={"verdict_id": mine}), "later verdict")
    with session_scope(web_settings.db_url) as s:
        last = s.query(Verdict).order_by(Verdict.id.desc()).first()
        assert s.get(HumanTask, last.task_id).state == TaskState.DONE
    web_settings.queue.undo_window_s = 0  # the last verdict is older than the window
    refused(ann.post("/api/v1/verdicts/undo"), "too late")
    web_settings.queue.undo_window_s = 60


def test_roles_and_junk(login, one_pair):
    mle = login("mle")  # no queue permission
    assert mle.post("/api/v1/verdicts/undo").status_code == 403
    assert mle.get("/api/v1/verdicts/undo").status_code == 403
    ann = login("ann")
    assert ann.post("/api/v1/verdicts/undo", json={"verdict_id": 999_999}).status_code == 404
    for junk in ({"verdict_id": "x"}, {"verdict_id": -1}, {"verdict_id": 2**70}, [1, 2], {"verdict_id": None, "z": 1}):
        status = ann.post("/api/v1/verdicts/undo", json=junk).status_code
        assert status in (409, 422), (junk, status)
    response = ann.post("/api/v1/verdicts/undo", content=b"\xff\x00{", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)  # malformed JSON: the app's 400, never a 500
