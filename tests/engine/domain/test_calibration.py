import json
import math

import numpy as np
import pytest

from engine.domain.calibration import (
    CalibrationResult,
    Calibrator,
    PairCalibration,
    ThresholdChoice,
    calibrate_pairs,
    calibrate_task,
    choose_reject_threshold,
    choose_threshold,
    clopper_pearson_upper,
    expected_final_precision,
    final_precision_curve,
    fit_isotonic,
    fit_platt,
    min_sample_size,
    needed_for_target,
    wilson_interval,
)

A_TRUE, B_TRUE = 3.0, -0.5


def synthetic(n: int, seed: int, a: float = A_TRUE, b: float = B_TRUE) -> tuple[np.ndarray, np.ndarray]:
    """Scores s ~ N(0, 1.5²), labels ~ Bernoulli(sigmoid(a·s + b))."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 1.5, size=n)
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(a * s + b)))
    return s, y


# ----------------------------------------------------------------------------- Wilson, sample sizes
def test_wilson_interval_against_hand_computation():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96·sqrt(0.016 + 0.0009604) / 1.38416
    low, high = wilson_interval(8, 10, z=1.96)
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)
    # perfect sample: lower bound n / (n + z²)
    assert wilson_interval(20, 20, z=1.96)[0] == pytest.approx(20 / (20 + 1.96**2))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lows, highs = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert np.all(lows <= highs) and lows[0] == 0.0 and highs[2] == 1.0


@pytest.mark.parametrize(("target", "n"), [(0.95, 73), (0.90, 35), (0.99, 381), (0.80, 16)])
def test_min_sample_size_matches_hand_computation(target, n):
    # n / (n + z²) ≥ target  ⇔  n ≥ target·z² / (1 − target); z² = 3.8415
    assert min_sample_size(target) == n == math.ceil(target * 1.959964**2 / (1 - target))
    assert wilson_interval(n, n)[0] >= target > wilson_interval(n - 1, n - 1)[0]


def test_needed_for_target():
    assert needed_for_target(0, 0.95) == 73
    assert needed_for_target(50, 0.95) == 23
    assert needed_for_target(73, 0.95) == 0
    assert needed_for_target(500, 0.95) == 0
    assert needed_for_target(20, 0.90) == 15
    assert needed_for_target(20, 0.90, min_support=50) == 30
    with pytest.raises(ValueError):
        needed_for_target(0, 1.0)


# ----------------------------------------------------------------------------- calibrators
def test_isotonic_is_monotone_and_within_unit_interval():
    s, y = synthetic(3000, seed=1)
    cal = fit_isotonic(s, y)
    grid = np.linspace(-8, 8, 2001)
    p = cal.calibrate_many(grid)
    assert np.all(np.diff(p) >= 0)
    assert p.min() >= 0.0 and p.max() <= 1.0
    assert p[0] < 0.05 and p[-1] > 0.95
    assert cal.calibrate(0.0) == pytest.approx(float(cal.calibrate_many([0.0])[0]))
    # close to the true curve where the data are dense
    true = 1 / (1 + np.exp(-(A_TRUE * grid + B_TRUE)))
    dense = np.abs(grid) < 2
    assert np.max(np.abs(p[dense] - true[dense])) < 0.15


def test_isotonic_pools_violators_exactly():
    cal = fit_isotonic([1, 2, 3, 4], [0, 1, 0, 1])  # 2 and 3 violate → pooled at 0.5
    assert cal.calibrate_many([1, 2, 2.5, 3, 4]).tolist() == [0.0, 0.5, 0.5, 0.5, 1.0]
    tied = fit_isotonic([1, 1, 2, 2], [0, 1, 1, 1])  # equal scores pool first
    assert tied.calibrate_many([1, 2]).tolist() == [0.5, 1.0]
    assert fit_isotonic([0.3], [1]).calibrate(5.0) == 1.0


def test_platt_recovers_the_generating_curve():
    s, y = synthetic(20_000, seed=2)
    cal = fit_platt(s, y)
    assert cal.method == "platt"
    assert cal.a == pytest.approx(A_TRUE, rel=0.1)
    assert cal.b == pytest.approx(B_TRUE, abs=0.15)
    p = cal.calibrate_many(np.linspace(-5, 5, 101))
    assert np.all(np.diff(p) > 0) and p.min() > 0 and p.max() < 1


def test_platt_stays_finite_on_separable_data():
    cal = fit_platt([0, 1, 2, 3], [0, 0, 1, 1])
    assert math.isfinite(cal.a) and math.isfinite(cal.b) and cal.a > 0
    assert cal.calibrate(0) < 0.5 < cal.calibrate(3)


@pytest.mark.parametrize("fit", [fit_isotonic, fit_platt])
def test_calibrator_round_trips_through_json(fit):
    s, y = synthetic(500, seed=3)
    cal = fit(s, y)
    data = json.loads(json.dumps(cal.to_dict()))
    back = Calibrator.from_dict(data)
    assert back == cal
    grid = np.linspace(-4, 4, 33)
    assert np.array_equal(back.calibrate_many(grid), cal.calibrate_many(grid))


def test_calibrator_rejects_bad_parameters():
    with pytest.raises(ValueError):
        Calibrator("isotonic", x=(1.0, 0.5), y=(0.1, 0.2))
    with pytest.raises(ValueError):
        Calibrator("isotonic", x=(0.0, 1.0), y=(0.6, 0.2))
    with pytest.raises(ValueError):
        Calibrator("platt", a=1.0)
    with pytest.raises(ValueError):
        Calibrator("beta", a=1.0, b=0.0)
    with pytest.raises(ValueError):
        fit_isotonic([], [])
    with pytest.raises(ValueError):
        fit_isotonic([0.1, 0.2], [0, 2])


# ----------------------------------------------------------------------------- thresholds
def test_threshold_meets_the_target_on_held_out_data():
    s, y = synthetic(40_000, seed=4)
    train_s, train_y, test_s, test_y = s[:8000], y[:8000], s[8000:], y[8000:]
    cal = fit_isotonic(train_s, train_y)
    choice = choose_threshold(cal.calibrate_many(train_s), train_y, 0.95)
    assert choice.passed and choice.side == "accept"
    assert choice.ci_low >= 0.95 and choice.precision >= choice.ci_low
    assert 0.2 < choice.coverage < 0.6
    held = cal.calibrate_many(test_s) >= choice.threshold
    assert held.mean() == pytest.approx(choice.coverage, abs=0.03)
    assert test_y[held].mean() >= 0.95 - 0.01

    reject = choose_reject_threshold(cal.calibrate_many(train_s), train_y, 0.95)
    assert reject.passed and reject.side == "reject" and reject.threshold < choice.threshold
    low = cal.calibrate_many(test_s) <= reject.threshold
    assert (~test_y[low]).mean() >= 0.95 - 0.01


def test_threshold_is_the_lowest_passing_one_and_keeps_ties_together():
    # scores 1..200; the top 100 are all positive, below that half are
    scores = np.arange(1, 201, dtype=float)
    labels = np.where(scores > 100, 1, np.arange(200) % 2)
    choice = choose_threshold(scores, labels, 0.9, min_support=1)
    top_k = int(choice.support)
    # the chosen set {score ≥ t} passes, and the set one score lower does not
    assert wilson_interval(labels[scores >= choice.threshold].sum(), top_k)[0] >= 0.9
    below = scores >= choice.threshold - 1
    assert wilson_interval(labels[below].sum(), below.sum())[0] < 0.9
    assert choice.coverage == top_k / 200
    tied = choose_threshold([0.9] * 100 + [0.2] * 100, [1] * 100 + [0] * 100, 0.9)
    assert tied.threshold == 0.9 and tied.support == 100


def test_wilson_refuses_small_samples():
    s, y = synthetic(20, seed=5)
    assert not choose_threshold(s, y, 0.95).passed
    # even 20 perfectly separated verdicts are not enough at 0.95: lower bound 20/23.84 = 0.84
    perfect = choose_threshold(np.arange(20.0), np.ones(20), 0.95, min_support=1)
    assert perfect.threshold is None and perfect.coverage == 0.0 and perfect.support == 0
    assert "53 more" in perfect.reason
    assert choose_threshold(np.arange(73.0), np.ones(73), 0.95, min_support=1).threshold == 0.0


def test_min_support_is_enforced():
    choice = choose_threshold(np.arange(100.0), np.ones(100), 0.9, min_support=150)
    assert not choice.passed


def test_threshold_choice_round_trips():
    choice = choose_threshold(np.arange(100.0), np.ones(100), 0.9)
    assert ThresholdChoice.from_dict(json.loads(json.dumps(choice.to_dict()))) == choice


# ----------------------------------------------------------------------------- per task
def test_calibrate_task_with_enough_verdicts():
    s, y = synthetic(4000, seed=6)
    result = calibrate_task(s, y, 0.95, method="isotonic", verifier_version="mv-1", task_kind="verify_mask")
    assert result.accept_threshold is not None and result.reject_threshold is not None
    assert result.reject_threshold < result.accept_threshold
    assert result.reason is None and result.more_verdicts_needed == 0
    assert result.n == 4000 and result.n_positive + result.n_negative == 4000
    assert result.coverage == pytest.approx(result.accept.coverage + result.reject.coverage)
    assert result.agreement == pytest.approx(np.mean((s >= 0.5) == y))
    back = CalibrationResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result
    platt = calibrate_task(s, y, 0.95, method="platt")
    assert platt.calibrator.method == "platt" and platt.accept_threshold is not None


def test_calibrate_task_with_too_few_verdicts_says_how_many_more():
    s = np.linspace(-1, 1, 40)
    y = s > 0  # 20 positive, 20 negative
    result = calibrate_task(s, y, 0.95)
    assert result.accept_threshold is None and result.reject_threshold is None
    assert result.needed_positive == 53 and result.needed_negative == 53
    assert result.more_verdicts_needed == 106  # 53 more positives at a 50% positive rate
    assert "106 more" in result.reason and "53 more" in result.reason
    assert result.calibrator is not None  # fitted all the same; only the gates stay closed
    empty = calibrate_task([], [], 0.95)
    assert empty.calibrator is None and empty.more_verdicts_needed == 73 and empty.agreement is None


def test_calibrate_task_uses_the_ai_argmax_for_agreement():
    s = np.array([0.9, 0.8, 0.2, 0.1])
    y = np.array([1, 0, 0, 1])
    assert calibrate_task(s, y, 0.9).agreement == 0.5
    assert calibrate_task(s, y, 0.9, ai_labels=[1, 0, 0, 1]).agreement == 1.0


def test_calibrate_task_one_sided():
    # plenty of negatives well separated, few positives: only the reject side can open
    s = np.concatenate([np.linspace(0, 0.3, 300), np.linspace(0.7, 1, 10)])
    y = np.concatenate([np.zeros(300), np.ones(10)])
    result = calibrate_task(s, y, 0.95)
    assert result.accept_threshold is None and result.reject_threshold is not None
    assert result.needed_positive == 63 and result.needed_negative == 0
    assert result.more_verdicts_needed == 0
    assert "63 more" in result.reason


def test_calibrate_task_validates_arguments():
    with pytest.raises(ValueError):
        calibrate_task([0.1], [1], 0.95, method="spline")
    with pytest.raises(ValueError):
        calibrate_task([0.1, 0.2], [1], 0.95)
    with pytest.raises(ValueError):
        calibrate_task([0.1], [1], 1.5)


def test_threshold_bounds_and_the_probability_floor():
    # 98% positives: the set criterion alone would accept everything, even items the model rates low
    rng = np.random.default_rng(7)
    y = rng.random(3000) < 0.98
    s = np.where(y, rng.normal(1.0, 1.0, 3000), rng.normal(-1.0, 1.0, 3000))
    free = choose_threshold(s, y, 0.95, min_threshold=None)
    assert free.coverage == 1.0
    bounded = choose_threshold(s, y, 0.95, min_threshold=0.0)
    assert bounded.threshold >= 0.0 and bounded.coverage < 1.0
    assert choose_threshold(s, y, 0.95, min_threshold=99.0).reason.startswith("no accept threshold: no score")
    assert choose_reject_threshold(-s, ~y, 0.95, max_threshold=0.0).threshold <= 0.0
    result = calibrate_task(s, y, 0.95)  # default floor 0.5 on the calibrated probability
    assert result.accept_threshold >= 0.5
    p = result.calibrator.calibrate_many(s)
    assert result.accept.coverage == pytest.approx(np.mean(p >= result.accept_threshold))
    assert calibrate_task(s, y, 0.95, min_probability=0.0).accept.coverage == 1.0
    with pytest.raises(ValueError):
        calibrate_task(s, y, 0.95, min_probability=1.5)


# ----------------------------------------------------------------------------- final labels per population
def test_expected_final_precision_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 1, 0, 1, 0, 0], bool)  # 5 right, 5 wrong
    auto = np.arange(10) < 3  # the three best, all right
    # people (error 0.1) on the rest: 2 right items accepted at 0.9, 5 wrong ones at 0.1
    assert expected_final_precision(labels, auto, 0.1) == pytest.approx((3 + 0.9 * 2) / (3 + 0.9 * 2 + 0.1 * 5))
    assert expected_final_precision(labels, np.zeros(10, bool), 0.1) == pytest.approx(0.9 * 5 / (0.9 * 5 + 0.5))
    rejected = np.isin(np.arange(10), [3, 4])  # two wrong items auto-rejected leave the people's pile
    assert expected_final_precision(labels, auto, 0.1, rejected) == pytest.approx(4.8 / (3 + 1.8 + 0.3))
    curve = final_precision_curve([0, 3], [0, 3], 5, 10, 0.1)
    assert curve == pytest.approx([0.9, 4.8 / 5.3])
    with pytest.raises(ValueError):
        expected_final_precision(labels, auto, 0.1, auto)
    with pytest.raises(ValueError):
        expected_final_precision(labels, auto, 0.5)


def blocks(*parts: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores rising block by block; each (size, right) block puts its right items lowest, so
    isotonic regression pools the block into one value right / size."""
    labels = np.concatenate([np.r_[np.ones(right), np.zeros(size - right)] for size, right in parts])
    return np.arange(labels.size, dtype=float), labels.astype(bool)


