"""The task's "why" line (the router's reason: the AI's verdict) reaches only the roles of
``queue.show_ai_reason_to``, in plain words (engine/services/task_reason.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from engine.db.models import HumanTask
from engine.db.session import session_scope
from engine.domain.routing import MaskItem, Thresholds, percent, route_mask
from engine.domain.vocabulary import Role
from engine.services.task_reason import plain, shown_reason
from engine.settings import QueueSettings
from tests.factories import seed_review_items

OLD_WORDING = "P(accept)=0.42 between 0.2 reject and 0.8 accept thresholds; AI top label reject (0.23)"


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        seeded = seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("verify_mask",))
        s.execute(update(HumanTask).values(reason=OLD_WORDING))
        return seeded


def lease(client):
    response = client.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]})
    assert response.status_code == 200, response.text
    task = response.json()
    assert "id" in task, task
    return task


def test_annotators_do_not_see_the_ai_verdict_by_default():
    assert QueueSettings().show_ai_reason_to == [Role.REVIEWER, Role.ADMIN]


def test_an_annotator_gets_no_why_line_and_a_reviewer_a_plain_one(login, seeded):
    ann = login("ann")
    task = lease(ann)
    assert "reason" in task and task["reason"] is None
    assert ann.get(f"/api/v1/tasks/{task['id']}").json()["reason"] is None
    assert [t["reason"] for t in ann.get("/api/v1/tasks/held").json()] == [None]
    shown = lease(login("rev"))["reason"]
    assert shown == "P(accept)=0.42 between 0.2 reject and 0.8 accept thresholds; the AI suggested: reject (23 %)"


def test_the_setting_decides_who_sees_it(login, seeded, web_settings):
    web_settings.queue.show_ai_reason_to = [Role.ANNOTATOR]
    assert "the AI suggested: reject (23 %)" in lease(login("ann"))["reason"]
    assert lease(login("rev"))["reason"] is None


def test_the_wording_is_plain():
    mask = MaskItem(mask_id=1, pair_id=1, p_accept=0.5, probabilities={"accept": 0.77, "reject": 0.23})
    assert "the AI suggested: accept (77 %)" in route_mask(mask, Thresholds()).reason
    assert plain("x; AI top label whole_image (0.7)") == "x; the AI suggested: whole_image (70 %)"
    assert plain("no label here") == "no label here"
    assert [percent(p) for p in (0.0, 0.004, 0.5, 0.996, 1.0)] == ["0 %", "<1 %", "50 %", ">99 %", "100 %"]
    assert shown_reason("", Role.ADMIN, list(Role)) is None
    assert shown_reason("why", Role.ML_ENGINEER, [Role.ADMIN]) is None
