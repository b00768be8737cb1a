"""The decision model: what each judgement may do in each state (engine/domain/decisions.py)."""

from __future__ import annotations

import pytest

from engine.domain import decisions as dm
from engine.domain.decisions import (
    ACCEPTED,
    AI,
    CANDIDATE,
    CHECK_EXHAUSTIVITY,
    CORRECT,
    HUMAN,
    NEGATIVE,
    POSITIVE,
    REJECTED,
    UNKNOWN,
    Claim,
    Decision,
    Level,
    MaskFacts,
    PairFacts,
)

B_NOT_PRESENT = Decision(task_id=20, level=Level.PAIR, label="not_present", verdict_id=7, user="bob")
CORRECTED = Decision(task_id=30, level=Level.CORRECTION, label="corrected", verdict_id=8, user="cy")
VERIFIED = Decision(task_id=10, level=Level.MASK, label="accept", verdict_id=5, user="ann")


def pair(claim=Claim.NONE, by=None, *masks, decision=None):  # type: ignore[no-untyped-def]
    return PairFacts(1, claim, by, tuple(masks), decision)


def cand(i):  # type: ignore[no-untyped-def]
    return MaskFacts(i, CANDIDATE)


# ----------------------------------------------------------------------------- derived state
@pytest.mark.parametrize(("is_exhaustive", "polarity", "decided_by", "claim"), [
    (None, UNKNOWN, None, Claim.NONE), (True, POSITIVE, None, Claim.NONE), (False, POSITIVE, HUMAN, Claim.MISSING),
    (True, POSITIVE, AI, Claim.EXHAUSTIVE), (True, UNKNOWN, HUMAN, Claim.EXHAUSTIVE),
    (True, NEGATIVE, HUMAN, Claim.NEGATIVE)])
def test_claim_read_from_the_columns(is_exhaustive, polarity, decided_by, claim):  # type: ignore[no-untyped-def]
    assert dm.claim_of(is_exhaustive, polarity, decided_by) is claim


def test_polarity_is_derived_from_claim_and_masks():
    assert dm.polarity_of(Claim.NEGATIVE, [CANDIDATE]) == NEGATIVE
    assert dm.polarity_of(Claim.NONE, [REJECTED, ACCEPTED]) == POSITIVE
    assert dm.polarity_of(Claim.MISSING, []) == POSITIVE
    assert dm.polarity_of(Claim.EXHAUSTIVE, [CANDIDATE, REJECTED]) == UNKNOWN  # waits for its masks
    assert dm.polarity_of(Claim.NONE, []) == UNKNOWN


# ----------------------------------------------------------------------------- mask verdicts
def test_accepting_a_mask_makes_the_pair_positive():
    out = dm.judge_mask(pair(Claim.NONE, None, cand(1), cand(2)), 1, "accept", task_id=10)
    assert out.applied and out.masks == {1: (ACCEPTED, HUMAN)}
    assert out.pair == dm.PairState(Claim.NONE, None, POSITIVE) and out.follow_up is None


def test_a_late_accept_on_a_pair_a_person_judged_absent_conflicts():
    """Case 1 of issue 14: the verdict names the decision it conflicts with and changes nothing."""
    settled = pair(Claim.NEGATIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN, B_NOT_PRESENT), decision=B_NOT_PRESENT)
    out = dm.judge_mask(settled, 1, "accept", task_id=10)
    assert not out.applied and out.masks == {} and out.pair is None
    assert "task 20" in out.conflict.message and "not_present" in out.conflict.message
    assert out.conflict.to_dict()["task_id"] == 20 and out.conflict.to_dict()["verdict_id"] == 7


def test_a_late_reject_that_agrees_with_the_settled_state_changes_nothing_and_is_no_conflict():
    settled = pair(Claim.NEGATIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN, B_NOT_PRESENT), decision=B_NOT_PRESENT)
    out = dm.judge_mask(settled, 1, "reject", task_id=10)
    assert out.applied and out.masks == {} and out.pair is None


def test_accepting_a_new_candidate_on_a_human_negative_conflicts():
    out = dm.judge_mask(pair(Claim.NEGATIVE, HUMAN, cand(3), decision=B_NOT_PRESENT), 3, "accept", task_id=11)
    assert out.conflict is not None and out.conflict.decision == B_NOT_PRESENT


def test_a_person_accepting_a_mask_on_an_ai_negative_reopens_the_pair():
    out = dm.judge_mask(pair(Claim.NEGATIVE, AI, MaskFacts(1, REJECTED, AI)), 1, "accept", task_id=10)
    assert out.masks == {1: (ACCEPTED, HUMAN)}
    assert out.pair == dm.PairState(Claim.NONE, None, POSITIVE) and out.follow_up == CHECK_EXHAUSTIVITY