def test_calibrate_task_keeps_the_final_labels_near_all_human():
    # C: 300 items, 180 right (p 0.6); B: 300 items, 296 right (p 0.98667); A: 100 right (p 1)
    s, y = blocks((300, 180), (300, 296), (100, 100))
    free = calibrate_task(s, y, 0.95, human_error=0.05)
    assert free.accept_threshold == pytest.approx(296 / 300)  # A + B: 396/400 right, Wilson ≥ 0.95
    p_all, n_all = 576, 124  # right / wrong items
    all_human = 0.95 * p_all / (0.95 * p_all + 0.05 * n_all)
    assert free.all_human_precision == pytest.approx(all_human)
    # final with A + B automatic: 396 right of 400, people on C accept 0.95·180 right and 0.05·120 wrong
    assert free.final_precision == pytest.approx((396 + 171) / (400 + 171 + 6))
    assert free.max_final_drop is None and CalibrationResult.from_dict(free.to_dict()) == free
    # at most one point below all-human, judged with the Wilson lower bound of the automatic set:
    # A + B falls short, A alone keeps it
    low_ab = wilson_interval(396, 400)[0]
    assert (low_ab * 400 + 171) / (400 + 171 + 6) < all_human - 0.01
    low_a = wilson_interval(100, 100)[0]
    assert (low_a * 100 + 0.95 * 476) / (100 + 0.95 * 476 + 6.2) >= all_human - 0.01
    held = calibrate_task(s, y, 0.95, human_error=0.05, max_final_drop=0.01)
    assert held.accept_threshold == 1.0 and held.accept.support == 100
    assert "estimated final precision" in held.accept.reason
    assert held.final_precision == pytest.approx((100 + 0.95 * 476) / (100 + 0.95 * 476 + 6.2))
    assert calibrate_task(s, y, 0.95, human_error=0.05, max_final_drop=0.05).accept_threshold == free.accept_threshold
    nothing = calibrate_task(s, y, 0.95, human_error=0.05, max_final_drop=0.0)
    assert nothing.accept_threshold is None and "final precision" in nothing.accept.reason
    with pytest.raises(ValueError):
        calibrate_task(s, y, 0.95, max_final_drop=0.01)  # a drop needs the annotators' error rate
    with pytest.raises(ValueError):
        calibrate_task(s, y, 0.95, human_error=0.6)


