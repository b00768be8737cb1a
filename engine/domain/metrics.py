"""SA-Co quality of a proposer: cgF1, pmF1 and IL_MCC, with the official evaluator's conventions.

The reference is Meta's evaluator, ``sam3/eval/cgf1_eval.py`` in the ``sam3`` package on PyPI
(version 0.1.4: ``CGF1Evaluator``, ``CGF1Eval.evaluateImg`` and ``CGF1Eval.accumulate``, built on
pycocotools' ``COCOeval``). This module reproduces it number for number (tests/engine/domain/
test_metrics.py computes each convention by hand; tests/engine/services/test_saco_oracle.py runs
the official module on the same files and compares to 1e-6). The conventions, as that file has them:

1. Scored set: the (image, phrase) pairs whose ground truth is ``is_instance_exhaustive``; the
   caller chooses them. Crowd ground truth (``iscrowd``) is ignored, as COCOeval ignores it: it is
   dropped before matching and counts nowhere.
2. Predictions scoring below 0.5 are dropped (``score >= 0.5`` is kept).
3. Per pair: nothing to find and nothing found → image-level TN only (no instance counts); ground
   truth and no prediction → image-level FN and FN += #gt; otherwise the Hungarian assignment
   ``scipy.optimize.linear_sum_assignment(-ious)`` on the **prediction × ground-truth** IoU matrix
   (rows are predictions in their given order, columns ground truth in its given order: with exact
   ties in a square matrix the orientation decides which assignment wins), then at every IoU
   threshold τ: TP_τ = matched couples with IoU ≥ τ, FP_τ = #pred − TP_τ, FN_τ = #gt − TP_τ. A pair
   with ground truth and predictions is an image-level TP; predictions and no ground truth an
   image-level FP (its FPs count in the plain precision, not in the positive-micro one).
4. τ runs over COCOeval's ``np.linspace(0.5, 0.95, 10)`` (its 0.9 is 0.8999999999999999).
5. Summed over pairs: positive-micro precision_τ = TP / (TP + FP of pairs with ground truth + 1e-4),
   recall_τ = TP / (TP + FN + 1e-4), pmF1_τ = 2PR / (P + R + 1e-4). So pmF1 is 0 when no pair is
   positive, and a perfect proposer gets slightly less than 1.
6. IL_MCC = (TP·TN − FP·FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + 1e-6) on the image-level counts:
   0 whenever a margin is empty (e.g. no negative pair at all), never 1 by convention.
7. cgF1_τ = pmF1_τ · IL_MCC; cgF1 and pmF1 are the means over τ (of the values above −1, as the
   evaluator's ``summarize`` takes them). All three are fractions here, as the evaluator gives them;
   the report prints cgF1 × 100, as the SAM 3 paper does.

The official evaluator fails on an empty scored set; :func:`quality` refuses one too.

Pure functions: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

MIN_SCORE = 0.5
#: COCOeval's ``Params.iouThrs`` exactly (the same float values, so IoU = τ compares the same way)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
THRESHOLDS = tuple(float(t) for t in IOU_THRESHOLDS)
F1_EPS = 1e-4  # added to the denominators of precision, recall and F1
MCC_EPS = 1e-6  # added to the denominator of IL_MCC
NO_HITS = np.zeros(len(IOU_THRESHOLDS), dtype=np.int64)


@dataclass(frozen=True)
class PairMatch:
    """One pair after matching: ground-truth instances (crowd ones dropped), predictions kept
    (score ≥ 0.5), and the IoU of each couple the assignment matched."""

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
    pm_f1: float  # mean over τ of pmF1_τ (a fraction)
    pm_f1_by_threshold: dict[float, float]
    il_mcc: float
    il_counts: dict[str, int]  # tp, fp, fn, tn at image level
    cg_f1: float  # mean over τ of pmF1_τ · IL_MCC (a fraction; the paper prints it × 100)
    counts: dict[str, list[int]]  # per τ: tp, fp (all pairs), pm_fp (pairs with ground truth), fn

    def to_dict(self) -> dict[str, object]:
        return {"pairs": self.pairs, "positive_pairs": self.positive_pairs, "pmF1": self.pm_f1,
                "pmF1_by_threshold": {f"{t:.2f}": v for t, v in self.pm_f1_by_threshold.items()},
                "IL_MCC": self.il_mcc, "il_counts": dict(self.il_counts), "cgF1": self.cg_f1,
                "counts": {k: list(v) for k, v in self.counts.items()}}


def mask_ious(pred: Sequence[npt.NDArray[np.bool_]], gt: Sequence[npt.NDArray[np.bool_]]) -> npt.NDArray[np.float64]:
    """IoU of every prediction (rows) with every ground-truth mask (columns); bool H×W arrays.
    An empty union gives 0 (as pycocotools' ``maskUtils.iou``)."""
    out = np.zeros((len(pred), len(gt)))
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            union = int(np.logical_or(p, g).sum())
            out[i, j] = int(np.logical_and(p, g).sum()) / union if union else 0.0
    return out


def match_pair(ious: npt.ArrayLike, scores: Sequence[float], gt_crowd: Sequence[bool] | None = None,
               min_score: float = MIN_SCORE) -> PairMatch:
    """Match one pair. ``ious`` is n_pred × n_gt over all its predictions (rows, in the order of
    the results) and all its ground truth (columns, in the order of the annotations), ``scores``
    the predictions' scores, ``gt_crowd`` which ground-truth masks are crowd masks (ignored)."""
    matrix = np.asarray(ious, dtype=float)
    n_gt_all = matrix.shape[1] if matrix.ndim == 2 else 0
    if matrix.ndim != 2 or matrix.shape[0] != len(scores):
        raise ValueError(f"ious must be {len(scores)} × n_gt (one row per score), not {matrix.shape}")
    crowd = [False] * n_gt_all if gt_crowd is None else [bool(c) for c in gt_crowd]
    if len(crowd) != n_gt_all:
        raise ValueError(f"gt_crowd has {len(crowd)} flags for {n_gt_all} ground-truth masks")
    keep_pred = np.asarray(scores, dtype=float) >= min_score
    kept = matrix[keep_pred, :]
    if any(crowd):
        kept = kept[:, ~np.asarray(crowd, dtype=bool)]
    n_pred, n_gt = kept.shape
    if n_pred == 0 or n_gt == 0:
        return PairMatch(n_gt, n_pred, ())
    if n_pred == 1 or n_gt == 1:
        # one row or one column: every optimal assignment matches one couple of the largest IoU
        # (which one among equal values does not change any count)
        return PairMatch(n_gt, n_pred, (float(kept.max()),))
    rows, cols = linear_sum_assignment(-kept)
    return PairMatch(n_gt, n_pred, tuple(float(v) for v in kept[rows, cols]))


def mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    """The evaluator's IL_MCC: the denominator is smoothed by 1e-6 (so an empty margin gives 0)."""
    denominator = float((float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)) ** 0.5) + MCC_EPS
    return float(tp * tn - fp * fn) / denominator


