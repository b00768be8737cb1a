import numpy as np
import pytest

from engine.db.models import TaskKind
from engine.domain.calibration import calibrate_pairs, calibrate_task
from engine.domain.routing import (
    CHECK_EXHAUSTIVITY,
    CORRECT,
    TASK_KINDS,
    VERIFY_MASK,
    Action,
    KindThresholds,
    MaskItem,
    PairItem,
    RouteDecision,
    Thresholds,
    route_mask,
    route_pair,
)

CAL = Thresholds(mask=KindThresholds(accept=0.95, reject=0.05),
                 exhaustivity=KindThresholds(accept=0.9, reject=0.2))
ACCEPT_ONLY = Thresholds(mask=KindThresholds(accept=0.95), exhaustivity=KindThresholds(accept=0.9))
REJECT_ONLY = Thresholds(mask=KindThresholds(reject=0.05), exhaustivity=KindThresholds(reject=0.2))
NONE = Thresholds()

AA, AR, HU, KH = Action.AUTO_ACCEPT, Action.AUTO_REJECT, Action.HUMAN, Action.KEEP_HUMAN


def test_task_kinds_are_the_database_values():
    assert set(TASK_KINDS) == {k.value for k in TaskKind}
    assert (VERIFY_MASK, CHECK_EXHAUSTIVITY, CORRECT) == (
        TaskKind.VERIFY_MASK.value, TaskKind.CHECK_EXHAUSTIVITY.value, TaskKind.CORRECT.value)


# (p_accept, thresholds, audit, human_decided) → (action, task kind, auto label, audited label, reason parts)
MASK_CASES = [
    ("confident accept", 0.97, CAL, False, False, AA, None, "accept", None,
     ["P(accept)=0.97 ≥ 0.95 accept threshold"]),
    ("accept at the threshold", 0.95, CAL, False, False, AA, None, "accept", None, ["0.95 ≥ 0.95"]),
    ("confident reject", 0.02, CAL, False, False, AR, None, "reject", None,
     ["P(accept)=0.02 ≤ 0.05 reject threshold"]),
    ("reject at the threshold", 0.05, CAL, False, False, AR, None, "reject", None, ["0.05 ≤ 0.05"]),
    ("uncertain", 0.6, CAL, False, False, HU, VERIFY_MASK, None, None,
     ["P(accept)=0.6 between 0.05 reject and 0.95 accept thresholds"]),
    ("just below accept: enough decimals", 0.9499, CAL, False, False, HU, VERIFY_MASK, None, None,
     ["0.9499", "0.95 accept"]),
    ("uncalibrated", 0.99, NONE, False, False, HU, VERIFY_MASK, None, None,
     ["not calibrated", "P(accept)=0.99"]),
    ("accept only, high", 0.99, ACCEPT_ONLY, False, False, AA, None, "accept", None, ["≥ 0.95"]),
    ("accept only, low", 0.01, ACCEPT_ONLY, False, False, HU, VERIFY_MASK, None, None,
     ["< 0.95 accept threshold", "no reject threshold"]),
    ("reject only, low", 0.01, REJECT_ONLY, False, False, AR, None, "reject", None, ["≤ 0.05"]),
    ("reject only, high", 0.99, REJECT_ONLY, False, False, HU, VERIFY_MASK, None, None,
     ["> 0.05 reject threshold", "no accept threshold"]),
    ("audit of an accept", 0.97, CAL, True, False, HU, VERIFY_MASK, None, "accept",
     ["audit sample", "would auto-accept", "P(accept)=0.97 ≥ 0.95"]),
    ("audit of a reject", 0.02, CAL, True, False, HU, VERIFY_MASK, None, "reject",
     ["audit sample", "would auto-reject", "0.02 ≤ 0.05"]),
    ("audit of an uncertain item changes nothing", 0.6, CAL, True, False, HU, VERIFY_MASK, None, None,
     ["between"]),
    ("audit when uncalibrated changes nothing", 0.6, NONE, True, False, HU, VERIFY_MASK, None, None,
     ["not calibrated"]),
    ("human decided, confident AI", 0.99, CAL, False, True, KH, None, None, None,
     ["already decided by a human", "not applied"]),
    ("human decided, audited", 0.01, CAL, True, True, KH, None, None, None, ["already decided"]),
]