# ----------------------------------------------------------------------------- pairs: the positive-pair budget
# Presence (pairs without masks, 1 = absent): P0 100 items half present (p 0.5), P1 1 present in 100
# (p 0.99), P2 100 absent (p 1). With masks (1 = exhaustive): W0 100 items 60 incomplete (p 0.4), W1
# 2 incomplete in 200 (p 0.99). Positive pairs: all 300 with masks + 51 present = 351.
PRESENCE = blocks((100, 50), (100, 99), (100, 100))
WITH_MASKS = blocks((100, 40), (200, 198))


def pairs(budget, **kwargs):
    return calibrate_pairs(WITH_MASKS[0], WITH_MASKS[1], PRESENCE[0], PRESENCE[1], 0.95, max_positive_loss=budget,
                           **kwargs)


def test_calibrate_pairs_without_a_budget_keeps_each_scopes_thresholds():
    free = pairs(None)
    assert free.presence.accept_threshold == pytest.approx(0.99)  # P1 + P2: 199/200
    assert free.with_masks.accept_threshold == pytest.approx(0.99)  # W1: 198/200, Wilson 0.964
    assert free.positives == 351
    # lost: 1 present pair made negative + 2 incomplete made exhaustive; conformal (3 + 1) / (351 + 1)
    assert free.positive_loss == pytest.approx(4 / 352) and free.unconstrained_loss == free.positive_loss
    assert not free.budget_applied and free.reason is None
    assert pairs(0.02).positive_loss == pytest.approx(4 / 352) and not pairs(0.02).budget_applied


