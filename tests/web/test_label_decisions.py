"""Labels never contradict themselves: the cases of issue 14 through the HTTP API, on both databases.

1. A late verdict on a pair a person settled is stored, answered 409 naming the decision, and
   changes nothing.
2. "complete" while the masks are undecided records only the pair's exhaustivity; when every mask is
   then rejected the claim is void and the pair is checked again (never positive, exhaustive and
   maskless)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from engine.db.models import (
    Decider,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    Polarity,
    TaskKind,
    TaskState,
    Verdict,
)
from engine.db.session import session_scope
from tests.factories import seed_review_items


@pytest.fixture
def one_pair(web_settings):
    """One image, one phrase, two candidate masks; a verify task per mask and an exhaustivity task."""
    with session_scope(web_settings.db_url) as s:
        return seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=2,
                                 kinds=("verify_mask", "check_exhaustivity"))


def lease(client, kind):
    response = client.post("/api/v1/tasks/next", json={"kinds": [kind]})
    assert response.status_code in (200, 204), response.text
    body = response.json() if response.status_code == 200 else {}
    return body if body.get("id") else None


def judge(client, task, label, client_id=None, **extra):
    body = {"client_id": client_id or uuid.uuid4().hex, "label": label, "active_ms": 1200, **extra}
    return client.post(f"/api/v1/tasks/{task['id']}/verdict", json=body)


def pair_state(url, pair_id):
    with session_scope(url) as s:
        pair = s.get(ImageConcept, pair_id)
        masks = {m.id: (m.state, m.decided_by) for m in s.scalars(select(Mask).where(Mask.pair_id == pair_id))}
        return pair.polarity, pair.is_exhaustive, pair.decided_by, masks


def test_a_late_accept_after_not_present_is_stored_refused_and_named(login, one_pair, web_settings):
    a, b = login("ann"), login("ann2")
    verify = lease(a, "verify_mask")
    check = lease(b, "check_exhaustivity")
    assert judge(b, check, "not_present").status_code == 201

    late = judge(a, verify, "accept", client_id="late-accept-1")
    assert late.status_code == 409 and late.headers["X-Error-Code"] == "decision_conflict"
    body = late.json()
    assert f"task {check['id']}" in body["detail"] and "not_present" in body["detail"]
    assert "recorded but not applied" in body["detail"]
    again = judge(a, verify, "accept", client_id="late-accept-1")  # a retry: the same answer, stored once
    assert again.status_code == 409 and again.json()["verdict_id"] == body["verdict_id"]

    polarity, exhaustive, decided_by, masks = pair_state(web_settings.db_url, one_pair["pairs"][0])
    assert (polarity, exhaustive, decided_by) == (Polarity.NEGATIVE, True, Decider.HUMAN)
    assert all(state == MaskState.REJECTED for state, _ in masks.values())
    with session_scope(web_settings.db_url) as s:
        stored = s.get(Verdict, body["verdict_id"])
        assert stored.label == "accept" and stored.payload["conflict"]["task_id"] == check["id"]
        assert s.get(HumanTask, verify["id"]).state == TaskState.DONE


def test_not_present_after_an_accepted_mask_stands_over_it(login, one_pair, web_settings):
    """The exhaustivity verdict saw the accepted mask: it overrides, nothing conflicts."""
    a, b = login("ann"), login("ann2")
    verify = lease(a, "verify_mask")
    assert judge(a, verify, "accept").status_code == 201
    check = lease(b, "check_exhaustivity")
    assert judge(b, check, "not_present").status_code == 201
    polarity, exhaustive, _, masks = pair_state(web_settings.db_url, one_pair["pairs"][0])
    assert polarity == Polarity.NEGATIVE and exhaustive is True
    assert all(state == MaskState.REJECTED for state, _ in masks.values())


def test_complete_before_the_masks_are_decided_waits_for_them(login, one_pair, web_settings):
    a, b = login("ann"), login("ann2")
    url, pair_id = web_settings.db_url, one_pair["pairs"][0]
    check = lease(a, "check_exhaustivity")
    assert judge(a, check, "complete").status_code == 201
    assert pair_state(url, pair_id)[:3] == (Polarity.UNKNOWN, True, Decider.HUMAN)  # not positive yet

    first = lease(b, "verify_mask")
    assert judge(b, first, "reject").status_code == 201
    assert pair_state(url, pair_id)[:3] == (Polarity.UNKNOWN, True, Decider.HUMAN)
    second = lease(b, "verify_mask")
    assert judge(b, second, "reject").status_code == 201

    # every mask the "complete" vouched for is wrong: the claim is void and the pair is asked again
    polarity, exhaustive, decided_by, masks = pair_state(url, pair_id)
    assert (polarity, exhaustive, decided_by) == (Polarity.UNKNOWN, None, None)
    with session_scope(url) as s:
        again = s.scalars(select(HumanTask).where(HumanTask.pair_id == pair_id,
                                                  HumanTask.kind == TaskKind.CHECK_EXHAUSTIVITY,
                                                  HumanTask.state == TaskState.OPEN)).one()
        assert "rejected" in again.reason
    recheck = lease(b, "check_exhaustivity")
    assert recheck["id"] == again.id and recheck["masks"] == []
    assert judge(b, recheck, "complete").status_code == 201  # nothing shown, nothing missing: absent
    assert pair_state(url, pair_id)[:3] == (Polarity.NEGATIVE, True, Decider.HUMAN)


def test_complete_then_one_accepted_mask_is_an_exhaustive_positive(login, one_pair, web_settings):
    a, b = login("ann"), login("ann2")
    url, pair_id = web_settings.db_url, one_pair["pairs"][0]
    assert judge(a, lease(a, "check_exhaustivity"), "complete").status_code == 201
    assert judge(b, lease(b, "verify_mask"), "accept").status_code == 201
    assert pair_state(url, pair_id)[:3] == (Polarity.POSITIVE, True, Decider.HUMAN)
    assert judge(b, lease(b, "verify_mask"), "reject").status_code == 201
    polarity, exhaustive, _, masks = pair_state(url, pair_id)
    assert (polarity, exhaustive) == (Polarity.POSITIVE, True)
    assert sorted(state for state, _ in masks.values()) == [MaskState.ACCEPTED, MaskState.REJECTED]
