"""Undo of the last verdict (engine/services/undo.py) on both databases: each task kind's verdict is
taken back through the decision model — masks and claims go back, drawn masks are rejected (kept),
cancelled tasks re-open, the task is leased to its author again — within the window and until the
author's next verdict; gold answers never. After every undo (and a different answer after it) the
invariants hold (`dataengine check`)."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pytest
from sqlalchemy import select

from engine.db.base import utcnow
from engine.db.models import (
    Decider,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    Polarity,
    TaskKind,
    TaskState,
    User,
    Verdict,
)
from engine.domain import decisions as dm
from engine.domain.masks import encode_mask
from engine.services import check, undo
from engine.services.annotation import MaskIn, VerdictIn, submit
from engine.settings import QueueSettings
from tests.factories import seed_review_items

QUEUE = QueueSettings(multi_review_rate=0.0, undo_window_s=60)
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(session, settings):
    """One image, "dog", two candidate masks, a verify task per mask, an exhaustivity and a correct
    task; two annotators."""
    made = seed_review_items(session, settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=2,
                             kinds=("verify_mask", "check_exhaustivity", "correct"))
    people = [User(username=f"undo-ann{i}", role="annotator") for i in (1, 2)]
    session.add_all(people)
    session.flush()
    return {"pair": made["pairs"][0], "masks": made["masks"], "verify": made["tasks"][:2],
            "check": made["tasks"][2], "correct": made["tasks"][3], "a": people[0].id, "b": people[1].id}


def lease(session, task_id, user_id, now=T0):
    task = session.get(HumanTask, task_id)
    task.state, task.lease_owner_id = TaskState.LEASED, user_id
    task.lease_expires_at = now + dt.timedelta(minutes=10)
    session.flush()


def judge(session, task_id, user_id, label, now=T0, masks=()):
    lease(session, task_id, user_id, now)
    out = submit(session, task_id, user_id, VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=900,
                                                      masks=list(masks)), QUEUE, now)
    session.flush()
    return out


def pair_state(session, pair_id):
    session.expire_all()
    pair = session.get(ImageConcept, pair_id)
    masks = {m.id: (m.state, m.decided_by) for m in session.scalars(select(Mask).where(Mask.pair_id == pair_id))}
    return (pair.polarity, pair.is_exhaustive, pair.decided_by), masks


def assert_clean(session):
    session.flush()
    report = check.check(session)
    assert report.ok, report.violated()


def assert_back_to_the_author(session, task_id, user_id):
    task = session.get(HumanTask, task_id)
    assert task.state == TaskState.LEASED and task.lease_owner_id == user_id and task.lease_expires_at is not None


def test_verify_mask_undone_then_answered_differently(session, world):
    first = world["masks"][0]
    before = pair_state(session, world["pair"])
    out = judge(session, world["verify"][0], world["a"], "accept")
    assert pair_state(session, world["pair"])[1][first] == (MaskState.ACCEPTED, Decider.HUMAN)

    found = undo.undoable(session, world["a"], QUEUE, now=T0 + dt.timedelta(seconds=5))
    assert (found.verdict_id, found.task_id, found.label) == (out.verdict_id, world["verify"][0], "accept")
    done = undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=5), QUEUE)
    assert done.undone_id == out.verdict_id and done.task_id == world["verify"][0]
    assert pair_state(session, world["pair"]) == before
    assert_back_to_the_author(session, world["verify"][0], world["a"])
    taken_back = session.get(Verdict, done.verdict_id)
    assert taken_back.label == dm.UNDONE and taken_back.supersedes_id == out.verdict_id
    assert session.get(Verdict, out.verdict_id) is not None  # append-only: nothing deleted
    assert_clean(session)
    with pytest.raises(undo.NotUndoable, match="undone already"):
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=6), QUEUE)

    again = submit(session, world["verify"][0], world["a"], VerdictIn(client_id=uuid.uuid4().hex, label="reject",
                                                                       active_ms=500), QUEUE,
                   T0 + dt.timedelta(seconds=7))
    assert again.conflict is None and again.task_state == TaskState.DONE
    assert pair_state(session, world["pair"])[1][first] == (MaskState.REJECTED, Decider.HUMAN)
    assert_clean(session)


def test_not_present_undone_reopens_the_tasks_it_cancelled(session, world):
    before = pair_state(session, world["pair"])
    judge(session, world["check"], world["a"], "not_present")
    session.expire_all()
    assert {session.get(HumanTask, t).state for t in (*world["verify"], world["correct"])} == {TaskState.CANCELLED}
    assert pair_state(session, world["pair"])[0][0] == Polarity.NEGATIVE

    done = undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=30), QUEUE)
    assert sorted(done.reopened) == sorted([*world["verify"], world["correct"]])
    session.expire_all()
    assert {session.get(HumanTask, t).state for t in done.reopened} == {TaskState.OPEN}
    assert pair_state(session, world["pair"]) == before
    assert_back_to_the_author(session, world["check"], world["a"])
    assert_clean(session)
    judge(session, world["check"], world["a"], "complete", now=T0 + dt.timedelta(seconds=40))
    assert_clean(session)


def test_instances_missing_undone_cancels_the_correction_it_asked_for(session, world):
    # the seeded correct task would be the follow-up's twin: close it, as if it were done long ago
    session.get(HumanTask, world["correct"]).state = TaskState.DONE
    before = pair_state(session, world["pair"])
    judge(session, world["check"], world["a"], "missing")
    follow_up = session.scalars(select(HumanTask).where(
        HumanTask.pair_id == world["pair"], HumanTask.kind == TaskKind.CORRECT,
        HumanTask.state == TaskState.OPEN)).one()

    undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=10), QUEUE)
    session.expire_all()
    assert session.get(HumanTask, follow_up.id).state == TaskState.CANCELLED
    assert pair_state(session, world["pair"]) == before
    assert_clean(session)


def test_correction_undone_rejects_the_drawn_masks_never_deletes_them(session, world):
    kept, dropped = world["masks"]
    before = pair_state(session, world["pair"])
    grid = np.zeros((64, 96), dtype=bool)
    grid[40:60, 50:90] = True
    drawn = encode_mask(grid)
    out = judge(session, world["correct"], world["a"], "corrected", masks=[
        MaskIn(mask_id=kept, tool="existing"), MaskIn(rle={"size": [64, 96], "counts": drawn.counts}, tool="brush")])
    new_ids = session.get(Verdict, out.verdict_id).payload["new_mask_ids"]
    assert len(new_ids) == 1
    session.expire_all()
    assert session.get(HumanTask, world["check"]).state == TaskState.CANCELLED  # settled: moot

    done = undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=20), QUEUE)
    claim, masks = pair_state(session, world["pair"])
    assert claim == before[0]
    assert masks[kept] == before[1][kept] and masks[dropped] == before[1][dropped]
    assert masks[new_ids[0]] == (MaskState.REJECTED, Decider.HUMAN)  # kept as a row, rejected
    assert world["check"] in done.reopened
    assert_back_to_the_author(session, world["correct"], world["a"])
    assert_clean(session)


def test_the_window_and_the_next_verdict_end_the_undo(session, world):
    first = judge(session, world["verify"][0], world["a"], "accept")
    with pytest.raises(undo.NotUndoable, match="too late"):
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=61), QUEUE)
    second = judge(session, world["verify"][1], world["a"], "reject", now=T0 + dt.timedelta(seconds=2))
    with pytest.raises(undo.NotUndoable, match="later verdict"):
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=3), QUEUE, verdict_id=first.verdict_id)
    done = undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=3), QUEUE)
    assert done.undone_id == second.verdict_id
    with pytest.raises(undo.NotUndoable, match="later verdict"):  # one undo: never a chain back in time
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=4), QUEUE, verdict_id=first.verdict_id)
    assert_clean(session)


def test_refusals_gold_another_persons_nothing_and_decided_since(session, world):
    with pytest.raises(undo.NotUndoable, match="no verdict"):
        undo.undo_last(session, world["a"], T0, QUEUE)
    with pytest.raises(undo.NoSuchVerdict):
        undo.undo_last(session, world["a"], T0, QUEUE, verdict_id=10**9)

    gold = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=world["pair"], mask_id=world["masks"][1],
                     state=TaskState.OPEN, is_gold=True, gold_answer={"label": "reject"}, reason="test")
    session.add(gold)
    session.flush()
    judge(session, gold.id, world["b"], "reject")
    with pytest.raises(undo.NotUndoable, match="gold"):
        undo.undo_last(session, world["b"], T0 + dt.timedelta(seconds=1), QUEUE)

    mine = judge(session, world["verify"][0], world["a"], "accept")
    with pytest.raises(undo.NotUndoable, match="another person"):
        undo.undo_last(session, world["b"], T0, QUEUE, verdict_id=mine.verdict_id)
    # another person decided the item since: "not present" rejected the accepted mask
    judge(session, world["check"], world["b"], "not_present", now=T0 + dt.timedelta(seconds=1))
    before = pair_state(session, world["pair"])
    with pytest.raises(undo.NotUndoable, match="decided again since"):
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=2), QUEUE)
    assert pair_state(session, world["pair"]) == before
    assert_clean(session)


def test_a_verdict_from_before_undo_existed_is_refused(session, world):
    out = judge(session, world["verify"][0], world["a"], "accept")
    verdict = session.get(Verdict, out.verdict_id)
    # a verdict stored by an older version carries no record of what it changed (append-only in the
    # database: it is stored again as such a verdict would have been)
    old = Verdict(kind=verdict.kind, source=verdict.source, pair_id=verdict.pair_id, mask_id=world["masks"][1],
                  task_id=world["verify"][1], user_id=world["a"], label="accept", created_at=T0)
    lease(session, world["verify"][1], world["a"])
    session.get(HumanTask, world["verify"][1]).state = TaskState.DONE
    session.get(HumanTask, world["verify"][1]).lease_owner_id = None
    session.get(HumanTask, world["verify"][1]).lease_expires_at = None
    session.add(old)
    session.flush()
    with pytest.raises(undo.NotUndoable, match="before undo existed"):
        undo.undo_last(session, world["a"], T0 + dt.timedelta(seconds=1), QUEUE)


def test_the_model_restores_what_the_verdict_changed():
    """The pure transition: an accept on the AI's negative cleared the claim; undo puts it back."""
    pair = dm.PairFacts(1, dm.Claim.NEGATIVE, dm.AI, (dm.MaskFacts(10, dm.REJECTED, dm.AI),
                                                      dm.MaskFacts(11, dm.REJECTED, dm.AI)))
    outcome = dm.judge_mask(pair, 10, "accept", task_id=5)
    assert outcome.follow_up == TaskKind.CHECK_EXHAUSTIVITY
    recorded = dm.record(pair, outcome)
    after = dm.PairFacts(1, dm.Claim.NONE, None, (dm.MaskFacts(10, dm.ACCEPTED, dm.HUMAN),
                                                   dm.MaskFacts(11, dm.REJECTED, dm.AI)))
    back = dm.undo(after, recorded)
    assert back.conflict is None and back.masks == {10: (dm.REJECTED, dm.AI)}
    assert back.pair == dm.PairState(dm.Claim.NEGATIVE, dm.AI, Polarity.NEGATIVE)
    moved = dm.PairFacts(1, dm.Claim.NONE, None, (dm.MaskFacts(10, dm.REJECTED, dm.HUMAN),
                                                   dm.MaskFacts(11, dm.REJECTED, dm.AI)))
    assert dm.undo(moved, recorded).conflict is not None
    assert utcnow() > T0