def test_calibrate_pairs_spends_the_budget_where_it_saves_most():
    # 1%: 0.01 · 352 − 1 = 2.52 lost pairs allowed. P1 + P2 with W1 would lose 3; P2 with W1 loses 2
    # and auto-accepts 300; P1 + P2 alone loses 1 and auto-accepts 200.
    one = pairs(0.01)
    assert one.budget_applied and "raised" in one.reason
    assert one.presence.accept_threshold == 1.0 and one.presence.accept.support == 100
    assert one.with_masks.accept_threshold == pytest.approx(0.99)
    assert one.positive_loss == pytest.approx(3 / 352) and one.unconstrained_loss == pytest.approx(4 / 352)
    assert "positive-pair budget" in one.presence.accept.reason
    # an auto-negative worth three times an auto-exhaustive: P1 + P2 (600) beats P2 + W1 (300 + 200)
    weighted = pairs(0.01, gains=(1.0, 3.0))
    assert weighted.presence.accept_threshold == pytest.approx(0.99) and weighted.with_masks.accept_threshold is None
    assert "positive-pair budget" in weighted.with_masks.accept.reason
    assert weighted.positive_loss == pytest.approx(2 / 352)
    # 0.5%: 0.76 allowed, nothing may be lost: P2 only
    half = pairs(0.005)
    assert half.presence.accept_threshold == 1.0 and half.with_masks.accept_threshold is None
    assert half.positive_loss == pytest.approx(1 / 352)
    # below 1 / 352 no auto-accept can be vouched for: none at all, nothing lost
    none = pairs(0.002)
    assert none.presence.accept_threshold is None and none.with_masks.accept_threshold is None
    assert none.positive_loss == 0.0
    # reject sides and calibrators are the scopes' own
    assert one.presence.calibrator == pairs(None).presence.calibrator
    assert PairCalibration.from_dict(json.loads(json.dumps(one.to_dict()))) == one