def test_a_mask_decided_by_a_correction_cannot_be_flipped_by_another_task():
    corrected = pair(Claim.EXHAUSTIVE, HUMAN, MaskFacts(1, ACCEPTED, HUMAN, CORRECTED), decision=CORRECTED)
    assert dm.judge_mask(corrected, 1, "reject", task_id=10).conflict is not None
    assert dm.judge_mask(corrected, 1, "accept", task_id=10).applied


def test_the_same_task_may_decide_again_but_another_task_may_not():
    decided = pair(Claim.NONE, None, MaskFacts(1, ACCEPTED, HUMAN, VERIFIED))
    again = dm.judge_mask(decided, 1, "reject", task_id=10, redecide=True)
    assert again.applied and again.masks == {1: (REJECTED, HUMAN)} and again.pair.polarity == UNKNOWN
    assert dm.judge_mask(decided, 1, "reject", task_id=99, redecide=True).conflict is not None
    assert dm.judge_mask(decided, 1, "reject", task_id=10).conflict is not None  # not a re-decision


def test_a_person_overrides_the_ai_on_a_mask():
    out = dm.judge_mask(pair(Claim.NONE, None, MaskFacts(1, ACCEPTED, AI)), 1, "ungroundable", task_id=10)
    assert out.masks == {1: (REJECTED, HUMAN)} and out.pair.polarity == UNKNOWN


# --------------------------------------------------------------------- complete before masks
def test_complete_with_undecided_masks_records_exhaustivity_only():
    """Case 2 of issue 14: the pair waits for its masks instead of becoming positive."""
    out = dm.judge_pair(pair(Claim.NONE, None, cand(1), cand(2)), "complete", task_id=40)
    assert out.pair == dm.PairState(Claim.EXHAUSTIVE, HUMAN, UNKNOWN) and out.masks == {}


def test_an_exhaustive_claim_whose_masks_all_end_rejected_is_void_and_asked_again():
    waiting = pair(Claim.EXHAUSTIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN), cand(2))
    out = dm.judge_mask(waiting, 2, "reject", task_id=12)
    assert out.pair == dm.PairState(Claim.NONE, None, UNKNOWN)
    assert out.follow_up == CHECK_EXHAUSTIVITY and "rejected" in out.follow_up_reason


def test_an_exhaustive_claim_becomes_positive_once_a_mask_is_accepted():
    waiting = pair(Claim.EXHAUSTIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN), cand(2))
    out = dm.judge_mask(waiting, 2, "accept", task_id=12)
    assert out.pair == dm.PairState(Claim.EXHAUSTIVE, HUMAN, POSITIVE)


def test_the_ai_rejecting_the_last_mask_voids_an_exhaustive_claim_too():
    out = dm.route_mask(pair(Claim.EXHAUSTIVE, AI, cand(1)), 1, "reject")
    assert out.pair == dm.PairState(Claim.NONE, None, UNKNOWN) and out.follow_up == CHECK_EXHAUSTIVITY


# ----------------------------------------------------------------------------- pair verdicts
def test_not_present_rejects_every_mask_and_settles():
    p = pair(Claim.NONE, None, MaskFacts(1, ACCEPTED, HUMAN, VERIFIED), cand(2), MaskFacts(3, REJECTED, AI))
    out = dm.judge_pair(p, "not_present", task_id=20)
    assert out.masks == {1: (REJECTED, HUMAN), 2: (REJECTED, HUMAN)}  # stands over the mask verdict it saw
    assert out.pair == dm.PairState(Claim.NEGATIVE, HUMAN, NEGATIVE) and out.settles


def test_complete_with_no_surviving_mask_is_a_negative():
    out = dm.judge_pair(pair(Claim.NONE, None, MaskFacts(1, REJECTED, AI)), "complete", task_id=20)
    assert out.pair == dm.PairState(Claim.NEGATIVE, HUMAN, NEGATIVE)


def test_missing_asks_for_a_correction():
    out = dm.judge_pair(pair(Claim.EXHAUSTIVE, AI, MaskFacts(1, ACCEPTED, AI)), "missing", task_id=21)
    assert out.pair == dm.PairState(Claim.MISSING, HUMAN, POSITIVE)
    assert out.follow_up == CORRECT and "task 21" in out.follow_up_reason


@pytest.mark.parametrize(("claim", "decision", "label", "conflicts"), [
    (Claim.NEGATIVE, B_NOT_PRESENT, "complete", False),  # no surviving mask: complete = absent, agrees
    (Claim.NEGATIVE, B_NOT_PRESENT, "missing", True),
    (Claim.MISSING, Decision(22, Level.PAIR, "missing"), "complete", True),
    (Claim.EXHAUSTIVE, CORRECTED, "not_present", True),  # a correction stands over an exhaustivity verdict
])
def test_pair_verdicts_against_a_person_s_claim(claim, decision, label, conflicts):  # type: ignore[no-untyped-def]
    masks = (MaskFacts(1, REJECTED, HUMAN),) if claim == Claim.NEGATIVE else (MaskFacts(1, ACCEPTED, HUMAN),)
    out = dm.judge_pair(pair(claim, HUMAN, *masks, decision=decision), label, task_id=50)
    assert (out.conflict is not None) is conflicts


