"""SA-Co quality metrics of a proposer against exhaustive ground truth (SAM 3, sam3/eval/cgf1_eval.py).

Per image–phrase pair: the ground-truth masks (none: a negative pair) and the predictions with
their scores; only predictions scoring at least ``MIN_SCORE`` count.

* pmF1 (positive micro F1) over positive pairs: predictions and ground truth are matched one to
  one by the Hungarian algorithm on mask IoU; a matched prediction with IoU ≥ τ is a true
  positive, every other prediction a false positive, every unmatched ground-truth mask a false
  negative; counts are summed over pairs, F1_τ = 2TP / (2TP + FP + FN), averaged over
  τ = 0.50, 0.55 … 0.95.
* IL_MCC (image-level Matthews correlation) over all pairs: a positive pair with any prediction is
  a TP, with none an FN; a negative pair with any prediction an FP, with none a TN.
* cgF1 = 100 · pmF1 · IL_MCC.

Conventions where a ratio is 0/0 (not fixed by the paper): F1_τ with no ground truth and no
prediction at all is 1; MCC with a zero denominator is 1 when there is no error (FP = FN = 0) and
0 otherwise; pmF1 (and so cgF1) is None when no pair is positive.

Pure functions: numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MIN_SCORE = 0.5
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class PairMatch:
    """One pair after matching: how many ground-truth masks and counted predictions, and the IoU of
    each matched (ground truth, prediction) couple."""

    n_gt: int
    n_pred: int
    matched_ious: tuple[float, ...]

    @property
    def positive(self) -> bool:
        return self.n_gt > 0


@dataclass(frozen=True)
class Quality:
    pairs: int
    positive_pairs: int
    pm_f1: float | None
    f1_by_threshold: dict[float, float]
    il_mcc: float
    il_counts: dict[str, int]  # tp, fp, fn, tn at image level
    cg_f1: float | None

    def to_dict(self) -> dict[str, object]:
        return {"pairs": self.pairs, "positive_pairs": self.positive_pairs, "pmF1": self.pm_f1,
                "f1_by_threshold": {f"{t:.2f}": v for t, v in self.f1_by_threshold.items()},
                "IL_MCC": self.il_mcc, "il_counts": dict(self.il_counts), "cgF1": self.cg_f1}


def mask_ious(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every ground-truth mask (rows) with every predicted mask (columns); bool H×W arrays."""
    out = np.zeros((len(gt), len(pred)))
    for i, g in enumerate(gt):
        for j, p in enumerate(pred):
            union = np.logical_or(g, p).sum()
            out[i, j] = np.logical_and(g, p).sum() / union if union else 0.0
    return out


def match_pair(ious: np.ndarray, scores: Sequence[float], min_score: float = MIN_SCORE) -> PairMatch:
    """Hungarian matching (maximum total IoU) of one pair; ``ious`` is n_gt × n_pred over all
    predictions, ``scores`` their scores (those under ``min_score`` are dropped first)."""
    ious = np.asarray(ious, dtype=float)
    if ious.ndim != 2 or ious.shape[1] != len(scores):
        raise ValueError(f"ious must be n_gt × {len(scores)} (one column per score), not {ious.shape}")
    keep = [j for j, s in enumerate(scores) if s >= min_score]
    counted = ious[:, keep]
    n_gt, n_pred = counted.shape
    if n_gt == 0 or n_pred == 0:
        return PairMatch(n_gt, n_pred, ())
    rows, cols = linear_sum_assignment(counted, maximize=True)
    return PairMatch(n_gt, n_pred, tuple(float(counted[r, c]) for r, c in zip(rows, cols)))


def f1_at(matches: Sequence[PairMatch], threshold: float) -> float:
    """Micro F1 at one IoU threshold, summed over the given (positive) pairs."""
    tp = sum(sum(1 for iou in m.matched_ious if iou >= threshold) for m in matches)
    fp = sum(m.n_pred for m in matches) - tp
    fn = sum(m.n_gt for m in matches) - tp
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def pm_f1(matches: Sequence[PairMatch]) -> tuple[float | None, dict[float, float]]:
    """pmF1 over the positive pairs and F1 per threshold; (None, {}) without a positive pair."""
    positives = [m for m in matches if m.positive]
    if not positives:
        return None, {}
    by_threshold = {t: f1_at(positives, t) for t in THRESHOLDS}
    return sum(by_threshold.values()) / len(by_threshold), by_threshold


def image_level_counts(matches: Sequence[PairMatch]) -> dict[str, int]:
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for m in matches:
        key = ("tp" if m.n_pred else "fn") if m.positive else ("fp" if m.n_pred else "tn")
        counts[key] += 1
    return counts


def mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    """Matthews correlation coefficient; a zero denominator gives 1 without errors, else 0."""
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if denominator == 0:
        return 1.0 if fp == 0 and fn == 0 else 0.0
    return (tp * tn - fp * fn) / denominator


def quality(matches: Sequence[PairMatch]) -> Quality:
    """pmF1, IL_MCC and cgF1 of a set of matched pairs (evaluate only instance-exhaustive pairs)."""
    pm, by_threshold = pm_f1(matches)
    counts = image_level_counts(matches)
    il = mcc(counts["tp"], counts["fp"], counts["fn"], counts["tn"])
    return Quality(pairs=len(matches), positive_pairs=sum(1 for m in matches if m.positive), pm_f1=pm,
                   f1_by_threshold=by_threshold, il_mcc=il, il_counts=counts,
                   cg_f1=None if pm is None else 100.0 * pm * il)