def test_calibrate_pairs_counts_who_is_present():
    # a person's "not present" on a pair with masks: not a positive pair, so no loss when made exhaustive
    present = np.ones(WITH_MASKS[0].size, bool)
    present[-2:] = False  # the two wrong ones in W1
    free = pairs(None, with_masks_present=present)
    assert free.positives == 349 and free.positive_loss == pytest.approx(2 / 350)
    assert pairs(0.01, with_masks_present=present).with_masks.accept_threshold == pytest.approx(0.99)
    # weights: a stratified sample with pairs without masks at a tenth of their rate
    heavy = pairs(None, weights=(1.0, 10.0))
    assert heavy.positives == 300 + 510 and heavy.positive_loss == pytest.approx((2 + 10 + 10) / (810 + 10))


def test_calibrate_pairs_edge_cases():
    # no positive pair seen: no loss can be vouched for, so no auto-accept under a budget
    s = np.arange(200.0)
    absent = np.ones(200, bool)
    blind = calibrate_pairs([], [], s, absent, 0.95, max_positive_loss=0.05)
    assert blind.positives == 0 and blind.presence.accept_threshold is None and blind.positive_loss == 0.0
    assert calibrate_pairs([], [], s, absent, 0.95).presence.accept_threshold is None  # one class only
    for bad in ({"max_positive_loss": 1.0}, {"weights": (1.0, 0.0)}, {"gains": (1.0,)}):
        with pytest.raises(ValueError):
            calibrate_pairs([], [], [], [], 0.95, **bad)