def test_a_person_overrides_the_ai_s_claim():
    out = dm.judge_pair(pair(Claim.NEGATIVE, AI, MaskFacts(1, REJECTED, AI)), "missing", task_id=23)
    assert out.applied and out.pair.claim == Claim.MISSING


# ------------------------------------------------------------------------------- corrections
def test_a_correction_keeps_and_draws_exactly_the_given_masks():
    p = pair(Claim.MISSING, HUMAN, cand(1), MaskFacts(2, ACCEPTED, AI), MaskFacts(3, REJECTED, AI),
             decision=Decision(21, Level.PAIR, "missing"))
    out = dm.correct(p, [1, 3], n_new=2, task_id=60)
    assert out.masks == {1: (ACCEPTED, HUMAN), 2: (REJECTED, HUMAN), 3: (ACCEPTED, HUMAN)}
    assert out.new_masks == (ACCEPTED, HUMAN) and out.settles
    assert out.pair == dm.PairState(Claim.EXHAUSTIVE, HUMAN, POSITIVE)


def test_a_correction_with_no_mask_is_a_negative():
    out = dm.correct(pair(Claim.MISSING, HUMAN, cand(1)), [], n_new=0, task_id=60)
    assert out.pair == dm.PairState(Claim.NEGATIVE, HUMAN, NEGATIVE) and out.masks == {1: (REJECTED, HUMAN)}


def test_a_second_correction_by_another_task_conflicts_unless_both_say_absent():
    corrected = pair(Claim.EXHAUSTIVE, HUMAN, MaskFacts(1, ACCEPTED, HUMAN), decision=CORRECTED)
    assert dm.correct(corrected, [], n_new=1, task_id=61).conflict is not None
    assert dm.correct(corrected, [1], n_new=0, task_id=30, redecide=True).applied  # the same task, edited
    absent = pair(Claim.NEGATIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN), decision=CORRECTED)
    assert dm.correct(absent, [], n_new=0, task_id=61).applied


def test_a_correction_stands_over_an_exhaustivity_verdict():
    out = dm.correct(pair(Claim.NEGATIVE, HUMAN, MaskFacts(1, REJECTED, HUMAN), decision=B_NOT_PRESENT), [1], 0,
                     task_id=60)
    assert out.applied and out.pair.claim == Claim.EXHAUSTIVE


def test_a_correction_may_only_keep_masks_of_its_pair():
    with pytest.raises(dm.DecisionError):
        dm.correct(pair(Claim.NONE, None, cand(1)), [9], n_new=0, task_id=60)


# ------------------------------------------------------------------------------- the router
def test_the_router_never_changes_what_a_person_decided():
    assert dm.route_mask(pair(Claim.NONE, None, MaskFacts(1, REJECTED, HUMAN)), 1, "accept") == dm.Outcome()
    assert dm.route_pair(pair(Claim.MISSING, HUMAN, cand(1)), "exhaustive") == dm.Outcome()
    assert dm.route_mask(pair(Claim.NEGATIVE, HUMAN, cand(2), decision=B_NOT_PRESENT), 2, "accept") == dm.Outcome()


def test_the_router_decides_and_may_revise_its_own_decisions():
    out = dm.route_mask(pair(Claim.NONE, None, cand(1)), 1, "accept")
    assert out.masks == {1: (ACCEPTED, AI)} and out.pair.polarity == POSITIVE
    revised = dm.route_mask(pair(Claim.NEGATIVE, AI, MaskFacts(1, REJECTED, AI)), 1, "accept")
    assert revised.pair == dm.PairState(Claim.NONE, None, POSITIVE) and revised.follow_up is None
    assert dm.route_pair(pair(Claim.NONE, None, MaskFacts(1, ACCEPTED, AI)), "exhaustive").pair == \
        dm.PairState(Claim.EXHAUSTIVE, AI, POSITIVE)
    assert dm.route_pair(pair(Claim.NONE, None), "negative").pair == dm.PairState(Claim.NEGATIVE, AI, NEGATIVE)
    assert dm.route_pair(pair(Claim.NONE, None, MaskFacts(1, ACCEPTED, AI)), "negative") == dm.Outcome()


def test_unknown_labels_are_programming_errors():
    with pytest.raises(dm.DecisionError):
        dm.judge_mask(pair(Claim.NONE, None, cand(1)), 1, "maybe", task_id=1)
    with pytest.raises(dm.DecisionError):
        dm.judge_pair(pair(), "accept", task_id=1)
    with pytest.raises(dm.DecisionError):
        dm.judge_mask(pair(Claim.NONE, None, cand(1)), 2, "accept", task_id=1)
