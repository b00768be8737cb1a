"""The queue through the API: leasing, judging, idempotency, validation, gold, multi-review, effects."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.db.models import (
    Decider,
    GoldItem,
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
from engine.domain.masks import encode_mask
from engine.domain.vocabulary import Role
from engine.services import annotation, queue
from tests.factories import seed_review_items
from tests.web.conftest import PASSWORD


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_review_items(s, web_settings.media_path, n_images=2, phrases=("dog", "cat"),
                                 kinds=("verify_mask", "check_exhaustivity", "correct"))


def ask(client, kinds=None):
    """POST /tasks/next: the task object, or the empty answer {task: null, message, blocked, waiting}."""
    response = client.post("/api/v1/tasks/next", json={"kinds": kinds} if kinds else None)
    assert response.status_code == 200, response.text
    return response.json()


def lease(client, kinds=None):
    body = ask(client, kinds)
    if "id" in body:
        return body
    assert body["task"] is None and body["message"], body
    return None


def judge(client, task, label, client_id=None, **extra):
    body = {"client_id": client_id or uuid.uuid4().hex, "label": label, "active_ms": 1500, **extra}
    return client.post(f"/api/v1/tasks/{task['id']}/verdict", json=body)


def test_next_task_describes_image_phrase_and_masks(login, seeded):
    task = lease(login("ann"), ["verify_mask"])
    assert task["kind"] == "verify_mask" and task["labels"] == ["accept", "reject", "ungroundable"]
    assert task["keys"] == {"accept": "a", "reject": "r", "ungroundable": "u"}  # the page's verdict keys
    assert task["phrase"] in ("dog", "cat") and task["image"]["url"] == f"/api/v1/images/{task['image']['id']}"
    assert task["target_mask_id"] in [m["id"] for m in task["masks"]]
    assert all(m["rle"]["size"] == [64, 96] for m in task["masks"])
    image = login("ann").get(task["image"]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_are_served_by_id_only(login, seeded):
    client = login("ann")
    assert client.get("/api/v1/images/999999").status_code == 404
    for probe in ("/api/v1/images/..%2F..%2Fetc%2Fpasswd", "/api/v1/images/abc", "/api/v1/images/1.png"):
        assert client.get(probe).status_code in (404, 422), probe


def test_a_retried_submission_is_stored_once(login, seeded, web_settings):
    client = login("ann")
    task = lease(client, ["verify_mask"])
    first = judge(client, task, "accept", client_id="retry-me-123")
    again = judge(client, task, "accept", client_id="retry-me-123")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["verdict_id"] == again.json()["verdict_id"] and again.json()["created"] is False
    with session_scope(web_settings.db_url) as s:
        rows = s.scalars(select(Verdict).where(Verdict.client_id == "retry-me-123")).all()
        assert len(rows) == 1 and rows[0].duration_ms == 1500 and rows[0].user_id is not None
        assert s.get(HumanTask, task["id"]).state == TaskState.DONE
        mask = s.get(Mask, task["target_mask_id"])
        assert (mask.state, mask.decided_by) == (MaskState.ACCEPTED, Decider.HUMAN)


def test_a_client_id_cannot_be_reused_for_another_task(login, seeded):
    client = login("ann")
    a, b = lease(client, ["verify_mask"]), lease(client, ["verify_mask"])
    assert judge(client, a, "accept", client_id="same-id-0001").status_code == 201
    assert judge(client, b, "reject", client_id="same-id-0001").status_code == 409


def test_submitting_needs_the_lease(login, seeded, web_settings):
    ann, ann2 = login("ann"), login("ann2")
    task = lease(ann, ["verify_mask"])
    assert judge(ann2, task, "accept").status_code == 409  # someone else's lease
    assert ann.post(f"/api/v1/tasks/{task['id']}/release").status_code == 204
    assert judge(ann, task, "accept").status_code == 409  # given back
    assert ann.post(f"/api/v1/tasks/{task['id']}/heartbeat").status_code == 409


def test_heartbeat_extends_the_lease(login, seeded):
    client = login("ann")
    task = lease(client)
    before = dt.datetime.fromisoformat(task["lease_expires_at"])
    after = dt.datetime.fromisoformat(client.post(f"/api/v1/tasks/{task['id']}/heartbeat").json()["lease_expires_at"])
    assert after.replace(tzinfo=None) >= before.replace(tzinfo=None)


def test_expired_leases_return_tasks_to_the_queue(login, seeded, web_settings):
    ann, ann2 = login("ann"), login("ann2")
    held = [lease(ann, ["check_exhaustivity"]) for _ in range(4)]
    assert lease(ann2, ["check_exhaustivity"]) is None  # all four are leased
    with session_scope(web_settings.db_url) as s:
        for t in held:
            s.get(HumanTask, t["id"]).lease_expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with session_scope(web_settings.db_url) as s:
        assert queue.expire_leases(s) == 4
    again = lease(ann2, ["check_exhaustivity"])
    assert again is not None and again["id"] in {t["id"] for t in held}
    assert judge(ann, held[0], "complete").status_code == 409 or again["id"] != held[0]["id"]


@pytest.mark.parametrize("body,expected", [
    ({"label": "maybe"}, "not one of"),
    ({"label": "accept", "active_ms": -5}, "greater than or equal"),
    ({"label": "accept", "client_id": "short"}, "at least 8"),
    ({"label": "accept", "masks": [{"mask_id": 1}]}, "carries no masks"),
])
def test_invalid_verdicts_are_refused_with_a_reason(login, seeded, body, expected):
    client = login("ann")
    task = lease(client, ["verify_mask"])
    payload = {"client_id": "valid-client-id", "active_ms": 10, **body}
    response = client.post(f"/api/v1/tasks/{task['id']}/verdict", json=payload)
    assert response.status_code == 422 and expected in response.text


def test_correction_masks_are_validated(login, seeded, web_settings):
    client = login("ann")
    task = lease(client, ["correct"])
    good = encode_mask(np.pad(np.ones((10, 10), bool), ((5, 49), (5, 81)))).to_coco()
    cases = [
        ({"rle": {"size": [10, 10], "counts": good["counts"]}}, "differs from the image"),
        ({"rle": {"size": [64, 96], "counts": "not-rle!"}}, "mask 0"),
        ({"rle": encode_mask(np.zeros((64, 96), bool)).to_coco()}, "empty"),
        ({"mask_id": 10**9}, "not a candidate"),
    ]
    for mask, expected in cases:
        response = judge(client, task, "corrected", masks=[mask])
        assert response.status_code == 422 and expected in response.text, response.text
    assert judge(client, task, "corrected").status_code == 422  # corrected needs a mask
    assert judge(client, task, "not_present", masks=[{"rle": good}]).status_code == 422
    # a valid correction: keep one candidate (as crowd), add one new mask, drop the rest
    keep = task["masks"][0]["id"]
    ok = judge(client, task, "corrected", masks=[{"mask_id": keep, "is_crowd": True, "tool": "existing"},
                                                 {"rle": good, "tool": "tracker"}])
    assert ok.status_code == 201, ok.text
    with session_scope(web_settings.db_url) as s:
        masks = {m.id: m for m in s.scalars(select(Mask).where(Mask.pair_id == _pair(s, task["id"])))}
        accepted = {i for i, m in masks.items() if m.state == MaskState.ACCEPTED}
        assert keep in accepted and masks[keep].is_crowd
        new = [m for i, m in masks.items() if i not in {x["id"] for x in task["masks"]}]
        assert len(new) == 1 and new[0].area == 100 and new[0].state == MaskState.ACCEPTED
        assert all(m.state == MaskState.REJECTED for i, m in masks.items() if i not in accepted)
        pair = s.get(ImageConcept, _pair(s, task["id"]))
        assert (pair.is_exhaustive, pair.polarity, pair.decided_by) == (True, Polarity.POSITIVE, Decider.HUMAN)
        verdict = s.scalars(select(Verdict).where(Verdict.task_id == task["id"])).one()
        assert verdict.payload["new_mask_ids"] == [new[0].id]


def _pair(s, task_id):
    return s.get(HumanTask, task_id).pair_id


def test_not_present_rejects_masks_and_cancels_moot_tasks(login, seeded, web_settings):
    client = login("ann")
    task = lease(client, ["check_exhaustivity"])
    assert judge(client, task, "not_present").status_code == 201
    with session_scope(web_settings.db_url) as s:
        pair_id = _pair(s, task["id"])
        pair = s.get(ImageConcept, pair_id)
        assert (pair.polarity, pair.is_exhaustive) == (Polarity.NEGATIVE, True)
        assert all(m.state == MaskState.REJECTED for m in s.scalars(select(Mask).where(Mask.pair_id == pair_id)))
        others = s.scalars(select(HumanTask).where(HumanTask.pair_id == pair_id, HumanTask.id != task["id"])).all()
        assert others and all(t.state == TaskState.CANCELLED for t in others)


def test_instances_missing_creates_a_correction_task(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("check_exhaustivity",))
    client = login("ann")
    task = lease(client)
    assert judge(client, task, "missing").status_code == 201
    follow = lease(login("ann2"))
    assert follow["kind"] == "correct" and follow["phrase"] == "dog"


def test_an_annotator_is_only_given_their_assigned_kinds(login, seeded):
    root = login("root")
    assert root.post("/api/v1/users", json={"username": "vonly", "password": PASSWORD, "role": "annotator",
                                            "task_kinds": ["verify_mask"]}).status_code == 201
    client = login("vonly")
    kinds = {lease(client)["kind"] for _ in range(3)}
    assert kinds == {"verify_mask"}
    assert client.post("/api/v1/tasks/next", json={"kinds": ["correct"]}).status_code == 403


def test_gold_items_are_mixed_in_and_scored(login, seeded, web_settings, app):
    rev = login("rev")
    task = lease(rev, ["verify_mask"])
    assert judge(rev, task, "reject").status_code == 201
    gold = rev.post("/api/v1/gold", json={"task_id": task["id"]})
    assert gold.status_code == 201 and gold.json()["answer"] == "reject"
    web_settings.queue.gold_rate = 1.0  # every lease a gold item while one is left for the caller
    ann = login("ann")
    first = lease(ann, ["verify_mask"])
    assert first["target_mask_id"] == task["target_mask_id"] and "gold" not in str(first["reason"] or "")
    out = judge(ann, first, "accept")
    assert out.status_code == 201
    second = lease(ann, ["verify_mask"])  # the only gold item is used up for ann: a normal task
    assert second["id"] != first["id"] and second["target_mask_id"] != task["target_mask_id"]
    with session_scope(web_settings.db_url) as s:
        verdict = s.get(Verdict, out.json()["verdict_id"])
        assert verdict.payload["gold"] is True and verdict.payload["gold_correct"] is False
        mask = s.get(Mask, task["target_mask_id"])
        assert mask.state == MaskState.REJECTED  # the gold answer does not move the label
    listed = rev.get("/api/v1/gold").json()
    assert [(g["answered"], g["correct"]) for g in listed] == [(1, 0)]
    assert rev.delete(f"/api/v1/gold/{listed[0]['id']}").status_code == 204
    with session_scope(web_settings.db_url) as s:
        assert s.scalars(select(GoldItem.is_active)).one() is False


def test_multi_review_waits_for_a_second_person_and_breaks_ties(login, seeded, web_settings):
    web_settings.queue.multi_review_rate = 1.0
    ann, ann2, rev = login("ann"), login("ann2"), login("rev")
    task = lease(ann, ["verify_mask"])
    assert judge(ann, task, "accept").json()["task_state"] == "open"
    assert all(lease(ann, ["verify_mask"])["id"] != task["id"] for _ in range(3))  # never back to ann
    again = next(t for t in iter(lambda: lease(ann2, ["verify_mask"]), None) if t["id"] == task["id"])
    assert judge(ann2, again, "reject").json()["task_state"] == "open"  # tie: a third review
    third = next(t for t in iter(lambda: lease(rev, ["verify_mask"]), None) if t["id"] == task["id"])
    assert judge(rev, third, "reject").json()["task_state"] == "done"
    with session_scope(web_settings.db_url) as s:
        assert s.get(Mask, task["target_mask_id"]).state == MaskState.REJECTED  # the majority
        t = s.get(HumanTask, task["id"])
        assert (t.reviews_required, t.reviews_done) == (3, 3)


def test_32_clients_at_once_never_receive_the_same_task(fresh_pg_url, tmp_path):
    from dataengine.serve import create_app
    from engine.db.models import Role
    from engine.services.users import create_user
    from tests.conftest import make_settings

    settings = make_settings(fresh_pg_url, tmp_path)
    settings.queue.gold_rate = 0
    with session_scope(settings.db_url) as s:
        seed_review_items(s, settings.media_path, n_images=8, phrases=("a", "b", "c", "d"), masks_per_pair=1,
                          kinds=("verify_mask", "check_exhaustivity"))  # 64 tasks
        for i in range(32):
            create_user(s, f"user{i}", PASSWORD, Role.ANNOTATOR)
    app = create_app(settings)
    clients = []
    for i in range(32):
        c = TestClient(app)
        c.headers["X-CSRF-Token"] = c.post("/api/v1/auth/login", json={"username": f"user{i}",
                                                                      "password": PASSWORD}).json()["csrf_token"]
        clients.append(c)
    got: list[list[int]] = [[] for _ in clients]
    barrier = threading.Barrier(len(clients))

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            r = clients[i].post("/api/v1/tasks/next")
            assert r.status_code == 200, r.text
            if r.json().get("id") is not None:  # else the empty answer: the 64 tasks are all handed out
                got[i].append(r.json()["id"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for g in got for i in g]
    assert len(ids) == 64 and len(set(ids)) == 64  # every task handed out exactly once


def test_describe_never_reveals_gold(web_settings, seeded):
    with session_scope(web_settings.db_url) as s:
        item = GoldItem(kind=TaskKind.VERIFY_MASK, pair_id=s.get(Mask, seeded["masks"][0]).pair_id,
                        mask_id=seeded["masks"][0], answer="accept")
        s.add(item)
        s.flush()
        queue.refill_gold(s)  # copies are made ahead of time, not at lease time
        user_id = s.scalars(select(HumanTask.id)).first()  # any id: a fresh user id is fine below
        from engine.db.models import User

        user_id = s.scalars(select(User.id).where(User.username == "ann")).one()
        task = queue.lease_gold(s, user_id, [TaskKind.VERIFY_MASK], 60)
        described = annotation.describe(s, task)
        assert "gold" not in str(described).lower()


def test_a_double_click_submission_at_the_same_instant_is_stored_once(fresh_pg_url, tmp_path):
    from dataengine.serve import create_app
    from engine.db.models import Role
    from engine.services.users import create_user
    from tests.conftest import make_settings

    settings = make_settings(fresh_pg_url, tmp_path)
    settings.queue.gold_rate = settings.queue.multi_review_rate = 0
    with session_scope(settings.db_url) as s:
        seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",), kinds=("verify_mask",))
        create_user(s, "ann", PASSWORD, Role.ANNOTATOR)
    client = TestClient(create_app(settings))
    client.headers["X-CSRF-Token"] = client.post(
        "/api/v1/auth/login", json={"username": "ann", "password": PASSWORD}).json()["csrf_token"]
    task = lease(client)
    barrier, statuses = threading.Barrier(4), []

    def send() -> None:
        barrier.wait()
        statuses.append(judge(client, task, "accept", client_id="double-click-1").status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 200, 200, 201]
    with session_scope(settings.db_url) as s:
        assert len(s.scalars(select(Verdict).where(Verdict.task_id == task["id"])).all()) == 1


def test_a_skipped_task_is_not_offered_again_to_the_same_person(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog", "cat"), masks_per_pair=1,
                          kinds=("check_exhaustivity",))
    ann, ann2 = login("ann"), login("ann2")
    first = lease(ann)
    assert ann.post(f"/api/v1/tasks/{first['id']}/release", json={"skip": True}).status_code == 204
    second = lease(ann)
    assert second["id"] != first["id"]
    assert lease(ann) is None  # the skipped one stays away from ann
    assert lease(ann2)["id"] == first["id"]  # but not from anyone else
    # a plain release (closing the page) does not count as a skip
    assert ann.post(f"/api/v1/tasks/{second['id']}/release").status_code == 204
    assert lease(ann)["id"] == second["id"]


def test_held_tasks_heartbeat_after_expiry_and_error_codes(login, seeded, web_settings):
    ann, ann2 = login("ann"), login("ann2")
    a, b = lease(ann, ["verify_mask"]), lease(ann, ["verify_mask"])
    assert [t["id"] for t in ann.get("/api/v1/tasks/held").json()] == sorted([a["id"], b["id"]])
    assert ann2.get("/api/v1/tasks/held").json() == []
    with session_scope(web_settings.db_url) as s:  # expired, not yet swept: still ann's
        s.get(HumanTask, a["id"]).lease_expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert ann.post(f"/api/v1/tasks/{a['id']}/heartbeat").status_code == 200
    lost = ann2.post(f"/api/v1/tasks/{a['id']}/heartbeat")
    assert lost.status_code == 409 and lost.headers["x-error-code"] == "lease_lost"
    assert judge(ann, a, "accept", client_id="code-test-1").status_code == 201
    reused = judge(ann, b, "accept", client_id="code-test-1")
    assert reused.status_code == 409 and reused.headers["x-error-code"] == "client_id_conflict"
    me = ann.get("/api/v1/auth/me").json()
    assert me["heartbeat_s"] == web_settings.queue.heartbeat_s and me["lease_s"] == web_settings.queue.lease_s


# ---------------------------------------------------------------------------- a queue that never starves
def _three_verify_every_pair(login, web_settings):
    """Three annotators verify the masks in turn (3 masks per pair): each verified a mask of every pair."""
    with session_scope(web_settings.db_url) as s:
        made = seed_review_items(s, web_settings.media_path, n_images=2, phrases=("dog", "cat"), masks_per_pair=3,
                                 kinds=("verify_mask", "check_exhaustivity"))
    team = [login(name) for name in ("ann", "ann2", "rev")]
    for turn in range(12):
        client = team[turn % 3]
        task = lease(client, ["verify_mask"])
        assert judge(client, task, "accept").status_code == 201
    for client in team:
        assert lease(client, ["verify_mask"]) is None
    with session_scope(web_settings.db_url) as s:
        judged = s.execute(select(Verdict.pair_id, Verdict.user_id).where(Verdict.user_id.is_not(None))).all()
        assert {p: len({u for q, u in judged if q == p}) for p, _ in judged} == {p: 3 for p in made["pairs"]}
    return made, team


def test_annotators_who_verified_the_masks_still_get_the_exhaustivity_tasks(login, web_settings):
    """Regression: the lease skipped every task of a pair its annotator had judged in any way, so once
    three annotators had verified the masks, every exhaustivity task stayed open and /next had nothing
    for any of them. By default only the task itself is off limits."""
    assert web_settings.queue.independent_review == "task"
    made, team = _three_verify_every_pair(login, web_settings)
    got = [lease(client, ["check_exhaustivity"]) for client in (*team, team[0])]
    assert all(t is not None and t["kind"] == "check_exhaustivity" for t in got)
    with session_scope(web_settings.db_url) as s:
        assert sorted(t["id"] for t in got) == list(s.scalars(select(HumanTask.id).where(
            HumanTask.id.in_(made["tasks"]), HumanTask.kind == TaskKind.CHECK_EXHAUSTIVITY).order_by(HumanTask.id)))
    empty = ask(team[1], ["check_exhaustivity"])  # all four are leased now: nothing blocked, nothing waiting
    assert empty["task"] is None and empty["blocked"] == [] and empty["waiting"] == []
    assert "empty" in empty["message"]


def test_with_independent_review_by_pair_the_team_is_told_why_nothing_comes(login, web_settings):
    web_settings.queue.independent_review = "pair"
    _, team = _three_verify_every_pair(login, web_settings)
    for client in team:
        empty = ask(client, ["check_exhaustivity"])
        assert empty["task"] is None
        assert empty["blocked"] == [{"kind": "check_exhaustivity", "open": 4, "capped": False, "code": "same_pair",
                                     "reason": "you judged other tasks of these pairs "
                                               "(queue.independent_review = pair)"}]
        assert "4 tasks of kind check every instance are open but not for you" in empty["message"]
        assert "independent_review = pair" in empty["message"]
    # a fourth person who judged nothing is independent: they get them
    root = login("root")
    assert lease(root, ["check_exhaustivity"])["kind"] == "check_exhaustivity"


@pytest.mark.parametrize("independent_review", ["task", "pair"])
def test_a_lone_annotator_gets_the_correction_their_own_missing_created(login, web_settings, independent_review):
    web_settings.queue.independent_review = independent_review
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("check_exhaustivity",))
    ann = login("ann")
    task = lease(ann)
    assert judge(ann, task, "missing").status_code == 201
    answer = ask(ann)
    if independent_review == "task":
        assert answer["kind"] == "correct" and answer["phrase"] == "dog"
        return
    assert answer["task"] is None and answer["waiting"] == []
    assert [(b["kind"], b["open"], b["code"]) for b in answer["blocked"]] == [("correct", 1, "same_pair")]
    assert "1 task of kind correct masks is open but not for you" in answer["message"]
    assert lease(login("ann2"))["kind"] == "correct"  # someone independent takes it


def test_the_empty_answer_names_judged_skipped_and_waiting_work(login, web_settings):
    web_settings.queue.multi_review_rate = 1.0  # every verdict waits for a second person
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=2,
                          kinds=("verify_mask", "check_exhaustivity"))
    ann = login("ann")
    first = lease(ann, ["verify_mask"])
    assert judge(ann, first, "accept").json()["task_state"] == "open"  # back in the queue for someone else
    second = lease(ann, ["verify_mask"])
    assert ann.post(f"/api/v1/tasks/{second['id']}/release", json={"skip": True}).status_code == 204
    empty = ask(ann, ["verify_mask"])
    assert empty["task"] is None
    assert [(b["kind"], b["open"], b["code"], b["reason"]) for b in empty["blocked"]] == [
        ("verify_mask", 1, "judged", "you judged these tasks already"),
        ("verify_mask", 1, "skipped", "you skipped these")]
    # the exhaustivity task is waiting: ann may take it when she asks for that kind
    assert empty["waiting"] == [{"kind": "check_exhaustivity", "open": 1, "capped": False, "assigned": True}]
    assert "Other kinds you may take have work: check every instance, 1 task." in empty["message"]
    # someone assigned verify_mask only is told the exhaustivity task is not theirs to take
    root = login("root")
    assert root.post("/api/v1/users", json={"username": "vonly", "password": PASSWORD, "role": "annotator",
                                            "task_kinds": ["verify_mask"]}).status_code == 201
    vonly = login("vonly")
    assert vonly.get("/api/v1/auth/me").json()["allowed_kinds"] == ["verify_mask"]
    assert ann.get("/api/v1/auth/me").json()["allowed_kinds"] == ["verify_mask", "check_exhaustivity", "correct"]
    assert lease(vonly)["id"] in {first["id"], second["id"]}
    assert lease(vonly)["id"] in {first["id"], second["id"]}
    empty = ask(vonly)
    assert empty["blocked"] == [] and empty["waiting"] == [
        {"kind": "check_exhaustivity", "open": 1, "capped": False, "assigned": False}]
    assert "not assigned" in empty["message"]


# ------------------------------------------------------------------ expiry without a broker, the lease cap, gold
def test_without_a_broker_an_expired_lease_returns_with_no_sweep(login, seeded, web_settings, monkeypatch):
    monkeypatch.setattr(queue, "SWEEP_EVERY_S", 0.0)  # every lease sweeps (the default: every 5 s per process)
    ann, ann2 = login("ann"), login("ann2")
    held = [lease(ann, ["check_exhaustivity"]) for _ in range(4)]
    assert lease(ann2, ["check_exhaustivity"]) is None
    with session_scope(web_settings.db_url) as s:
        s.get(HumanTask, held[0]["id"]).lease_expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    again = lease(ann2, ["check_exhaustivity"])  # no expire_leases, no beat, no CLI: the queue did it
    assert again is not None and again["id"] == held[0]["id"]
    assert judge(ann, held[0], "complete").status_code == 409


def test_the_ninth_lease_is_refused_with_a_clear_answer(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=4, phrases=("dog", "cat", "cow"), masks_per_pair=1,
                          kinds=("verify_mask", "check_exhaustivity"))
    assert web_settings.queue.max_leases_per_person == 8
    ann = login("ann")
    held = [lease(ann) for _ in range(8)]
    refused = ann.post("/api/v1/tasks/next", json=None)
    assert refused.status_code == 409 and refused.headers["x-error-code"] == "too_many_leases"
    assert refused.json()["detail"] == "you hold 8 tasks: submit or release one"
    assert lease(login("ann2")) is not None  # per person
    assert judge(ann, held[0], held[0]["labels"][0]).status_code == 201
    assert lease(ann) is not None  # one submitted: one more


def test_the_cap_setting_is_at_least_the_pages_prefetch_depth_plus_one():
    from pydantic import ValidationError

    from engine.settings import PAGE_PREFETCH_DEPTH, QueueSettings

    assert QueueSettings().max_leases_per_person == 8
    assert QueueSettings(max_leases_per_person=PAGE_PREFETCH_DEPTH + 1).max_leases_per_person == 2
    with pytest.raises(ValidationError):
        QueueSettings(max_leases_per_person=PAGE_PREFETCH_DEPTH)


def test_a_gold_task_answers_like_an_ordinary_one_of_its_kind(login, seeded, web_settings):
    web_settings.queue.show_ai_reason_to = list(Role)  # the annotator sees the why line too: compare it
    rev = login("rev")
    source = lease(rev, ["verify_mask"])
    assert judge(rev, source, "accept").status_code == 201
    assert rev.post("/api/v1/gold", json={"task_id": source["id"]}).status_code == 201
    with session_scope(web_settings.db_url) as s:  # tasks the pipeline makes after the gold item
        later = seed_review_items(s, web_settings.media_path, n_images=1, phrases=("cow",), size=(80, 48),
                                  masks_per_pair=1, kinds=("verify_mask",))
        later_ids = list(s.scalars(select(HumanTask.id).where(HumanTask.pair_id.in_(later["pairs"]))))
    web_settings.queue.gold_rate = 1.0
    ann = login("ann")
    gold = ann.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]})
    web_settings.queue.gold_rate = 0.0
    plain = ann.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]})
    with session_scope(web_settings.db_url) as s:
        assert s.get(HumanTask, gold.json()["id"]).is_gold and not s.get(HumanTask, plain.json()["id"]).is_gold
    g, p = gold.json(), plain.json()
    assert g.keys() == p.keys() and g["reason"] == p["reason"] == source["reason"]
    assert set(gold.headers) == set(plain.headers)
    assert g["id"] < min(later_ids)  # made when the item was, not at lease time
    state = {t["id"]: next(m["state"] for m in t["masks"] if m["id"] == t["target_mask_id"]) for t in (g, p)}
    assert state[g["id"]] == state[p["id"]] == "candidate"  # the decided mask does not give the answer away
    assert "gold" not in gold.text.lower()
