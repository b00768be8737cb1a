"""pmF1, IL_MCC and cgF1 on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from engine.domain.metrics import THRESHOLDS, PairMatch, match_pair, mask_ious, mcc, quality


def grid(*cells: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    for r, c in cells:
        mask[r, c] = True
    return mask


def block(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def pair(gt: list[np.ndarray], pred: list[np.ndarray], scores: list[float]) -> PairMatch:
    return match_pair(mask_ious(gt, pred), scores)


def test_thresholds_are_the_ten_coco_ones():
    assert THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_mask_iou_by_hand():
    a, b = block(0, 2, 0, 5), block(0, 2, 0, 4)  # 10 and 8 pixels, 8 shared
    assert mask_ious([a], [b, np.zeros((10, 10), bool)]).tolist() == [[0.8, 0.0]]


def test_perfect_predictions():
    masks = [block(0, 3, 0, 3), block(5, 9, 5, 9)]
    result = quality([pair(masks, [m.copy() for m in masks], [0.9, 0.8]),
                      pair([], [], [])])  # a negative pair, nothing predicted
    assert result.pm_f1 == 1.0 and all(v == 1.0 for v in result.f1_by_threshold.values())
    assert result.il_counts == {"tp": 1, "fp": 0, "fn": 0, "tn": 1}
    assert result.il_mcc == 1.0 and result.cg_f1 == 100.0


def test_empty_input_has_no_pmf1():
    result = quality([])
    assert result.pm_f1 is None and result.cg_f1 is None and result.pairs == 0


def test_positive_pairs_without_predictions_score_zero():
    result = quality([pair([block(0, 3, 0, 3)], [], []), pair([block(1, 2, 1, 2)], [block(1, 2, 1, 2)], [0.2])])
    assert result.pm_f1 == 0.0  # the only prediction scores under 0.5: it does not count
    assert result.il_counts == {"tp": 0, "fp": 0, "fn": 2, "tn": 0}
    assert result.il_mcc == 0.0 and result.cg_f1 == 0.0


def test_all_negative_pairs():
    clean = quality([pair([], [], []), pair([], [block(0, 2, 0, 2)], [0.49])])
    assert clean.pm_f1 is None and clean.cg_f1 is None
    assert clean.il_counts == {"tp": 0, "fp": 0, "fn": 0, "tn": 2} and clean.il_mcc == 1.0
    wrong = quality([pair([], [], []), pair([], [block(0, 2, 0, 2)], [0.5])])
    assert wrong.il_counts == {"tp": 0, "fp": 1, "fn": 0, "tn": 1} and wrong.il_mcc == 0.0


def test_partial_matches():
    gt0, gt1 = block(0, 1, 0, 10), block(5, 10, 5, 10)  # 10 and 25 pixels
    pred0 = block(0, 1, 0, 9)  # IoU 9/10 = 0.9 with gt0
    pred1 = gt1.copy()
    pred1[5, 5:10] = False
    pred1[6, 5:7] = False  # 18 of gt1's 25 pixels: IoU 0.72
    ignored = block(0, 10, 0, 10)  # scores 0.3: not counted
    positive = pair([gt0, gt1], [pred0, pred1, ignored], [0.9, 0.6, 0.3])
    assert sorted(positive.matched_ious) == pytest.approx([0.72, 0.9])
    assert positive.n_pred == 2
    result = quality([positive, pair([], [block(2, 3, 2, 3)], [0.8]), pair([], [], [])])
    # τ 0.50–0.70: TP 2 → F1 1; τ 0.75–0.90: TP 1, FP 1, FN 1 → F1 0.5; τ 0.95: TP 0 → F1 0
    assert result.f1_by_threshold[0.7] == 1.0 and result.f1_by_threshold[0.75] == 0.5
    assert result.f1_by_threshold[0.95] == 0.0
    assert result.pm_f1 == pytest.approx((5 * 1.0 + 4 * 0.5) / 10)
    # image level: TP 1 (positive), FP 1 (negative with a prediction), TN 1 → (1·1 − 1·0)/√(2·1·2·1)
    assert result.il_counts == {"tp": 1, "fp": 1, "fn": 0, "tn": 1}
    assert result.il_mcc == pytest.approx(0.5)
    assert result.cg_f1 == pytest.approx(100 * 0.7 * 0.5)


def test_hungarian_beats_greedy():
    # greedy would take (a, x) = 0.6 and leave b with y (IoU 0); the best assignment is a–y, b–x
    ious = np.array([[0.6, 0.5], [0.55, 0.0]])
    match = match_pair(ious, [0.9, 0.9])
    assert sorted(match.matched_ious) == [0.5, 0.55]


def test_match_pair_checks_shape():
    with pytest.raises(ValueError, match="one column per score"):
        match_pair(np.zeros((2, 3)), [0.9, 0.9])


def test_mcc_by_hand():
    assert mcc(6, 2, 1, 3) == pytest.approx((6 * 3 - 2 * 1) / np.sqrt(8 * 7 * 5 * 4))
