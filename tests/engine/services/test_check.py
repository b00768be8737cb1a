"""``engine.services.check``: every written invariant is found when broken, with the ids involved;
``repair`` fixes exactly the unambiguous ones and logs each; a database the services fill is clean.

Violating states are written directly (ORM writes that bypass the services): that is what a check is for.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from engine.db.base import utcnow
from engine.db.models import (
    Decider,
    GoldItem,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    Polarity,
    Role,
    TaskKind,
    TaskState,
    User,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.domain.invariants import BY_CODE, INVARIANTS, MEDIA_CODES, REPAIRABLE
from engine.services import check as checker
from engine.services.annotation import MaskIn, VerdictIn, submit
from engine.services.queue import lease_gold, next_task, refill_gold
from engine.settings import QueueSettings
from tests.factories import seed_review_items

_client = itertools.count()


@dataclass
class World:
    """One image with the pairs dog, cat, bird; masks m[pair][0..1]; open tasks as the router makes
    them: verify_mask per mask (verify[mask]) and check_exhaustivity per pair (exh[pair])."""

    pairs: dict[str, int]
    masks: dict[str, list[int]]
    verify: dict[int, int]
    exh: dict[str, int]
    users: list[int]


@pytest.fixture
def world(session, tmp_path) -> World:
    made = seed_review_items(session, tmp_path / "media", n_images=1, phrases=("dog", "cat", "bird"))
    people = [User(username=f"check-ann{i}", role=Role.ANNOTATOR) for i in range(3)]
    session.add_all(people)
    session.flush()
    names = ("dog", "cat", "bird")
    pairs = dict(zip(names, made["pairs"], strict=True))
    masks = {n: made["masks"][2 * i: 2 * i + 2] for i, n in enumerate(names)}
    tasks = {t.id: t for t in session.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])))}
    verify = {t.mask_id: t.id for t in tasks.values() if t.kind == TaskKind.VERIFY_MASK}
    exh = {n: next(t.id for t in tasks.values() if t.kind == TaskKind.CHECK_EXHAUSTIVITY and t.pair_id == pairs[n])
           for n in names}
    session.commit()
    return World(pairs, masks, verify, exh, [u.id for u in people])


def later(hours: float = 1) -> dt.datetime:
    return utcnow() + dt.timedelta(hours=hours)


def verdict(session, task_id: int, user_id: int, label: str = "accept", **overrides) -> int:
    task = session.get(HumanTask, task_id)
    kind = {TaskKind.VERIFY_MASK: VerdictKind.MASK, TaskKind.CHECK_EXHAUSTIVITY: VerdictKind.EXHAUSTIVITY,
            TaskKind.CORRECT: VerdictKind.CORRECTION}[task.kind]
    values = dict(kind=kind, source=VerdictSource.HUMAN, pair_id=task.pair_id, mask_id=task.mask_id,
                  task_id=task.id, user_id=user_id, label=label,
                  client_id=f"check-{next(_client)}-{uuid.uuid4().hex[:8]}")
    values.update(overrides)
    row = Verdict(**values)
    session.add(row)
    session.flush()
    return row.id


def pair(session, w: World, name: str) -> ImageConcept:
    return session.get(ImageConcept, w.pairs[name])


def mask(session, w: World, name: str, i: int = 0) -> Mask:
    return session.get(Mask, w.masks[name][i])


def task(session, task_id: int) -> HumanTask:
    return session.get(HumanTask, task_id)


# ============================================================================ planted violations
# each returns the violations the check must report: {code: [ids, …]} (exactly these, nothing else)
Plant = Callable[[object, World], dict[str, list[dict]]]


def m1_candidate_with_decider(s, w):
    mask(s, w, "dog").decided_by = Decider.AI
    return {"M1": [{"mask": w.masks["dog"][0], "pair": w.pairs["dog"]}]}


def m1_decided_without_decider(s, w):
    mask(s, w, "dog", 1).state = MaskState.REJECTED
    return {"M1": [{"mask": w.masks["dog"][1], "pair": w.pairs["dog"]}]}


def m2_mask_rle_not_its_size(s, w):
    # planted past the services (add_mask refuses it): counts summing to 14, a truncated number
    mask(s, w, "cat").rle_counts = "95"
    mask(s, w, "bird", 1).rle_counts = "1o"
    return {"M2": [{"mask": w.masks["cat"][0], "pair": w.pairs["cat"]},
                   {"mask": w.masks["bird"][1], "pair": w.pairs["bird"]}]}


def p1_negative_with_accepted_mask(s, w):
    p = pair(s, w, "cat")
    p.polarity, p.is_exhaustive, p.decided_by = Polarity.NEGATIVE, True, Decider.HUMAN
    m = mask(s, w, "cat", 1)
    m.state, m.decided_by = MaskState.ACCEPTED, Decider.AI
    return {"P1": [{"pair": w.pairs["cat"], "masks": [w.masks["cat"][1]]}]}


def p2_negative_without_claim(s, w):
    pair(s, w, "bird").polarity = Polarity.NEGATIVE
    return {"P2": [{"pair": w.pairs["bird"]}]}


def p3_exhaustive_positive_without_accepted(s, w):
    p = pair(s, w, "dog")
    p.polarity, p.is_exhaustive, p.decided_by = Polarity.POSITIVE, True, Decider.AI
    mask(s, w, "dog").state, mask(s, w, "dog").decided_by = MaskState.REJECTED, Decider.AI
    return {"P3": [{"pair": w.pairs["dog"]}]}


def p4_accepted_on_unknown_pair(s, w):
    for i in (0, 1):
        m = mask(s, w, "dog", i)
        m.state, m.decided_by = MaskState.ACCEPTED, Decider.HUMAN
    return {"P4": [{"pair": w.pairs["dog"], "masks": sorted(w.masks["dog"])}]}


def p5_positive_without_mask_or_claim(s, w):
    pair(s, w, "dog").polarity = Polarity.POSITIVE
    return {"P5": [{"pair": w.pairs["dog"]}]}


def p5_missing_claim_not_positive(s, w):
    p = pair(s, w, "cat")
    p.is_exhaustive, p.decided_by = False, Decider.HUMAN
    return {"P5": [{"pair": w.pairs["cat"]}]}


def p6_decider_without_claim(s, w):
    pair(s, w, "bird").decided_by = Decider.AI
    return {"P6": [{"pair": w.pairs["bird"]}]}


def t1_open_task_with_owner(s, w):
    t = task(s, w.exh["dog"])
    t.lease_owner_id, t.lease_expires_at = w.users[0], later()
    return {"T1": [{"task": t.id, "user": w.users[0]}]}


def t1_leased_without_owner(s, w):
    t = task(s, w.exh["cat"])
    t.state, t.lease_expires_at = TaskState.LEASED, later()
    return {"T1": [{"task": t.id, "user": None}]}


def t2_two_verdicts_one_person(s, w):
    t = task(s, w.verify[w.masks["dog"][0]])
    t.state, t.reviews_done = TaskState.DONE, 1
    first = verdict(s, t.id, w.users[0], "accept")
    second = verdict(s, t.id, w.users[0], "reject")
    return {"T2": [{"task": t.id, "user": w.users[0], "verdicts": [first, second]}]}


def t3_verdict_kind_not_the_tasks(s, w):
    t = task(s, w.verify[w.masks["dog"][0]])
    t.state, t.reviews_done = TaskState.DONE, 1
    v = verdict(s, t.id, w.users[0], "complete", kind=VerdictKind.EXHAUSTIVITY)
    return {"T3": [{"verdict": v, "task": t.id, "user": w.users[0], "pair": w.pairs["dog"],
                    "mask": w.masks["dog"][0]}]}


def t3_verdict_on_another_pair(s, w):
    t = task(s, w.exh["dog"])
    t.state, t.reviews_done = TaskState.DONE, 1
    v = verdict(s, t.id, w.users[0], "complete", pair_id=w.pairs["cat"])
    return {"T3": [{"verdict": v, "task": t.id, "user": w.users[0], "pair": w.pairs["cat"], "mask": None}]}


def t3_supersedes_another_tasks_verdict(s, w):
    a, b = task(s, w.verify[w.masks["dog"][0]]), task(s, w.verify[w.masks["dog"][1]])
    for t in (a, b):
        t.state, t.reviews_done = TaskState.DONE, 1
    old = verdict(s, a.id, w.users[0], "accept")
    new = verdict(s, b.id, w.users[0], "reject", supersedes_id=old)
    return {"T3": [{"verdict": new, "task": b.id, "user": w.users[0], "pair": w.pairs["dog"],
                    "mask": w.masks["dog"][1], "supersedes": old}]}


def t4_verify_task_with_another_pairs_mask(s, w):
    t = task(s, w.verify[w.masks["dog"][0]])
    t.mask_id = w.masks["cat"][0]
    return {"T4": [{"task": t.id, "pair": w.pairs["dog"], "mask": w.masks["cat"][0]}]}


def t4_pair_task_naming_a_mask(s, w):
    t = task(s, w.exh["bird"])
    t.mask_id = w.masks["bird"][1]
    return {"T4": [{"task": t.id, "pair": w.pairs["bird"], "mask": w.masks["bird"][1]}]}


def t5_duplicate_open_task(s, w):
    extra = HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["dog"], state=TaskState.OPEN, reason="again")
    s.add(extra)
    s.flush()
    return {"T5": [{"tasks": [w.exh["dog"], extra.id], "pair": w.pairs["dog"], "mask": None}]}


def t6_more_people_than_reviews(s, w):
    t = task(s, w.verify[w.masks["bird"][0]])
    t.state, t.reviews_done = TaskState.DONE, 2
    first, second = verdict(s, t.id, w.users[0]), verdict(s, t.id, w.users[1])
    return {"T6": [{"task": t.id, "users": w.users[:2], "verdicts": [first, second]}]}


PLANTS: list[Plant] = [
    m1_candidate_with_decider, m1_decided_without_decider, m2_mask_rle_not_its_size, p1_negative_with_accepted_mask,
    p2_negative_without_claim,
    p3_exhaustive_positive_without_accepted, p4_accepted_on_unknown_pair, p5_positive_without_mask_or_claim,
    p5_missing_claim_not_positive, p6_decider_without_claim, t1_open_task_with_owner, t1_leased_without_owner,
    t2_two_verdicts_one_person, t3_verdict_kind_not_the_tasks, t3_verdict_on_another_pair,
    t3_supersedes_another_tasks_verdict, t4_verify_task_with_another_pairs_mask, t4_pair_task_naming_a_mask,
    t5_duplicate_open_task, t6_more_people_than_reviews,
]


def found(report: checker.CheckReport) -> dict[str, list[dict]]:
    return {code: [v.ids for v in vs] for code, vs in report.violated().items()}


# ============================================================================ tests
def test_every_invariant_has_a_plant():
    planted = {p.__name__[:2].upper() for p in PLANTS}
    assert planted == set(BY_CODE) - set(MEDIA_CODES)  # F1, F2: tests/engine/services/test_check_media.py


def test_a_clean_database_passes(session, world):
    report = checker.check(session)
    assert report.ok and report.total == 0 and found(report) == {}
    assert [r.invariant.code for r in report.results] == [inv.code for inv in INVARIANTS
                                                          if inv.code not in MEDIA_CODES]


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.__name__)
def test_each_violation_is_named_with_its_ids(session, world, plant):
    expected = plant(session, world)
    session.commit()
    report = checker.check(session)
    assert found(report) == expected
    assert not report.ok and report.total == sum(len(v) for v in expected.values())
    for code in expected:
        assert all(v.code == code and v.detail for v in report.result(code).violations)
    counted = checker.check(session, limit_per_invariant=0)  # nothing listed: every count by its own query
    assert {r.invariant.code: r.count for r in counted.results if r.count} == {c: len(v) for c, v in expected.items()}
    assert all(r.violations == [] for r in counted.results)


def test_legal_states_that_look_alike_are_not_violations(session, world):
    s, w = session, world
    # a Label Studio edit: the same person's second verdict supersedes the first (not two verdicts)
    t = task(s, w.verify[w.masks["dog"][0]])
    t.state, t.reviews_done = TaskState.DONE, 1
    first = verdict(s, t.id, w.users[0], "accept", source=VerdictSource.LABEL_STUDIO)
    verdict(s, t.id, w.users[0], "reject", source=VerdictSource.LABEL_STUDIO, supersedes_id=first)
    m = mask(s, w, "dog")
    m.state, m.decided_by = MaskState.REJECTED, Decider.HUMAN
    # another person's edit supersedes it: one person's verdict still stands
    t2 = task(s, w.verify[w.masks["dog"][1]])
    t2.state, t2.reviews_done = TaskState.DONE, 1
    verdict(s, t2.id, w.users[1], "accept", source=VerdictSource.LABEL_STUDIO,
            supersedes_id=verdict(s, t2.id, w.users[0], "reject", source=VerdictSource.LABEL_STUDIO))
    m = mask(s, w, "dog", 1)
    m.state, m.decided_by = MaskState.ACCEPTED, Decider.HUMAN
    # … so the pair is positive; then exhaustive
    p = pair(s, w, "dog")
    p.polarity, p.is_exhaustive, p.decided_by = Polarity.POSITIVE, True, Decider.HUMAN
    # multi-review: two people on a task that asks for two
    t3 = task(s, w.verify[w.masks["cat"][0]])
    t3.state, t3.reviews_required, t3.reviews_done = TaskState.OPEN, 3, 2
    verdict(s, t3.id, w.users[0], "accept")
    verdict(s, t3.id, w.users[1], "reject")
    # a lease past its expiry the sweep has not returned yet still belongs to its owner
    t4 = task(s, w.exh["cat"])
    t4.state, t4.lease_owner_id, t4.lease_expires_at = TaskState.LEASED, w.users[2], utcnow() - dt.timedelta(hours=1)
    # a gold task beside an open task of the same item; a cancelled and a done duplicate
    s.add_all([
        HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["bird"], state=TaskState.LEASED, is_gold=True,
                  lease_owner_id=w.users[0], lease_expires_at=later(), gold_answer={"label": "complete"}),
        HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["bird"], state=TaskState.CANCELLED),
        HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["bird"], state=TaskState.DONE)])
    # exhaustive claim whose masks are still candidates: the pair waits, unknown
    b = pair(s, w, "bird")
    b.is_exhaustive, b.decided_by = True, Decider.AI
    # instances missing: positive without an accepted mask
    c = pair(s, w, "cat")
    c.polarity, c.is_exhaustive, c.decided_by = Polarity.POSITIVE, False, Decider.HUMAN
    # AI verdicts carry no task and no person
    s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=w.pairs["cat"], mask_id=w.masks["cat"][1],
                  model_version_id=mask(s, w, "cat", 1).model_version_id, label="accept"))
    s.commit()
    report = checker.check(s)
    assert found(report) == {}


def test_limit_lists_the_first_and_counts_all(session, world):
    for name in ("dog", "cat", "bird"):
        pair(session, world, name).decided_by = Decider.HUMAN
    session.commit()
    result = checker.check(session, limit_per_invariant=2).result("P6")
    assert result.count == 3 and [v.ids["pair"] for v in result.violations] == sorted(world.pairs.values())[:2]
    assert checker.check(session, limit_per_invariant=None).result("P6").count == 3
    assert checker.check(session, codes=["p6"]).result("P6").count == 3


def test_repair_fixes_only_the_unambiguous_and_logs_each(session, world, caplog):
    s, w = session, world
    candidate = m1_candidate_with_decider(s, w)["M1"][0]["mask"]
    undecided = m1_decided_without_decider(s, w)["M1"][0]["mask"]
    p1 = p1_negative_with_accepted_mask(s, w)
    open_owned = t1_open_task_with_owner(s, w)["T1"][0]["task"]
    ownerless = t1_leased_without_owner(s, w)["T1"][0]["task"]
    no_expiry = task(s, w.verify[w.masks["bird"][1]])
    no_expiry.state, no_expiry.lease_owner_id = TaskState.LEASED, w.users[1]
    gold = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=w.pairs["bird"], mask_id=w.masks["bird"][0],
                     state=TaskState.LEASED, is_gold=True, lease_expires_at=later(), reason="gold item")
    # duplicates: the newer copy is leased, so it is kept and the older open one is cancelled
    leased_copy = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=w.pairs["dog"], mask_id=w.masks["dog"][1],
                            state=TaskState.LEASED, lease_owner_id=w.users[2], lease_expires_at=later())
    open_copy = HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["bird"], state=TaskState.OPEN)
    s.add_all([gold, leased_copy, open_copy])
    s.commit()
    before = checker.check(s)
    assert set(before.violated()) == {"M1", "P1", "T1", "T5"}

    with caplog.at_level(logging.WARNING, logger="engine.services.check"):
        repairs = checker.repair(s)
    s.commit()
    done = {(r.code, r.ids["mask"] if r.code == "M1" else r.ids["task"]) for r in repairs}
    assert done == {("M1", candidate), ("T1", open_owned), ("T1", ownerless), ("T1", no_expiry.id),
                    ("T1", gold.id), ("T5", w.verify[w.masks["dog"][1]]), ("T5", open_copy.id)}
    assert len(repairs) == len(done)
    logged = [r.getMessage() for r in caplog.records if r.name == "engine.services.check"]
    assert len(logged) == len(repairs) and all(m.startswith("repaired ") for m in logged)

    s.expire_all()
    assert mask(s, w, "dog").decided_by is None and mask(s, w, "dog").state == MaskState.CANDIDATE
    t = task(s, open_owned)
    assert (t.state, t.lease_owner_id, t.lease_expires_at) == (TaskState.OPEN, None, None)
    assert "check --repair" in t.reason
    t = task(s, ownerless)
    assert (t.state, t.lease_owner_id, t.lease_expires_at) == (TaskState.OPEN, None, None)
    t = task(s, no_expiry.id)
    assert t.state == TaskState.LEASED and t.lease_owner_id == w.users[1] and t.lease_expires_at is not None
    assert task(s, gold.id).state == TaskState.CANCELLED
    assert task(s, leased_copy.id).state == TaskState.LEASED
    dup = task(s, w.verify[w.masks["dog"][1]])
    assert dup.state == TaskState.CANCELLED and f"duplicate of task {leased_copy.id}" in dup.reason
    assert task(s, w.exh["bird"]).state == TaskState.OPEN and task(s, open_copy.id).state == TaskState.CANCELLED

    after = checker.check(s)
    assert found(after) == {"M1": [{"mask": undecided, "pair": w.pairs["dog"]}], **p1}
    assert checker.repair(s) == []  # nothing unambiguous is left


def test_repair_leaves_two_leased_duplicates_to_their_holders(session, world):
    s, w = session, world
    first = task(s, w.exh["dog"])
    first.state, first.lease_owner_id, first.lease_expires_at = TaskState.LEASED, w.users[0], later()
    s.add(HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=w.pairs["dog"], state=TaskState.LEASED,
                    lease_owner_id=w.users[1], lease_expires_at=later()))
    s.commit()
    assert checker.repair(s) == []
    assert set(checker.check(s).violated()) == {"T5"}


def test_repairable_invariants_are_the_written_ones():
    assert REPAIRABLE == ("M1", "T1", "T5", "F1")
    assert all(BY_CODE[c].repair for c in REPAIRABLE)
    assert not any(inv.repairable for inv in INVARIANTS if inv.code.startswith("P"))


# ============================================================================ the services keep them
def _lease(session, user_id: int, kind: TaskKind) -> HumanTask:
    leased = next_task(session, user_id, [kind], lease_s=600)
    assert leased is not None
    return leased


def _submit(session, t: HumanTask, user_id: int, label: str, settings: QueueSettings, masks=(), **kw) -> int:
    body = VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=1500, masks=list(masks))
    return submit(session, t.id, user_id, body, settings, **kw).verdict_id


def test_a_database_filled_by_the_services_is_clean(session, tmp_path):
    """Verdicts through the queue and annotation.submit (single and multi-review, not present,
    instances missing then a correction, gold), then the check."""
    s = session
    made = seed_review_items(s, tmp_path / "media", n_images=2, phrases=("dog", "cat"))
    people = [User(username=f"svc-ann{i}", role=Role.ANNOTATOR) for i in range(3)]
    s.add_all(people)
    s.flush()
    a, b, c = (u.id for u in people)
    single = QueueSettings(multi_review_rate=0.0)
    every = QueueSettings(multi_review_rate=1.0, max_reviews=2)
    dog0, cat0, dog1, cat1 = made["pairs"]
    masks = {p: list(s.scalars(select(Mask.id).where(Mask.pair_id == p).order_by(Mask.id))) for p in made["pairs"]}
    tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))

    def open_task(kind: TaskKind, pair_id: int, mask_id: int | None = None) -> HumanTask:
        return next(t for t in tasks if t.kind == kind and t.pair_id == pair_id and t.mask_id == mask_id)

    # dog0: one mask accepted, one rejected (the second by two people), then "complete"
    t = _lease(s, a, TaskKind.VERIFY_MASK)
    assert t.id == open_task(TaskKind.VERIFY_MASK, dog0, masks[dog0][0]).id
    _submit(s, t, a, "accept", single)
    t = _lease(s, a, TaskKind.VERIFY_MASK)
    _submit(s, t, a, "reject", every)
    assert _lease(s, b, TaskKind.VERIFY_MASK).id == t.id
    _submit(s, t, b, "reject", every)
    t = _lease(s, a, TaskKind.CHECK_EXHAUSTIVITY)
    assert t.pair_id == dog0
    _submit(s, t, a, "complete", single)
    s.flush()
    assert checker.check(s).ok, found(checker.check(s))
    # cat0: not present (its open verify tasks become moot)
    t = _lease(s, b, TaskKind.CHECK_EXHAUSTIVITY)
    assert t.pair_id == cat0
    _submit(s, t, b, "not_present", single)
    # dog1: instances missing → a correction keeps one mask and draws one
    t = _lease(s, c, TaskKind.CHECK_EXHAUSTIVITY)
    assert t.pair_id == dog1
    _submit(s, t, c, "missing", single)
    s.flush()
    correction = _lease(s, a, TaskKind.CORRECT)
    assert correction.pair_id == dog1
    drawn = {"size": [64, 96], "counts": _rectangle_counts()}
    _submit(s, correction, a, "corrected", single,
            masks=[MaskIn(mask_id=masks[dog1][0], tool="existing"), MaskIn(rle=drawn, tool="brush")])
    # a gold item made from a done task, answered by someone who has not seen the item
    s.add(GoldItem(kind=TaskKind.VERIFY_MASK, pair_id=dog0, mask_id=masks[dog0][0], answer="accept"))
    s.flush()
    refill_gold(s)  # its copies, made ahead of time
    gold = lease_gold(s, c, [TaskKind.VERIFY_MASK], lease_s=600)
    assert gold is not None
    _submit(s, gold, c, "accept", single)
    # an abandoned lease, swept back
    t = _lease(s, c, TaskKind.VERIFY_MASK)
    s.commit()

    report = checker.check(s)
    assert report.ok, found(report)
    assert s.scalar(select(HumanTask.state).where(HumanTask.id == t.id)) == TaskState.LEASED


def _rectangle_counts() -> str:
    import numpy as np

    from engine.domain.masks import encode_mask

    grid = np.zeros((64, 96), dtype=bool)
    grid[40:60, 50:90] = True
    return encode_mask(grid).counts