@pytest.mark.parametrize(
    ("name", "p", "thresholds", "audit", "human", "action", "kind", "label", "audited", "parts"),
    MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_route_mask(name, p, thresholds, audit, human, action, kind, label, audited, parts):
    item = MaskItem(mask_id=1, pair_id=2, p_accept=p, human_decided=human)
    decision = route_mask(item, thresholds, audit=audit)
    assert (decision.action, decision.task_kind, decision.auto_label, decision.audited_label) == (
        action, kind, label, audited)
    for part in parts:
        assert part in decision.reason
    assert decision.to_human == (action is HU)
    assert decision.is_audit == (audited is not None)


# (p, n_masks, thresholds, audit, human) → (action, kind, label, audited, reason parts)
PAIR_CASES = [
    ("negative without a human", 0.97, 0, CAL, False, False, AA, None, "negative", None,
     ["verified negative", "P(exhaustive)=0.97 ≥ 0.9 accept threshold", "no surviving masks"]),
    ("exhaustive with masks", 0.97, 3, CAL, False, False, AA, None, "exhaustive", None,
     ["exhaustive", "3 accepted masks"]),
    ("one mask", 0.97, 1, CAL, False, False, AA, None, "exhaustive", None, ["1 accepted mask"]),
    ("missing instances, no masks → correct", 0.1, 0, CAL, False, False, HU, CORRECT, None, None,
     ["instances missing", "0.1 ≤ 0.2 reject threshold"]),
    ("missing instances with masks → correct", 0.1, 2, CAL, False, False, HU, CORRECT, None, None,
     ["instances missing", "2 accepted masks"]),
    ("uncertain, no masks", 0.5, 0, CAL, False, False, HU, CHECK_EXHAUSTIVITY, None, None,
     ["between 0.2 reject and 0.9 accept thresholds"]),
    ("uncertain with masks", 0.5, 4, CAL, False, False, HU, CHECK_EXHAUSTIVITY, None, None, ["4 accepted"]),
    ("uncalibrated", 0.99, 0, NONE, False, False, HU, CHECK_EXHAUSTIVITY, None, None, ["not calibrated"]),
    ("accept only, low", 0.1, 2, ACCEPT_ONLY, False, False, HU, CHECK_EXHAUSTIVITY, None, None,
     ["no reject threshold"]),
    ("reject only, high", 0.99, 0, REJECT_ONLY, False, False, HU, CHECK_EXHAUSTIVITY, None, None,
     ["no accept threshold"]),
    ("audit of a negative", 0.97, 0, CAL, True, False, HU, CHECK_EXHAUSTIVITY, None, "negative",
     ["audit sample", "would auto-accept as negative", "0.97 ≥ 0.9"]),
    ("audit of an exhaustive pair", 0.97, 2, CAL, True, False, HU, CHECK_EXHAUSTIVITY, None, "exhaustive",
     ["audit sample", "would auto-accept as exhaustive"]),
    ("audit of a correction changes nothing", 0.1, 2, CAL, True, False, HU, CORRECT, None, None,
     ["instances missing"]),
    ("human decided", 0.99, 0, CAL, True, True, KH, None, None, None, ["already decided by a human"]),
]


@pytest.mark.parametrize(
    ("name", "p", "n_masks", "thresholds", "audit", "human", "action", "kind", "label", "audited", "parts"),
    PAIR_CASES, ids=[c[0] for c in PAIR_CASES])
def test_route_pair(name, p, n_masks, thresholds, audit, human, action, kind, label, audited, parts):
    item = PairItem(pair_id=2, p_accept=p, n_masks=n_masks, human_decided=human)
    decision = route_pair(item, thresholds, audit=audit)
    assert (decision.action, decision.task_kind, decision.auto_label, decision.audited_label) == (
        action, kind, label, audited)
    for part in parts:
        assert part in decision.reason


def test_reasons_carry_presence_and_ai_top_label():
    pair = PairItem(pair_id=1, p_accept=0.97, n_masks=0, presence_score=0.03,
                    probabilities={"accept": 0.96, "reject": 0.04})
    reason = route_pair(pair, CAL).reason
    assert "presence 0.03" in reason and "the AI suggested: accept (96 %)" in reason
    mask = MaskItem(mask_id=1, pair_id=1, p_accept=0.5, probabilities={"accept": 0.3, "whole_image": 0.7})
    assert "the AI suggested: whole_image (70 %)" in route_mask(mask, CAL).reason
    one = route_pair(PairItem(1, 0.97, 1), CAL).reason
    assert "1 accepted mask" in one and "masks" not in one
    decided = MaskItem(1, 1, 0.99, human_decided=True, human_label="reject")
    assert "as reject" in route_mask(decided, CAL).reason


def test_pairs_without_masks_use_the_presence_thresholds_when_set():
    split = Thresholds(mask=CAL.mask, exhaustivity=KindThresholds(accept=0.99, reject=0.2),
                       presence=KindThresholds(accept=0.8, reject=0.1))
    assert split.for_pair(0) == split.presence and split.for_pair(2) == split.exhaustivity
    negative = route_pair(PairItem(1, 0.85, 0), split)
    assert negative.action is AA and negative.auto_label == "negative"
    assert "0.85 ≥ 0.8 accept threshold" in negative.reason and "presence thresholds" in negative.reason
    with_masks = route_pair(PairItem(1, 0.85, 2), split)
    assert with_masks.task_kind == CHECK_EXHAUSTIVITY and "0.99 accept" in with_masks.reason
    assert route_pair(PairItem(1, 0.15, 0), split).task_kind == CHECK_EXHAUSTIVITY
    assert route_pair(PairItem(1, 0.15, 3), split).task_kind == CORRECT
    # without presence thresholds the exhaustivity ones apply to every pair
    assert route_pair(PairItem(1, 0.85, 0), CAL).reason.endswith("no surviving masks")
    uncalibrated_presence = Thresholds(exhaustivity=KindThresholds(accept=0.8), presence=KindThresholds())
    assert route_pair(PairItem(1, 0.99, 0), uncalibrated_presence).task_kind == CHECK_EXHAUSTIVITY
    assert route_pair(PairItem(1, 0.99, 1), uncalibrated_presence).action is AA


def test_human_decisions_are_never_overridden_by_any_threshold():
    for p in np.linspace(0, 1, 21):
        for t in (CAL, NONE, ACCEPT_ONLY, REJECT_ONLY):
            for audit in (False, True):
                assert route_mask(MaskItem(1, 1, float(p), human_decided=True), t, audit=audit).action is KH
                assert route_pair(PairItem(1, float(p), 0, human_decided=True), t, audit=audit).action is KH


def test_invalid_inputs():
    with pytest.raises(ValueError):
        route_mask(MaskItem(1, 1, 1.2), CAL)
    with pytest.raises(ValueError):
        route_mask(MaskItem(1, 1, float("nan")), CAL)
    with pytest.raises(ValueError):
        route_pair(PairItem(1, 0.5, -1), CAL)
    with pytest.raises(ValueError):
        KindThresholds(accept=0.3, reject=0.5)
    with pytest.raises(ValueError):
        KindThresholds(accept=1.5)
    with pytest.raises(ValueError):
        RouteDecision(Action.HUMAN, None, "no kind")
    with pytest.raises(ValueError):
        RouteDecision(Action.AUTO_ACCEPT, None, "no label")
    with pytest.raises(ValueError):
        RouteDecision(Action.AUTO_ACCEPT, VERIFY_MASK, "kind on an auto route", auto_label="accept")


def test_thresholds_from_calibration():
    rng = np.random.default_rng(0)
    s = rng.normal(0, 1.5, 4000)
    y = rng.random(4000) < 1 / (1 + np.exp(-3 * s))
    mv = calibrate_task(s, y, 0.95, task_kind=VERIFY_MASK)
    few = calibrate_task(s[:30], y[:30], 0.95, task_kind=CHECK_EXHAUSTIVITY)
    thresholds = Thresholds.from_calibration(mask=mv, exhaustivity=few)
    assert thresholds.mask == KindThresholds(mv.accept_threshold, mv.reject_threshold)
    assert not thresholds.exhaustivity.calibrated
    assert Thresholds.from_calibration() == Thresholds()
    assert Thresholds.from_calibration(presence=mv).presence == thresholds.mask
    # an uncalibrated EV sends every pair to a human check
    assert route_pair(PairItem(1, 1.0, 0), thresholds).task_kind == CHECK_EXHAUSTIVITY
    top = route_mask(MaskItem(1, 1, mv.calibrator.calibrate(10.0)), thresholds)
    assert top.action is AA


def test_thresholds_from_a_pair_calibration_route_each_population_on_its_own():
    # pairs without masks: 1 = absent; 30 present below 270 absent; pairs with masks: 1 = exhaustive
    presence_s, presence_y = np.arange(300.0), np.arange(300) >= 30
    masks_s, masks_y = np.arange(200.0), np.arange(200) >= 100
    pairs = calibrate_pairs(masks_s, masks_y, presence_s, presence_y, 0.95, max_positive_loss=0.05)
    thresholds = Thresholds.from_calibration(mask=None, pairs=pairs)
    assert thresholds.presence == KindThresholds(pairs.presence.accept_threshold, pairs.presence.reject_threshold)
    assert thresholds.exhaustivity == KindThresholds(pairs.with_masks.accept_threshold,
                                                     pairs.with_masks.reject_threshold)
    top = pairs.presence.calibrator.calibrate(299.0)
    assert route_pair(PairItem(1, top, 0), thresholds).auto_label == "negative"
    low = pairs.with_masks.calibrator.calibrate(0.0)
    assert route_pair(PairItem(1, low, 2), thresholds).task_kind == CORRECT
    with pytest.raises(ValueError):
        Thresholds.from_calibration(exhaustivity=pairs.with_masks, pairs=pairs)