def test_clopper_pearson_upper_by_hand():
    assert clopper_pearson_upper(0, 100, 0.95) == pytest.approx(1 - 0.05 ** (1 / 100))  # 0.0295
    # 1 of 100: P(Binomial(100, u) ≤ 1) = 0.05 at u ≈ 0.0466 (the "4.74 / n" rule)
    u = clopper_pearson_upper(1, 100, 0.95)
    assert (1 - u) ** 100 + 100 * u * (1 - u) ** 99 == pytest.approx(0.05, abs=1e-9)
    assert u == pytest.approx(0.0466, abs=1e-3)
    assert clopper_pearson_upper(5, 5) == 1.0 and clopper_pearson_upper(0, 0) == 1.0
    with pytest.raises(ValueError):
        clopper_pearson_upper(3, 2)


def test_calibrate_pairs_can_hold_the_budget_with_confidence():
    # 351 positive pairs: at 90% a 1% budget allows no lost one (0 → 0.65%, 1 → 1.1%): P2 only
    sure = pairs(0.01, loss_confidence=0.9)
    assert sure.presence.accept_threshold == 1.0 and sure.with_masks.accept_threshold is None
    assert sure.positive_loss == pytest.approx(1 - 0.1 ** (1 / 351))
    assert clopper_pearson_upper(1, 351, 0.9) > 0.01 and "confidence 0.9" in sure.reason
    assert sure.unconstrained_loss == pytest.approx(clopper_pearson_upper(3, 351, 0.9))
    assert PairCalibration.from_dict(json.loads(json.dumps(sure.to_dict()))) == sure
    # a loose budget holds even at 90%
    assert not pairs(0.05, loss_confidence=0.9).budget_applied
    with pytest.raises(ValueError):
        pairs(0.01, loss_confidence=1.0)


