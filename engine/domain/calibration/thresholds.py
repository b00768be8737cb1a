"""Auto-decision thresholds with confidence: the lowest score whose set ``{score ≥ t}`` has a 95%
Wilson lower bound of its precision at the target (:func:`choose_threshold`), its mirror image for
auto-rejection (:func:`choose_reject_threshold`), and the estimated precision of the final labels
when the rest goes to people who err at a known rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.intervals import Z_95, needed_for_target, wilson_interval
from engine.domain.calibration.values import (
    BoolArray,
    FloatArray,
    IntArray,
    as_labels,
    as_scores,
    check_error,
    check_target,
    fmt,
)

ACCEPT_SIDE = "accept"
REJECT_SIDE = "reject"
DEFAULT_MIN_SUPPORT = 30


@dataclass(frozen=True)
class ThresholdChoice:
    """The outcome of a threshold search on one side.

    ``side`` ``accept``: items with score ≥ ``threshold`` are auto-accepted; ``reject``: items with
    score ≤ ``threshold`` are auto-rejected. ``threshold`` is None when no threshold passes; then
    coverage and support are 0 and ``reason`` tells the best attempt.
    """

    side: str
    target_precision: float
    threshold: float | None
    coverage: float  # share of all items that the threshold auto-decides
    precision: float | None  # measured precision of the auto-decided set (vs human labels)
    ci_low: float | None  # Wilson 95% interval of that precision
    ci_high: float | None
    support: int  # items in the auto-decided set
    n: int  # items searched
    reason: str

    @property
    def passed(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return {"side": self.side, "target_precision": self.target_precision, "threshold": self.threshold,
                "coverage": self.coverage, "precision": self.precision, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "support": self.support, "n": self.n, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdChoice:
        return cls(**{k: data[k] for k in ("side", "target_precision", "threshold", "coverage", "precision",
                                           "ci_low", "ci_high", "support", "n", "reason")})


def skipped(side: str, target: float, n: int, reason: str) -> ThresholdChoice:
    """No threshold on ``side``, for ``reason``."""
    return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)


@dataclass(frozen=True)
class Cuts:
    """The candidate sets {sign·score ≥ u} of one side, smallest first: one cut after each run of
    equal scores (ties stay together)."""

    v: FloatArray  # sign·score at the cut
    support: IntArray  # items in the set
    hits: IntArray  # good items in the set (the side's label is right)
    low: FloatArray  # 95% Wilson interval of hits / support
    high: FloatArray
    n: int  # items searched
    n_good: int

    @classmethod
    def of(cls, s: FloatArray, good: BoolArray, sign: float, z: float) -> Cuts:
        v = sign * s
        order = np.argsort(-v, kind="stable")
        v_sorted = v[order]
        cum_good = np.cumsum(good[order], dtype=np.intp)
        last = np.flatnonzero(np.append(v_sorted[1:] != v_sorted[:-1], True))
        support = last + 1
        hits = cum_good[last]
        low, high = wilson_interval(hits, support, z)
        return cls(v_sorted[last], support, hits, np.atleast_1d(low), np.atleast_1d(high), int(s.size),
                   int(good.sum()))


def final_precision_curve(hits: npt.ArrayLike, support: npt.ArrayLike, n_good: int, n: int,
                          human_error: float) -> FloatArray:
    """Estimated precision of the final label-1 set when the ``support`` items of a cut (``hits`` of
    them right) are decided automatically and a person with error rate ``human_error`` labels the
    other items: ``(hits + (1 − e)·P′) / (support + (1 − e)·P′ + e·N′)`` with ``P′``/``N′`` the
    positives/negatives left to people. ``support = 0`` gives the all-human precision."""
    e = check_error(human_error)
    k = np.asarray(hits, dtype=np.float64)
    m = np.asarray(support, dtype=np.float64)
    rest_pos = n_good - k
    rest_neg = (n - n_good) - (m - k)
    num = k + (1.0 - e) * rest_pos
    den = m + (1.0 - e) * rest_pos + e * rest_neg
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def expected_final_precision(labels: npt.ArrayLike, auto_accepted: npt.ArrayLike, human_error: float,
                             auto_rejected: npt.ArrayLike | None = None) -> float | None:
    """The final precision of the label-1 set (accepted masks; negative labels for pairs without
    masks) on a labelled sample: items in ``auto_accepted`` keep the automatic label, items in
    ``auto_rejected`` are dropped, a person with error ``human_error`` labels the rest. Pass no
    automatic decisions for the all-human figure. None when nothing ends with label 1."""
    y = as_labels(labels, np.asarray(labels).size)
    acc = np.asarray(auto_accepted, dtype=bool).reshape(-1)
    rej = np.zeros_like(acc) if auto_rejected is None else np.asarray(auto_rejected, dtype=bool).reshape(-1)
    if acc.size != y.size or rej.size != y.size:
        raise ValueError("labels and decisions must have the same length")
    if np.any(acc & rej):
        raise ValueError("an item cannot be both auto-accepted and auto-rejected")
    e = check_error(human_error)
    pile = ~acc & ~rej
    num = float(y[acc].sum() + (1.0 - e) * y[pile].sum())
    den = float(acc.sum() + (1.0 - e) * y[pile].sum() + e * (~y[pile]).sum())
    return num / den if den > 0 else None


def choice_at(cuts: Cuts, idx: int, side: str, target: float, sign: float, reason: str = "") -> ThresholdChoice:
    """The threshold of cut ``idx``, with its measured precision and confidence in the reason."""
    k, m = int(cuts.hits[idx]), int(cuts.support[idx])
    threshold = sign * float(cuts.v[idx])
    symbol = "≥" if side == ACCEPT_SIDE else "≤"
    text = (f"{side} when score {symbol} {fmt(threshold, 4)}: precision {fmt(k / m)} ({k}/{m}), "
            f"95% Wilson [{fmt(float(cuts.low[idx]))}, {fmt(float(cuts.high[idx]))}] ≥ target {fmt(target)}, "
            f"coverage {fmt(m / cuts.n)}") + reason
    return ThresholdChoice(side, target, threshold, m / cuts.n, k / m, float(cuts.low[idx]), float(cuts.high[idx]),
                           m, cuts.n, text)


def passing(cuts: Cuts, target: float, min_support: int, sign: float, bound: float | None,
            final: tuple[float, float] | None) -> tuple[BoolArray, BoolArray, FloatArray | None]:
    """(ok, allowed by the bound, final precision per cut or None) of each cut."""
    allowed = np.ones(cuts.v.size, bool) if bound is None else cuts.v >= sign * bound
    ok = (cuts.low >= target) & (cuts.support >= min_support) & allowed
    curve = None
    if final is not None:
        # the auto-decided set at its Wilson lower bound: the same confidence as the target
        curve = final_precision_curve(cuts.low * cuts.support, cuts.support, cuts.n_good, cuts.n, final[0])
        ok &= curve >= final[1] - 1e-12
    return ok, allowed, curve


def _no_threshold(cuts: Cuts, target: float, min_support: int, z: float, side: str, sign: float,
                  bound: float | None, final: tuple[float, float] | None, allowed: BoolArray,
                  curve: FloatArray | None) -> ThresholdChoice:
    """No cut passes: say why, from the best attempt."""
    n = cuts.n
    symbol = "≥" if side == ACCEPT_SIDE else "≤"
    if not allowed.any():
        return skipped(side, target, n, f"no {side} threshold: no score {symbol} {fmt(bound, 4)}")
    wilson_ok = (cuts.low >= target) & (cuts.support >= min_support) & allowed
    if curve is not None and final is not None and wilson_ok.any():
        best = int(np.flatnonzero(wilson_ok)[np.argmax(curve[wilson_ok])])
        reason = (f"no {side} threshold keeps the estimated final precision ≥ {fmt(final[1])} "
                  f"(all-human estimate minus the allowed drop): best is score {symbol} "
                  f"{fmt(sign * float(cuts.v[best]), 4)} with {fmt(float(curve[best]))}")
        return skipped(side, target, n, reason)
    best = int(np.flatnonzero(allowed)[np.argmax(cuts.low[allowed])])
    needed = needed_for_target(int(cuts.hits[best]), target, z=z, min_support=min_support)
    reason = (f"no {side} threshold reaches precision {fmt(target)} at 95% confidence: best is "
              f"score {symbol} {fmt(sign * float(cuts.v[best]), 4)} with precision "
              f"{fmt(float(cuts.hits[best] / cuts.support[best]))} "
              f"({int(cuts.hits[best])}/{int(cuts.support[best])}, "
              f"Wilson lower bound {fmt(float(cuts.low[best]))})")
    if needed:
        reason += f"; even a perfect sample needs {needed} more correct verdicts"
    return skipped(side, target, n, reason)


def search_upper_set(s: FloatArray, good: BoolArray, target: float, min_support: int, z: float,
                     side: str, sign: float, bound: float | None,
                     final: tuple[float, float] | None = None) -> ThresholdChoice:
    """Largest set {sign·score ≥ u} (u a score value, sign·u ≥ sign·bound) whose Wilson lower bound
    reaches ``target``. ``final`` = (human error, floor): the set must also keep the estimated final
    precision (:func:`final_precision_curve`) at or above the floor."""
    if s.size == 0:
        return skipped(side, target, 0, "no items")
    cuts = Cuts.of(s, good, sign, z)
    ok, allowed, curve = passing(cuts, target, min_support, sign, bound, final)
    if not ok.any():
        return _no_threshold(cuts, target, min_support, z, side, sign, bound, final, allowed, curve)
    idx = int(np.flatnonzero(ok)[-1])  # the largest passing set = the lowest accept threshold
    extra = ""
    if curve is not None and final is not None:
        extra = f", estimated final precision {fmt(float(curve[idx]))} ≥ {fmt(final[1])}"
    return choice_at(cuts, idx, side, target, sign, extra)


def choose_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike, target_precision: float,
                     min_support: int = DEFAULT_MIN_SUPPORT, *, z: float = Z_95,
                     min_threshold: float | None = None) -> ThresholdChoice:
    """The lowest threshold ``t`` (one of the scores) such that the items with score ≥ ``t`` are
    positives with a Wilson lower bound ≥ ``target_precision`` and number ≥ ``min_support``.

    Items with equal scores are never split. With few samples nothing passes and the threshold
    is None: 20 perfect verdicts give a lower bound of only 0.84. ``min_threshold``: never choose
    a threshold below it.
    """
    s = as_scores(scores)
    y = as_labels(labels, s.size)
    return search_upper_set(s, y, check_target(target_precision), int(min_support), z, ACCEPT_SIDE, 1.0,
                            min_threshold)


def choose_reject_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike, target_precision: float,
                            min_support: int = DEFAULT_MIN_SUPPORT, *, z: float = Z_95,
                            max_threshold: float | None = None) -> ThresholdChoice:
    """The highest threshold ``t`` such that the items with score ≤ ``t`` are negatives with a
    Wilson lower bound ≥ ``target_precision`` (precision of predicting the negative).
    ``max_threshold``: never choose a threshold above it."""
    s = as_scores(scores)
    y = as_labels(labels, s.size)
    return search_upper_set(s, ~y, check_target(target_precision), int(min_support), z, REJECT_SIDE, -1.0,
                            max_threshold)
