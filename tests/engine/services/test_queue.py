"""Leasing human tasks: no task to two people, expiry, never an item one already judged."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from engine.db.base import utcnow
from engine.db.models import (
    Concept,
    GoldItem,
    HumanTask,
    Image,
    ImageConcept,
    PairOrigin,
    Polarity,
    Role,
    TaskKind,
    TaskSkip,
    TaskState,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain.passwords import WeakPassword, hash_password, verify_password
from engine.services import queue, queue_census, users

KINDS = (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY)


def seed(url, n_tasks, n_users=1):
    with session_scope(url) as s:
        image = Image(sha256="b" * 64, phash=0, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0, width=4,
                      height=4, format="PNG", byte_size=1, storage_key="k")
        s.add(image)
        s.flush()
        pairs = []
        for i in range(n_tasks):
            concept = Concept(text=f"thing {i}")
            s.add(concept)
            s.flush()
            pair = ImageConcept(image_id=image.id, concept_id=concept.id, polarity=Polarity.UNKNOWN,
                                origin=PairOrigin.MANUAL)
            s.add(pair)
            s.flush()
            pairs.append(pair.id)
            s.add(HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=pair.id, state=TaskState.OPEN,
                            priority=i % 3))
        people = [users.create_user(s, f"user{i}", "correct horse battery", Role.ANNOTATOR).id
                  for i in range(n_users)]
    return pairs, people


def test_passwords():
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and verify_password("correct horse battery", stored)
    assert not verify_password("wrong horse battery", stored)
    assert not verify_password("x", "garbage") and not verify_password("x", None)
    with pytest.raises(WeakPassword):
        hash_password("short")


def test_users_create_disable_authenticate(database_url):
    with session_scope(database_url) as s:
        users.create_user(s, "Alice", "a long enough secret", Role.REVIEWER)
        with pytest.raises(users.UserError, match="exists"):
            users.create_user(s, "alice", "another long secret", Role.ADMIN)
        with pytest.raises(users.UserError, match="username"):
            users.create_user(s, "bad name!", "a long enough secret", Role.ADMIN)
    with session_scope(database_url) as s:
        assert users.authenticate(s, "alice", "a long enough secret").role is Role.REVIEWER
        assert users.authenticate(s, "alice", "wrong") is None
        assert users.authenticate(s, "nobody", "a long enough secret") is None
        users.set_active(s, "alice", False)
    with session_scope(database_url) as s:
        assert users.authenticate(s, "alice", "a long enough secret") is None


def test_priority_order_and_lease(database_url):
    _, (user,) = seed(database_url, 6)
    with session_scope(database_url) as s:
        first = queue.next_task(s, user, KINDS, lease_s=60)
        assert first.priority == 2 and first.state is TaskState.LEASED and first.lease_owner_id == user
        assert first.attempts == 1
        assert queue.next_task(s, user, (TaskKind.CORRECT,), lease_s=60) is None


def test_concurrent_annotators_never_get_the_same_task(database_url):
    n_tasks = 120
    workers = 32 if database_url.startswith("postgresql") else 8
    _, people = seed(database_url, n_tasks, n_users=workers)
    got: list[list[int]] = [[] for _ in people]
    errors: list[BaseException] = []
    start = threading.Barrier(len(people))

    def annotate(index: int) -> None:
        try:
            start.wait()
            while True:
                with session_scope(database_url) as s:
                    task = queue.next_task(s, people[index], KINDS, lease_s=600)
                    if task is None:
                        return
                    got[index].append(task.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(i,)) for i in range(len(people))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    handed = [task for per in got for task in per]
    assert len(handed) == n_tasks and len(set(handed)) == n_tasks
    assert sum(1 for per in got if per) > 1  # the work really was shared


def test_expired_leases_return_to_the_queue(database_url):
    _, (alice, bob) = seed(database_url, 1, n_users=2)
    t0 = utcnow()
    with session_scope(database_url) as s:
        task = queue.next_task(s, alice, KINDS, lease_s=30, now=t0)
    with session_scope(database_url) as s:
        assert queue.next_task(s, bob, KINDS, lease_s=30, now=t0) is None
        queue.heartbeat(s, task.id, alice, lease_s=30, now=t0 + dt.timedelta(seconds=20))
        with pytest.raises(queue.LeaseLost):
            queue.heartbeat(s, task.id, bob, lease_s=30, now=t0)
    with session_scope(database_url) as s:
        assert queue.expire_leases(s, now=t0 + dt.timedelta(seconds=40)) == 0  # heartbeat extended it
        assert queue.expire_leases(s, now=t0 + dt.timedelta(seconds=51)) == 1
    with session_scope(database_url) as s:
        again = queue.next_task(s, bob, KINDS, lease_s=30, now=t0 + dt.timedelta(seconds=52))
        assert again.id == task.id and again.attempts == 2
        with pytest.raises(queue.LeaseLost):
            queue.heartbeat(s, task.id, alice, lease_s=30, now=t0 + dt.timedelta(seconds=53))


def _judge(s, task_id, user, label="complete"):  # type: ignore[no-untyped-def]
    task = s.get(HumanTask, task_id)
    kind = {TaskKind.CHECK_EXHAUSTIVITY: VerdictKind.EXHAUSTIVITY, TaskKind.CORRECT: VerdictKind.CORRECTION,
            TaskKind.VERIFY_MASK: VerdictKind.MASK}[task.kind]
    s.add(Verdict(kind=kind, source=VerdictSource.HUMAN, pair_id=task.pair_id, mask_id=task.mask_id,
                  task_id=task.id, user_id=user, label=label))


def _verify_task(s, pair_id):  # type: ignore[no-untyped-def]
    """A verify_mask task on a new candidate mask of the pair."""
    import numpy as np

    from engine.db.models import ModelKind
    from engine.domain.masks import encode_mask
    from engine.repositories.labels import add_mask
    from engine.repositories.model_versions import get_or_create

    grid = np.zeros((4, 4), bool)
    grid[1:3, 1:3] = True
    mask = add_mask(s, pair_id, get_or_create(s, ModelKind.PROPOSER, "test-proposer", "1").id, encode_mask(grid),
                    score=0.9)
    s.flush()
    task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair_id, mask_id=mask.id, state=TaskState.OPEN, priority=9)
    s.add(task)
    s.flush()
    return task.id


def test_who_may_take_a_task_task_rule_and_pair_rule(database_url):
    """Never a task one judged or skipped. By default (``task``) a person may check the instances of
    a pair whose masks they verified; with ``pair`` no exhaustivity or correction task of a pair they
    judged in any task goes to them (verify tasks keep the task rule)."""
    (p0, p1, p2), (alice, bob) = seed(database_url, 3, n_users=2)
    with session_scope(database_url) as s:
        tasks = {t.pair_id: t.id for t in s.scalars(select(HumanTask))}
        e0, e1, e2 = tasks[p0], tasks[p1], tasks[p2]
        _judge(s, e0, alice)  # alice judged e0 itself (a multi-review task, open again)
        done_verify = _verify_task(s, p1)  # alice verified a mask of p1 …
        _judge(s, done_verify, alice, "accept")
        s.get(HumanTask, done_verify).state = TaskState.DONE
        open_verify = _verify_task(s, p1)  # … and another mask of p1 is still to verify
        s.add(TaskSkip(task_id=e2, user_id=alice))  # alice skipped e2
    everything = tuple(TaskKind)
    with session_scope(database_url) as s:  # task rule: e1 and the open verify task, not e0, not e2
        got = {queue.next_task(s, alice, everything, lease_s=60).id for _ in range(2)}
        assert got == {e1, open_verify} and queue.next_task(s, alice, everything, lease_s=60) is None
        s.rollback()
    with session_scope(database_url) as s:  # pair rule: e1 is off limits too; the verify task is not
        assert queue.next_task(s, alice, everything, lease_s=60, independent_review="pair").id == open_verify
        assert queue.next_task(s, alice, everything, lease_s=60, independent_review="pair") is None
        assert queue.census(s, alice, TaskKind.CHECK_EXHAUSTIVITY, "pair") == (
            {"judged": 1, "same_pair": 1, "skipped": 1}, False)
        assert queue.census(s, alice, TaskKind.CHECK_EXHAUSTIVITY, "task") == (
            {"judged": 1, "free": 1, "skipped": 1}, False)
        s.rollback()
    with session_scope(database_url) as s:  # nobody else is held back
        assert {queue.next_task(s, bob, KINDS, lease_s=60, independent_review="pair").id for _ in range(4)} == {
            e0, e1, e2, open_verify}


def test_the_empty_answer_is_bounded_and_says_why(database_url, monkeypatch):
    _, (alice,) = seed(database_url, 5)
    monkeypatch.setattr(queue_census, "CENSUS_CAP", 3)
    queue_census._census_statement.cache_clear()  # built with the cap
    try:
        with session_scope(database_url) as s:
            for task_id in s.scalars(select(HumanTask.id)):
                s.add(TaskSkip(task_id=task_id, user_id=alice))
        with session_scope(database_url) as s:
            assert queue.next_task(s, alice, KINDS, lease_s=60) is None
            assert queue.census(s, alice, TaskKind.CHECK_EXHAUSTIVITY) == ({"skipped": 4}, True)
            empty = queue.why_empty(s, alice, [TaskKind.CHECK_EXHAUSTIVITY], allowed=list(TaskKind))
        assert empty.blocked == [queue.Blocked(TaskKind.CHECK_EXHAUSTIVITY, "skipped", 3, True)]
        assert empty.waiting == []
        assert empty.message == ("No task for you right now (check every instance). 3+ tasks of kind check every "
                                 "instance are open but not for you: you skipped these.")
    finally:
        monkeypatch.undo()
        queue_census._census_statement.cache_clear()
    with session_scope(database_url) as s:
        empty = queue.why_empty(s, alice, [TaskKind.CORRECT], allowed=[TaskKind.CORRECT])
    assert empty.blocked == [] and empty.waiting == [
        queue.Waiting(TaskKind.CHECK_EXHAUSTIVITY, 5, False, assigned=False)]
    assert "not assigned" in empty.message and "check every instance, 5 tasks" in empty.message


def test_settling_a_pair_leaves_a_task_leased_in_the_meantime_to_its_holder(database_url):
    """A "not present" verdict cancels the pair's other open tasks. A task that another annotator
    leased while that verdict was being stored stays theirs, and their verdict is accepted (reading
    the open tasks and writing them back cancelled it: the annotator got a 409 under load)."""
    from sqlalchemy import event

    from engine.db.session import get_engine
    from engine.services import annotation
    from engine.settings import QueueSettings

    if database_url.startswith("sqlite"):  # one writer at a time: the interleaving cannot happen there
        pytest.skip("needs concurrent writers (PostgreSQL)")
    (pair,), (alice, bob) = seed(database_url, 1, n_users=2)
    with session_scope(database_url) as s:
        other = HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=pair, state=TaskState.OPEN, priority=-1)
        s.add(other)
        s.flush()
        other_id = other.id
    with session_scope(database_url) as s:
        first = queue.next_task(s, alice, KINDS, lease_s=60)
        assert first.id != other_id
    leased: list[int] = []

    def lease_in_between(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        # before the settling transaction writes any task but its own, Bob leases the other task
        if statement.startswith("UPDATE human_tasks") and "reason" in statement and not leased:
            leased.append(0)
            with session_scope(database_url) as other_session:
                leased[0] = queue.next_task(other_session, bob, KINDS, lease_s=60).id

    engine = get_engine(database_url)
    event.listen(engine, "before_cursor_execute", lease_in_between)
    settings = QueueSettings(multi_review_rate=0.0)
    try:
        with session_scope(database_url) as s:
            done = annotation.submit(s, first.id, alice, annotation.VerdictIn("client-alice-1", "not_present", 900),
                                     settings)
        assert done.task_state == "done"
    finally:
        event.remove(engine, "before_cursor_execute", lease_in_between)
    assert leased == [other_id]
    with session_scope(database_url) as s:
        task = s.get(HumanTask, other_id)
        assert (task.state, task.lease_owner_id) == (TaskState.LEASED, bob)
        judged = annotation.submit(s, other_id, bob, annotation.VerdictIn("client-bob-1", "complete", 900), settings)
        assert judged.created


# ------------------------------------------------------------------ expiry in every mode, the lease cap, gold
def test_the_queue_returns_expired_leases_itself_without_a_sweep(database_url):
    """No broker, no beat, no CLI sweep: leasing returns lapsed leases to the queue first."""
    _, (alice, bob) = seed(database_url, 1, n_users=2)
    t0 = utcnow()
    with session_scope(database_url) as s:
        task = queue.lease_for(s, alice, KINDS, lease_s=30, gold_rate=0, now=t0)
    with session_scope(database_url) as s:
        assert queue.lease_for(s, bob, KINDS, lease_s=30, gold_rate=0, now=t0 + dt.timedelta(seconds=10)) is None
    with session_scope(database_url) as s:
        again = queue.lease_for(s, bob, KINDS, lease_s=30, gold_rate=0, now=t0 + dt.timedelta(seconds=31))
        assert again is not None and again.id == task.id and again.lease_owner_id == bob and again.attempts == 2
    with session_scope(database_url) as s:
        with pytest.raises(queue.LeaseLost):
            queue.heartbeat(s, task.id, alice, lease_s=30, now=t0 + dt.timedelta(seconds=32))


def test_a_person_holds_at_most_max_leases(database_url):
    from engine.services import labelstudio

    _, (alice, bob) = seed(database_url, 30, n_users=2)
    t0 = utcnow()
    with session_scope(database_url) as s:
        held = [queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=0, now=t0, max_leases=8).id for _ in range(8)]
        with pytest.raises(queue.TooManyLeases, match="you hold 8 tasks: submit or release one"):
            queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=0, now=t0, max_leases=8)
        assert queue.lease_for(s, bob, KINDS, lease_s=60, gold_rate=0, now=t0, max_leases=8) is not None
        queue.release(s, held[0], alice, now=t0)
        assert queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=0, now=t0, max_leases=8) is not None
    with session_scope(database_url) as s:  # the Label Studio bridge leases in bulk: no cap
        bridge = labelstudio.bridge_user(s).id
        claimed = labelstudio.claim(s, "http://ls.example:8080", TaskKind.CHECK_EXHAUSTIVITY, 15, lease_s=60, now=t0)
        assert len(claimed) == 15
    with session_scope(database_url) as s:  # lapsed: they no longer count, and every one goes back
        later = t0 + dt.timedelta(seconds=61)
        assert queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=0, now=later, max_leases=8) is not None
        assert s.scalar(select(func.count()).where(HumanTask.state == TaskState.LEASED,
                                                   HumanTask.lease_owner_id == bridge)) == 0


def _gold_world(url):  # type: ignore[no-untyped-def]
    """Ordinary exhaustivity tasks worded by the router, a gold item made from one of them, then more
    ordinary tasks created after it."""
    pairs, (alice,) = seed(url, 6)
    wording = "exhaustivity verifier not calibrated: P(exhaustive)=0.5, 1 accepted mask"
    with session_scope(url) as s:
        for task in s.scalars(select(HumanTask)):
            task.reason = wording
        item = GoldItem(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=pairs[0], answer="complete")
        s.add(item)
        s.flush()
        assert queue.refill_gold(s) == queue.GOLD_COPIES
        copies = set(s.scalars(select(HumanTask.id).where(HumanTask.gold_item_id == item.id)))
        later = [HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=p, state=TaskState.OPEN, reason=wording)
                 for p in pairs[1:4]]
        s.add_all(later)
        s.flush()
        return alice, item.id, copies, [t.id for t in later], wording


def test_gold_copies_are_made_ahead_and_look_like_ordinary_tasks(database_url):
    from engine.services import annotation

    alice, item_id, copies, later, wording = _gold_world(database_url)
    with session_scope(database_url) as s:
        gold = queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=1.0)
        plain = queue.lease_for(s, alice, KINDS, lease_s=60, gold_rate=0.0)
        assert gold.id in copies and gold.is_gold and not plain.is_gold
        assert gold.id < min(later)  # made with the item, not at lease time: not the newest id
        shown, other = annotation.describe(s, gold), annotation.describe(s, plain)
        assert shown.keys() == other.keys() and shown["reason"] == other["reason"] == wording
        assert "gold" not in str(shown).lower()
        # never two copies of one item at once, nor after judging it
        assert queue.lease_gold(s, alice, KINDS, lease_s=60) is None
        empty = queue.why_empty(s, alice, KINDS, KINDS, KINDS)
        assert "gold" not in empty.message.lower()
        gold_id = gold.id
    with session_scope(database_url) as s:  # used up (judged): the sweep refills the item to GOLD_COPIES
        s.get(HumanTask, gold_id).state = TaskState.DONE
        s.get(HumanTask, gold_id).lease_owner_id = s.get(HumanTask, gold_id).lease_expires_at = None
    with session_scope(database_url) as s:
        assert queue.sweep(s, force=True)
        live = s.scalar(select(func.count()).where(HumanTask.gold_item_id == item_id,
                                                   HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED])))
        assert live == queue.GOLD_COPIES


def test_an_expired_or_released_gold_copy_returns_to_the_pool(database_url):
    alice, item_id, copies, _, _ = _gold_world(database_url)
    t0 = utcnow()
    with session_scope(database_url) as s:
        gold = queue.lease_gold(s, alice, KINDS, lease_s=30, now=t0)
        assert gold is not None
        gold_id = gold.id
    with session_scope(database_url) as s:
        assert queue.expire_leases(s, now=t0 + dt.timedelta(seconds=31)) == 1
        assert s.get(HumanTask, gold_id).state is TaskState.OPEN
        again = queue.lease_gold(s, alice, KINDS, lease_s=30, now=t0 + dt.timedelta(seconds=32))
        queue.release(s, again.id, alice, skip=True)
        assert s.get(HumanTask, again.id).state is TaskState.OPEN
        nxt = queue.lease_gold(s, alice, KINDS, lease_s=30, now=t0 + dt.timedelta(seconds=33))
        assert nxt is not None and nxt.id != again.id and nxt.id in copies  # the skipped copy is not offered
