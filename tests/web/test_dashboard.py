"""The dashboard: each figure against a hand-computed expectation, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from engine.db.models import HumanTask, ModelKind, TaskKind, TaskState, User, Verdict, VerdictKind, VerdictSource
from engine.db.session import session_scope
from engine.repositories.model_versions import get_or_create
from engine.services import dashboard
from tests.factories import seed_review_items

UTC = dt.UTC
NOW = dt.datetime(2031, 5, 6, 12, 30, tzinfo=UTC)  # fixed, for exact hour buckets


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        made = seed_review_items(s, web_settings.media_path, n_images=2, phrases=("dog", "cat"))
        made["users"] = {u.username: u.id for u in s.scalars(select(User))}
        return made


def _tasks(session, made, kind):
    return list(session.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"]), HumanTask.kind == kind)
                                .order_by(HumanTask.id)))


def human(session, task, user_id, label, *, ms=1000, at=None, payload=None):
    kind = {TaskKind.VERIFY_MASK: VerdictKind.MASK, TaskKind.CHECK_EXHAUSTIVITY: VerdictKind.EXHAUSTIVITY,
            TaskKind.CORRECT: VerdictKind.CORRECTION}[task.kind]
    v = Verdict(kind=kind, source=VerdictSource.HUMAN, pair_id=task.pair_id, mask_id=task.mask_id, task_id=task.id,
                user_id=user_id, label=label, duration_ms=ms, payload=payload, created_at=at or NOW)
    session.add(v)
    session.flush()
    return v


def ai(session, version_id, kind, pair_id, mask_id, label, payload=None):
    session.add(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pair_id, mask_id=mask_id,
                        model_version_id=version_id, label=label, probabilities={label: 0.9}, payload=payload))
    session.flush()


def gold_task(session, like, answer):
    task = HumanTask(kind=like.kind, pair_id=like.pair_id, mask_id=like.mask_id, state=TaskState.DONE,
                     is_gold=True, gold_answer={"label": answer})
    session.add(task)
    session.flush()
    return task


def test_queue_depth_excludes_gold_and_counts_leases(web_settings, seeded):
    with session_scope(web_settings.db_url) as s:
        masks = _tasks(s, seeded, TaskKind.VERIFY_MASK)  # 8 open
        assert len(masks) == 8 and len(_tasks(s, seeded, TaskKind.CHECK_EXHAUSTIVITY)) == 4
        masks[0].state, masks[0].lease_owner_id = TaskState.LEASED, seeded["users"]["ann"]
        masks[1].state = TaskState.DONE
        masks[2].state = TaskState.CANCELLED
        s.add(HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=masks[3].pair_id, mask_id=masks[3].mask_id,
                        state=TaskState.OPEN, is_gold=True, gold_answer={"label": "accept"}))
    with session_scope(web_settings.db_url) as s:
        depth = {q.kind: (q.open, q.leased) for q in dashboard.queue_depth(s)}
        oldest = {q.kind: q.oldest_open_at for q in dashboard.queue_depth(s)}
    assert depth == {"verify_mask": (5, 1), "check_exhaustivity": (4, 0), "correct": (0, 0)}
    assert oldest["verify_mask"] is not None and oldest["verify_mask"].tzinfo is not None
    assert oldest["correct"] is None


def test_throughput_per_hour_is_zero_filled(web_settings, seeded):
    with session_scope(web_settings.db_url) as s:
        task = _tasks(s, seeded, TaskKind.VERIFY_MASK)[0]
        ann = seeded["users"]["ann"]
        for minutes_ago in (1, 29, 31, 95, 60 * 23 + 29, 60 * 23 + 31, 60 * 30):
            human(s, task, ann, "accept", at=NOW - dt.timedelta(minutes=minutes_ago))
        # AI verdicts are not human throughput
        mv = get_or_create(s, ModelKind.MASK_VERIFIER, "mv", "1")
        ai(s, mv.id, VerdictKind.MASK, task.pair_id, task.mask_id, "accept")
    with session_scope(web_settings.db_url) as s:
        hours = dashboard.throughput(s, hours=24, now=NOW)
        three = dashboard.throughput(s, hours=3, now=NOW)
    assert len(hours) == 24
    assert hours[-1].hour == dt.datetime(2031, 5, 6, 12, tzinfo=UTC)
    assert hours[0].hour == dt.datetime(2031, 5, 5, 13, tzinfo=UTC)
    by_hour = {h.hour.hour: h.verdicts for h in hours}
    # 12:29 and 12:01 → 12h; 11:59 → 11h; 10:55 → 10h; 13:01 yesterday → first bucket; 12:59 yesterday: outside
    assert by_hour[12] == 2 and by_hour[11] == 1 and by_hour[10] == 1 and hours[0].verdicts == 1
    assert sum(h.verdicts for h in hours) == 5
    assert [h.verdicts for h in three] == [1, 1, 2]


def test_median_active_seconds_per_kind(web_settings, seeded):
    with session_scope(web_settings.db_url) as s:
        mv_task = _tasks(s, seeded, TaskKind.VERIFY_MASK)[0]
        ev_task = _tasks(s, seeded, TaskKind.CHECK_EXHAUSTIVITY)[0]
        ann = seeded["users"]["ann"]
        for ms in (1000, 3000, 2000, 10_000):
            human(s, mv_task, ann, "accept", ms=ms, at=NOW - dt.timedelta(hours=1))
        for ms in (4000, 6000, 5000):
            human(s, ev_task, ann, "complete", ms=ms, at=NOW - dt.timedelta(days=2))
        human(s, mv_task, ann, "accept", ms=900_000, at=NOW - dt.timedelta(days=8))  # too old
        gold = gold_task(s, mv_task, "accept")
        human(s, gold, ann, "accept", ms=900_000, at=NOW, payload={"gold": True, "gold_correct": True})
    with session_scope(web_settings.db_url) as s:
        timings = {t.kind: (t.median_s, t.n) for t in dashboard.median_active_seconds(s, now=NOW)}
    assert timings == {"verify_mask": (2.5, 4), "check_exhaustivity": (5.0, 3), "correct": (None, 0)}


def test_annotator_gold_accuracy_and_agreement(web_settings, seeded):
    u = seeded["users"]
    with session_scope(web_settings.db_url) as s:
        tasks = _tasks(s, seeded, TaskKind.VERIFY_MASK)
        for i, correct in enumerate((True, False, True)):  # ann: 3 gold answers, 2 correct
            gold = gold_task(s, tasks[i], "accept")
            human(s, gold, u["ann"], "accept" if correct else "reject",
                  payload={"gold": True, "gold_correct": correct, "expected": "accept"})
        multi = tasks[4]  # accept / accept / reject → majority accept
        human(s, multi, u["ann"], "accept")
        human(s, multi, u["ann2"], "accept")
        human(s, multi, u["rev"], "reject")
        tied = tasks[5]  # accept / reject: no majority yet, left out
        human(s, tied, u["ann"], "accept")
        human(s, tied, u["ann2"], "reject")
        human(s, tasks[6], u["rev"], "reject", ms=4000)  # reviewed once: not a multi-review
    with session_scope(web_settings.db_url) as s:
        rows = {a.username: a for a in dashboard.annotator_stats(s)}
    assert set(rows) == {"ann", "ann2", "rev"}
    ann, ann2, rev = rows["ann"], rows["ann2"], rows["rev"]
    assert (ann.verdicts, ann.gold_answered, ann.gold_correct) == (5, 3, 2)
    assert ann.gold_accuracy == pytest.approx(2 / 3)
    assert (ann.multi_reviewed, ann.agreed, ann.agreement) == (1, 1, 1.0)
    assert (ann2.multi_reviewed, ann2.agreed, ann2.agreement) == (1, 1, 1.0)
    assert (rev.multi_reviewed, rev.agreed, rev.agreement) == (1, 0, 0.0)
    assert rev.gold_answered == 0 and rev.gold_accuracy is None
    assert rev.verdicts == 2 and rev.active_s == pytest.approx(5.0) and rev.role == "reviewer"
    assert list(rows) == ["ann", "ann2", "rev"]  # most verdicts first


def test_ai_human_agreement_per_verifier_version(web_settings, seeded):
    u = seeded["users"]
    with session_scope(web_settings.db_url) as s:
        mv = get_or_create(s, ModelKind.MASK_VERIFIER, "mv", "1")
        ev = get_or_create(s, ModelKind.EXHAUSTIVITY_VERIFIER, "ev", "2")
        masks = _tasks(s, seeded, TaskKind.VERIFY_MASK)
        # MV: AI accept, accept, reject, reject vs humans accept, reject, reject, accept
        for task, ai_label, human_label in zip(masks, ("reject", "accept", "reject", "reject"),
                                               ("accept", "reject", "reject", "reject"), strict=False):
            ai(s, mv.id, VerdictKind.MASK, task.pair_id, task.mask_id, ai_label)
            human(s, task, u["ann"], human_label)
        ai(s, mv.id, VerdictKind.MASK, masks[0].pair_id, masks[0].mask_id, "accept")  # the version's latest word
        human(s, masks[3], u["ann2"], "accept")  # the latest human word wins
        gold = gold_task(s, masks[2], "accept")  # gold answers do not count
        human(s, gold, u["rev"], "accept", payload={"gold": True, "gold_correct": True})
        ai(s, mv.id, VerdictKind.MASK, masks[5].pair_id, masks[5].mask_id, "accept")  # no human: not counted
        # EV: pairs judged with boxes (with_masks) and without (presence)
        pairs = _tasks(s, seeded, TaskKind.CHECK_EXHAUSTIVITY)
        for task, boxes, ai_label, human_label in zip(
                pairs, (2, 0, 0, 1), ("accept", "accept", "reject", "reject"),
                ("complete", "not_present", "not_present", "not_present"), strict=False):
            ai(s, ev.id, VerdictKind.EXHAUSTIVITY, task.pair_id, None, ai_label, payload={"boxes": boxes})
            human(s, task, u["ann"], human_label)
    with session_scope(web_settings.db_url) as s:
        rows = {(r.verifier, r.scope): r for r in dashboard.verifier_agreement(s)}
    assert set(rows) == {("mv:1", "all"), ("ev:2", "with_masks"), ("ev:2", "presence")}
    m = rows[("mv:1", "all")]
    assert (m.model_kind, m.task_kind) == ("mask_verifier", "verify_mask")
    assert (m.n, m.agreed, m.ai_accepts, m.human_accepts, m.both_accept) == (4, 2, 2, 2, 1)
    assert (m.agreement, m.precision, m.recall) == (0.5, 0.5, 0.5)
    w = rows[("ev:2", "with_masks")]
    assert (w.n, w.agreed, w.ai_accepts, w.human_accepts, w.both_accept) == (2, 2, 1, 1, 1)
    p = rows[("ev:2", "presence")]  # not_present without boxes is a positive
    assert (p.n, p.agreed, p.ai_accepts, p.human_accepts, p.both_accept) == (2, 1, 1, 2, 1)
    assert (p.precision, p.recall) == (1.0, 0.5)


def test_dashboard_api_roles_and_shape(login, seeded, web_settings):
    with session_scope(web_settings.db_url) as s:
        task = _tasks(s, seeded, TaskKind.VERIFY_MASK)[0]
        human(s, task, seeded["users"]["ann"], "accept", ms=2000, at=dashboard.utcnow())
    for user in ("ann", "rev"):
        assert login(user).get("/api/v1/dashboard").status_code == 403
    assert login("mle").get("/api/v1/dashboard").status_code == 200
    client = login("root")
    for bad in (0, 169, "x"):
        assert client.get("/api/v1/dashboard", params={"hours": bad}).status_code == 422
    data = client.get("/api/v1/dashboard", params={"hours": 6}).json()
    assert set(data) == {"generated_at", "hours", "queue", "throughput", "timings", "annotators", "verifiers",
                         "video_proposers", "concepts"}
    assert data["hours"] == 6 and len(data["throughput"]) == 6
    assert sum(h["verdicts"] for h in data["throughput"]) == 1
    assert {q["kind"]: q["open"] for q in data["queue"]}["verify_mask"] == 8
    assert data["annotators"][0]["username"] == "ann" and data["annotators"][0]["verdicts"] == 1
    assert {t["kind"]: t["median_s"] for t in data["timings"]}["verify_mask"] == 2.0
    assert data["verifiers"] == []