# ----------------------------------------------------------------------------- pairs: the positives' final labels
# As above, with masks plus R: 100 incomplete pairs (p 0) that the reject side sends straight to
# correction. Positive pairs: 400 with masks (238 complete) + 51 present without masks = 451.
REJECTABLE = blocks((100, 0), (100, 40), (200, 198))


def test_calibrate_pairs_checks_the_positive_pairs_final_labels():
    e = 0.05
    kw = {"human_error": e, "positive_final_drop": 0.004}
    credited = calibrate_pairs(REJECTABLE[0], REJECTABLE[1], PRESENCE[0], PRESENCE[1], 0.95, **kw)
    reject = credited.with_masks.reject
    assert credited.with_masks.reject_threshold == 0.0 and reject.support == 100
    low = reject.ci_low  # 100/100 incomplete: Wilson 100 / (100 + 1.96²)
    assert low == pytest.approx(100 / (100 + 1.959963984540054 ** 2))
    # straight to correction: right with 0.95 instead of 0.9025 (check, then correction) per incomplete
    # pair, 0.0475 less per complete one; counted at the Wilson bound
    credit = e * (1 - e) * (low * 100 - (100 - low * 100))
    assert credited.reject_credit == pytest.approx(credit / 452)
    assert credited.loss_budget == pytest.approx((0.004 + credit / 452) / (1 - e) ** 2)  # 1.5%
    # the scopes' own accepts lose 3 of 451: (3 + 1) / 452 fits, nothing raised
    assert not credited.budget_applied and credited.positive_loss == pytest.approx(4 / 452)
    assert credited.presence.accept_threshold == pytest.approx(0.99)
    assert credited.with_masks.accept_threshold == pytest.approx(0.99)
    # final labels of the positive pairs: all-human 238 complete at 1 − e², 213 missing instances at (1 − e)²;
    # the engine: W1's 198 complete right and 2 incomplete lost, R at 1 − e, P1's present pair lost
    assert credited.positive_all_human == pytest.approx((238 * (1 - e * e) + 213 * (1 - e) ** 2) / 451)
    engine = 198 + 100 * (1 - e) + 40 * (1 - e * e) + 60 * (1 - e) ** 2 + 50 * (1 - e) ** 2
    assert credited.positive_final == pytest.approx(engine / 451)
    assert PairCalibration.from_dict(json.loads(json.dumps(credited.to_dict()))) == credited
    # without the reject side the same drop allows (0.004 / 0.9025)·352 − 1 = 0.56 lost pairs: P2 only
    plain = calibrate_pairs(WITH_MASKS[0], WITH_MASKS[1], PRESENCE[0], PRESENCE[1], 0.95, **kw)
    assert plain.reject_credit == 0.0 and plain.loss_budget == pytest.approx(0.004 / (1 - e) ** 2)
    assert plain.presence.accept_threshold == 1.0 and plain.with_masks.accept_threshold is None
    assert plain.budget_applied and "final labels at most 0.004 below all-human" in plain.reason
    # with a loss budget as well, the smaller one holds
    both = calibrate_pairs(REJECTABLE[0], REJECTABLE[1], PRESENCE[0], PRESENCE[1], 0.95, max_positive_loss=0.005,
                           **kw)
    assert both.loss_budget == 0.005 and both.budget_applied
    with pytest.raises(ValueError):
        calibrate_pairs(REJECTABLE[0], REJECTABLE[1], PRESENCE[0], PRESENCE[1], 0.95, positive_final_drop=0.01)
