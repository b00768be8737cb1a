"""pmF1, IL_MCC and cgF1 with the official evaluator's conventions (sam3/eval/cgf1_eval.py),
each computed by hand. The same numbers against the official module itself:
tests/engine/services/test_saco_oracle.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from engine.domain.metrics import THRESHOLDS, PairMatch, mask_ious, match_pair, mcc, quality


def block(r0: int, r1: int, c0: int, c1: int, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def pair(gt: list[np.ndarray], pred: list[np.ndarray], scores: list[float],
         crowd: list[bool] | None = None) -> PairMatch:
    return match_pair(mask_ious(pred, gt), scores, crowd)


def smoothed_f1(tp: int, fp: int, fn: int) -> float:
    """The evaluator's smoothed F1, written out: P = TP/(TP+FP+1e-4), R = TP/(TP+FN+1e-4),
    F1 = 2PR/(P+R+1e-4)."""
    p = tp / (tp + fp + 1e-4)
    r = tp / (tp + fn + 1e-4)
    return 2 * p * r / (p + r + 1e-4)


def test_thresholds_are_cocoevals_linspace():
    assert [round(t, 2) for t in THRESHOLDS] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert THRESHOLDS[8] == 0.8999999999999999  # np.linspace's value, one ulp under 0.9
    assert THRESHOLDS[5] == 0.75


def test_mask_iou_by_hand_predictions_are_rows():
    gt = block(0, 2, 0, 5)  # 10 pixels
    pred = block(0, 2, 0, 4)  # 8 pixels, all inside
    assert mask_ious([pred, np.zeros((10, 10), bool)], [gt]).tolist() == [[0.8], [0.0]]


def test_smoothing_keeps_a_perfect_proposer_under_one():
    masks = [block(0, 3, 0, 3), block(5, 9, 5, 9)]
    result = quality([pair(masks, [m.copy() for m in masks], [0.9, 0.8]),
                      pair([block(0, 1, 0, 1)], [block(0, 1, 0, 1)], [1.0]),
                      pair([], [], [])])  # a negative pair, nothing predicted
    # TP 3, FP 0, FN 0 at every τ: P = R = 3/3.0001, F1 = 2PR/(P+R+1e-4)
    p = 3 / 3.0001
    f1 = 2 * p * p / (2 * p + 1e-4)
    assert f1 == pytest.approx(0.99991668, abs=1e-8)
    assert all(v == pytest.approx(f1, abs=1e-15) for v in result.pm_f1_by_threshold.values())
    assert result.pm_f1 == pytest.approx(f1, abs=1e-15) and result.pm_f1 < 1
    # image level TP 2, TN 1: (2·1 − 0·0) / (√(2·2·1·1) + 1e-6)
    assert result.il_counts == {"tp": 2, "fp": 0, "fn": 0, "tn": 1}
    assert result.il_mcc == pytest.approx(2 / (2 + 1e-6), abs=1e-15) and result.il_mcc < 1
    assert result.cg_f1 == pytest.approx(f1 * 2 / (2 + 1e-6), abs=1e-15)


def test_mcc_with_an_empty_margin_is_zero():
    # every pair positive and found: TN + FP = 0, so the product under the root is 0 → 0 / 1e-6
    result = quality([pair([block(0, 3, 0, 3)], [block(0, 3, 0, 3)], [0.9])])
    assert result.il_counts == {"tp": 1, "fp": 0, "fn": 0, "tn": 0}
    assert result.il_mcc == 0.0 and result.cg_f1 == 0.0
    assert result.pm_f1 == pytest.approx(smoothed_f1(1, 0, 0), abs=1e-15)
    # nothing wrong among negatives only: still 0
    assert mcc(0, 0, 0, 5) == 0.0


def test_mcc_by_hand():
    assert mcc(6, 2, 1, 3) == pytest.approx((6 * 3 - 2 * 1) / (np.sqrt(8 * 7 * 5 * 4) + 1e-6), abs=1e-15)
    assert mcc(1, 0, 0, 1) == pytest.approx(1 / (1 + 1e-6), abs=1e-15)
    assert mcc(0, 1, 1, 0) == pytest.approx(-1 / (1 + 1e-6), abs=1e-15)


def test_no_positive_pair_gives_pmf1_zero():
    result = quality([pair([], [], []), pair([], [block(0, 2, 0, 2)], [0.5])])
    # TP 0 → P = R = 0 → F1 = 0 / 1e-4 = 0 (not undefined)
    assert result.positive_pairs == 0
    assert result.pm_f1 == 0.0 and result.cg_f1 == 0.0
    # image level FP 1, TN 1: TP + FN = 0 → 0
    assert result.il_counts == {"tp": 0, "fp": 1, "fn": 0, "tn": 1} and result.il_mcc == 0.0
    # the negative pair's prediction is a FP in the plain counts, not in the positive-micro ones
    assert result.counts["fp"] == [1] * 10 and result.counts["pm_fp"] == [0] * 10


def test_empty_scored_set_is_refused():
    with pytest.raises(ValueError, match="nothing to score"):
        quality([])


def test_scores_under_one_half_are_dropped():
    gt = block(0, 3, 0, 3)
    kept = pair([gt], [gt.copy(), block(5, 6, 5, 6)], [0.5, 0.4999])
    assert (kept.n_gt, kept.n_pred, kept.matched_ious) == (1, 1, (1.0,))
    dropped = pair([gt], [gt.copy()], [0.4999])  # its only prediction is dropped: a miss
    assert (dropped.n_pred, dropped.matched_ious) == (0, ())
    result = quality([dropped, pair([], [block(0, 1, 0, 1)], [0.3])])
    assert result.il_counts == {"tp": 0, "fp": 0, "fn": 1, "tn": 1}
    assert result.counts["fn"] == [1] * 10 and result.counts["fp"] == [0] * 10


def test_false_positives_of_negative_pairs_stay_out_of_pmf1():
    gt = block(0, 3, 0, 3)
    result = quality([pair([gt], [gt.copy()], [0.9]),
                      pair([], [block(0, 1, 0, 1), block(4, 5, 4, 5)], [0.9, 0.8]),
                      pair([], [], [])])
    assert result.counts["fp"] == [2] * 10 and result.counts["pm_fp"] == [0] * 10
    assert result.pm_f1 == pytest.approx(smoothed_f1(1, 0, 0), abs=1e-15)
    # image level TP 1, FP 1, TN 1: (1·1 − 1·0) / (√(2·1·2·1) + 1e-6)
    assert result.il_counts == {"tp": 1, "fp": 1, "fn": 0, "tn": 1}
    assert result.il_mcc == pytest.approx(1 / (2 + 1e-6), abs=1e-15)


def test_partial_matches_and_misses_by_threshold():
    gt0, gt1 = block(0, 1, 0, 10), block(5, 10, 5, 10)  # 10 and 25 pixels
    pred0 = block(0, 1, 0, 9)  # IoU 9/10 = 0.9 with gt0
    pred1 = gt1.copy()
    pred1[5, 5:10] = False
    pred1[6, 5:7] = False  # 18 of gt1's 25 pixels: IoU 0.72
    found = pair([gt0, gt1], [pred0, pred1], [0.9, 0.6])
    assert sorted(found.matched_ious) == [0.72, 0.9]
    missed = pair([block(2, 4, 2, 4)], [], [])  # positive, nothing predicted: FN 1
    result = quality([found, missed, pair([], [], [])])
    # τ 0.50–0.70: TP 2, FP 0, FN 1; τ 0.75–0.90 (0.9 ≥ 0.8999999999999999): TP 1, FP 1, FN 2;
    # τ 0.95: TP 0, FP 2, FN 3
    expected = [smoothed_f1(2, 0, 1)] * 5 + [smoothed_f1(1, 1, 2)] * 4 + [0.0]
    assert list(result.pm_f1_by_threshold.values()) == pytest.approx(expected, abs=1e-15)
    assert result.counts["tp"] == [2] * 5 + [1] * 4 + [0]
    assert result.pm_f1 == pytest.approx(sum(expected) / 10, abs=1e-15)
    # image level TP 1, FN 1, TN 1: (1·1 − 0·1) / (√(1·2·1·2) + 1e-6)
    assert result.il_counts == {"tp": 1, "fp": 0, "fn": 1, "tn": 1}
    assert result.il_mcc == pytest.approx(1 / (2 + 1e-6), abs=1e-15)
    assert result.cg_f1 == pytest.approx(sum(expected) / 10 / (2 + 1e-6), abs=1e-15)


def test_iou_equal_to_a_threshold_is_a_hit():
    gt = block(0, 1, 0, 4)
    pred = block(0, 1, 0, 3)  # IoU 3/4
    result = quality([pair([gt], [pred], [0.9])])
    assert result.counts["tp"] == [1] * 6 + [0] * 4  # τ = 0.75 counts, 0.80 does not


def test_crowd_ground_truth_is_ignored():
    crowd, person = block(0, 5, 0, 5), block(6, 8, 6, 8)
    match = pair([crowd, person], [person.copy(), crowd.copy()], [0.9, 0.9], crowd=[True, False])
    # the crowd mask is dropped: one instance, two predictions, the one on the crowd is a FP
    assert (match.n_gt, match.n_pred, match.matched_ious) == (1, 2, (1.0,))
    only_crowd = pair([crowd], [], [], crowd=[True])
    assert (only_crowd.n_gt, only_crowd.positive) == (0, False)  # nothing left to find: a TN
    assert quality([only_crowd]).il_counts == {"tp": 0, "fp": 0, "fn": 0, "tn": 1}


def test_exact_ties_resolve_on_the_prediction_by_ground_truth_matrix():
    # columns 1–16 and 9–16 predicted; ground truth columns 1–13 and 1–16 (a 1×20 strip):
    # IoU 13/16, 1 / 5/16, 8/16 — both assignments total 1.3125
    shape = (1, 20)
    preds = [block(0, 1, 1, 17, shape), block(0, 1, 9, 17, shape)]
    gts = [block(0, 1, 1, 14, shape), block(0, 1, 1, 17, shape)]
    ious = mask_ious(preds, gts)
    assert ious.tolist() == [[0.8125, 1.0], [0.3125, 0.5]]
    match = match_pair(ious, [0.9, 0.9])
    assert sorted(match.matched_ious) == [0.3125, 1.0]  # what linear_sum_assignment(-ious) picks
    # the ground truth × prediction orientation picks the other assignment: another score
    rows, cols = linear_sum_assignment(-ious.T)
    assert sorted(ious.T[rows, cols].tolist()) == [0.5, 0.8125]
    result = quality([match])
    assert result.counts["tp"] == [1] * 10  # the other assignment gives 2 at τ = 0.5 and 0 from 0.85


def test_hungarian_beats_greedy():
    # greedy would take (a, x) = 0.6 and leave b with y (IoU 0); the best assignment is a–y, b–x
    ious = np.array([[0.6, 0.5], [0.55, 0.0]])
    match = match_pair(ious, [0.9, 0.9])
    assert sorted(match.matched_ious) == [0.5, 0.55]


def test_match_pair_checks_shapes():
    with pytest.raises(ValueError, match="one row per score"):
        match_pair(np.zeros((3, 2)), [0.9, 0.9])
    with pytest.raises(ValueError, match="gt_crowd"):
        match_pair(np.zeros((2, 2)), [0.9, 0.9], [True])