def _mean_over_thresholds(values: npt.NDArray[np.float64]) -> float:
    kept = values[values > -1]
    return -1.0 if len(kept) == 0 else float(np.mean(kept))


def quality(matches: Sequence[PairMatch]) -> Quality:
    """pmF1, IL_MCC and cgF1 of the scored pairs (all of them instance-exhaustive)."""
    if not matches:
        raise ValueError("nothing to score: no pair (the official evaluator fails on an empty set too)")
    n = len(IOU_THRESHOLDS)
    tp = np.zeros(n, dtype=np.int64)
    fp = np.zeros(n, dtype=np.int64)
    pm_fp = np.zeros(n, dtype=np.int64)
    fn = np.zeros(n, dtype=np.int64)
    il = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for m in matches:
        if m.n_gt == 0 and m.n_pred == 0:
            il["tn"] += 1
            continue
        if m.n_pred == 0:
            il["fn"] += 1
            fn += m.n_gt
            continue
        if m.matched_ious:
            hits = (np.asarray(m.matched_ious)[:, None] >= IOU_THRESHOLDS).sum(axis=0)
        else:
            hits = NO_HITS
        tp += hits
        fp += m.n_pred - hits
        fn += m.n_gt - hits
        if m.n_gt > 0:
            il["tp"] += 1
            pm_fp += m.n_pred - hits
        else:
            il["fp"] += 1
    precision = tp / (tp + pm_fp + F1_EPS)
    recall = tp / (tp + fn + F1_EPS)
    pm_f1_t = 2 * precision * recall / (precision + recall + F1_EPS)
    il_mcc = mcc(il["tp"], il["fp"], il["fn"], il["tn"])
    cg_f1_t = pm_f1_t * il_mcc
    return Quality(
        pairs=len(matches), positive_pairs=sum(1 for m in matches if m.positive),
        pm_f1=_mean_over_thresholds(pm_f1_t),
        pm_f1_by_threshold={t: float(v) for t, v in zip(THRESHOLDS, pm_f1_t, strict=True)},
        il_mcc=il_mcc, il_counts=il, cg_f1=_mean_over_thresholds(cg_f1_t),
        counts={"tp": tp.tolist(), "fp": fp.tolist(), "pm_fp": pm_fp.tolist(), "fn": fn.tolist()})
