"""Calibration of AI verifier scores against human verdicts, and the thresholds for auto-decisions.

A verifier (MV or EV) gives a score per item, e.g. the softmax P(accept). Humans give verdicts on a
sample of the same items (1 = accept / exhaustive, 0 = reject / not exhaustive). From the two:

* a :class:`Calibrator` maps a raw score to a probability that a human would accept: isotonic
  regression (pool-adjacent-violators, monotone, no shape assumed) or Platt scaling (a logistic
  curve ``sigmoid(a·score + b)`` fitted by Newton's method);
* :func:`choose_threshold` picks the lowest score ``t`` whose set ``{score ≥ t}`` is precise enough
  *with confidence*: the lower end of the 95% Wilson score interval of its precision must reach
  the target, so a handful of lucky verdicts never opens the gate;
  :func:`choose_reject_threshold` is the mirror image for auto-rejection (``{score ≤ t}``, precision
  of predicting the negative);
* :func:`calibrate_task` does both for one (verifier version, task kind) and says, when there are
  too few verdicts, how many more a human must give (:func:`needed_for_target`).

Everything here is pure and uses numpy only: no database, no I/O. Every result serialises to
plain JSON (``to_dict`` / ``from_dict``) so it can be stored beside the model version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ISOTONIC = "isotonic"
PLATT = "platt"
METHODS = (ISOTONIC, PLATT)
ACCEPT_SIDE = "accept"
REJECT_SIDE = "reject"
Z_95 = 1.959963984540054  # two-sided 95% normal quantile (the "1.96")
DEFAULT_MIN_SUPPORT = 30


# ============================================================================ helpers
def _as_scores(scores: Any) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError("scores must be finite numbers")
    return arr


def _as_labels(labels: Any, n: int) -> np.ndarray:
    raw = np.asarray(labels).reshape(-1)
    if raw.size != n:
        raise ValueError(f"{n} scores but {raw.size} labels")
    if raw.dtype == bool:
        return raw
    arr = raw.astype(np.float64)
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("labels must be 0/1 or booleans")
    return arr == 1


def _check_target(target_precision: float) -> float:
    target = float(target_precision)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must lie strictly between 0 and 1, got {target_precision}")
    return target


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


# ============================================================================ Wilson interval
def wilson_interval(successes: Any, n: Any, z: float = Z_95) -> tuple[Any, Any]:
    """Wilson score interval of a binomial proportion (``successes`` out of ``n``).

    Works on scalars and on numpy arrays (element-wise). ``n = 0`` gives the uninformative (0, 1).
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > m):
        raise ValueError("successes must lie between 0 and n")
    safe = np.where(m > 0, m, 1.0)
    p = k / safe
    z2 = z * z
    denom = 1.0 + z2 / safe
    centre = (p + z2 / (2.0 * safe)) / denom
    half = z * np.sqrt(p * (1.0 - p) / safe + z2 / (4.0 * safe * safe)) / denom
    low = np.where((m > 0) & (k > 0), np.clip(centre - half, 0.0, 1.0), 0.0)  # exact ends at 0 and n
    high = np.where((m > 0) & (k < m), np.clip(centre + half, 0.0, 1.0), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def min_sample_size(target_precision: float, z: float = Z_95) -> int:
    """Smallest ``n`` for which ``n`` correct out of ``n`` has a Wilson lower bound ≥ the target.

    For a perfect sample the lower bound is ``n / (n + z²)``, so ``n ≥ target·z² / (1 − target)``:
    73 for 0.95, 35 for 0.90, 381 for 0.99 (z = 1.96).
    """
    target = _check_target(target_precision)
    n = max(1, math.ceil(target * z * z / (1.0 - target) - 1e-9))
    while n > 1 and wilson_interval(n - 1, n - 1, z)[0] >= target:  # guard against rounding
        n -= 1
    while wilson_interval(n, n, z)[0] < target:
        n += 1
    return n


def needed_for_target(n_positive_seen: int, target_precision: float, *, z: float = Z_95,
                      min_support: int = 1) -> int:
    """How many more correct human verdicts (on one side) are needed before any threshold can
    pass the Wilson test at ``target_precision``: even a perfect sample needs
    :func:`min_sample_size` items (and at least ``min_support``). 0 when enough were seen."""
    if n_positive_seen < 0:
        raise ValueError("n_positive_seen must be ≥ 0")
    required = max(min_sample_size(target_precision, z), int(min_support))
    return max(0, required - int(n_positive_seen))


# ============================================================================ calibrators
@dataclass(frozen=True)
class Calibrator:
    """A monotone map from raw verifier score to P(human accepts).

    ``isotonic``: piecewise-linear interpolation through the points (``x[i]``, ``y[i]``) (the
    ends of the pooled blocks), flat beyond the ends. ``platt``: ``sigmoid(a·score + b)``.
    Parameters are plain floats and tuples (lists in :meth:`to_dict`), so they serialise to JSON.
    """

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float | None = None
    b: float | None = None
    n: int = 0  # training items

    def __post_init__(self) -> None:
        if self.method == ISOTONIC:
            if not self.x or len(self.x) != len(self.y):
                raise ValueError("an isotonic calibrator needs as many x as y points, at least one")
            if any(x2 <= x1 for x1, x2 in zip(self.x, self.x[1:])):
                raise ValueError("isotonic x points must be strictly increasing")
            if any(y2 < y1 for y1, y2 in zip(self.y, self.y[1:])):
                raise ValueError("isotonic y values must be non-decreasing")
            if any(not 0.0 <= v <= 1.0 for v in self.y):
                raise ValueError("isotonic y values must lie in [0, 1]")
        elif self.method == PLATT:
            if self.a is None or self.b is None or not (math.isfinite(self.a) and math.isfinite(self.b)):
                raise ValueError("a Platt calibrator needs finite a and b")
        else:
            raise ValueError(f"unknown calibration method {self.method!r}; expected one of {METHODS}")

    def calibrate_many(self, scores: Any) -> np.ndarray:
        s = _as_scores(scores)
        if self.method == ISOTONIC:
            return np.clip(np.interp(s, np.asarray(self.x), np.asarray(self.y)), 0.0, 1.0)
        return _sigmoid(float(self.a) * s + float(self.b))  # type: ignore[arg-type]

    def calibrate(self, score: float) -> float:
        return float(self.calibrate_many([score])[0])

    def to_dict(self) -> dict[str, Any]:
        if self.method == ISOTONIC:
            return {"method": ISOTONIC, "x": [float(v) for v in self.x],
                    "y": [float(v) for v in self.y], "n": self.n}
        return {"method": PLATT, "a": float(self.a), "b": float(self.b), "n": self.n}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        method = data["method"]
        if method == ISOTONIC:
            return cls(method, x=tuple(float(v) for v in data["x"]), y=tuple(float(v) for v in data["y"]),
                       n=int(data.get("n", 0)))
        return cls(method, a=float(data["a"]), b=float(data["b"]), n=int(data.get("n", 0)))


def fit_isotonic(scores: Any, labels: Any) -> Calibrator:
    """Isotonic (non-decreasing) regression of the labels on the scores by pool-adjacent-violators.

    Equal scores are pooled first; each pooled block keeps its smallest and largest score as
    interpolation points. The fit minimises the squared error among all monotone maps and its
    values are averages of 0/1 labels, hence in [0, 1].
    """
    s = _as_scores(scores)
    y = _as_labels(labels, s.size).astype(np.float64)
    if s.size == 0:
        raise ValueError("cannot calibrate on zero items")
    xs, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y, minlength=xs.size)
    # Stack of blocks: [sum of labels, weight, first unique index, last unique index].
    blk_sum: list[float] = []
    blk_w: list[float] = []
    blk_lo: list[int] = []
    blk_hi: list[int] = []
    for i in range(xs.size):
        bs, bw, lo = float(sums[i]), float(counts[i]), i
        while blk_w and blk_sum[-1] / blk_w[-1] >= bs / bw:  # violator (or tie): pool
            bs += blk_sum.pop()
            bw += blk_w.pop()
            lo = blk_lo.pop()
            blk_hi.pop()
        blk_sum.append(bs)
        blk_w.append(bw)
        blk_lo.append(lo)
        blk_hi.append(i)
    px: list[float] = []
    py: list[float] = []
    for bs, bw, lo, hi in zip(blk_sum, blk_w, blk_lo, blk_hi):
        value = min(1.0, max(0.0, bs / bw))
        for idx in (lo, hi) if hi != lo else (lo,):
            px.append(float(xs[idx]))
            py.append(value)
    return Calibrator(ISOTONIC, x=tuple(px), y=tuple(py), n=int(s.size))


def fit_platt(scores: Any, labels: Any, *, prior_correction: bool = True, max_iter: int = 100,
              tol: float = 1e-10) -> Calibrator:
    """Platt scaling: ``P = sigmoid(a·score + b)`` by maximum likelihood (Newton with step halving).

    With ``prior_correction`` (Platt, 1999) the 0/1 targets become ``(N₊+1)/(N₊+2)`` and
    ``1/(N₋+2)``, which keeps the fit finite on separable data and changes little otherwise.
    """
    s = _as_scores(scores)
    y = _as_labels(labels, s.size)
    if s.size == 0:
        raise ValueError("cannot calibrate on zero items")
    n_pos = int(y.sum())
    n_neg = int(s.size - n_pos)
    if prior_correction:
        t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    else:
        t = y.astype(np.float64)
    a, b = 0.0, math.log((n_pos + 1.0) / (n_neg + 1.0))

    def loss(a_: float, b_: float) -> float:
        z = a_ * s + b_
        # −Σ t·log σ(z) + (1−t)·log(1−σ(z)) = Σ log(1 + e^z) − t·z
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    current = loss(a, b)
    ridge = 1e-12 * max(1.0, float(np.sum(s * s)))
    for _ in range(max_iter):
        p = _sigmoid(a * s + b)
        r = p - t
        w = p * (1.0 - p)
        g = np.array([np.sum(r * s), np.sum(r)])
        h = np.array([[np.sum(w * s * s) + ridge, np.sum(w * s)], [np.sum(w * s), np.sum(w) + 1e-12]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        scale = 1.0
        while True:
            a_new, b_new = a - scale * float(step[0]), b - scale * float(step[1])
            new = loss(a_new, b_new)
            if new <= current + 1e-12 or scale < 1e-10:
                break
            scale /= 2.0
        if new > current + 1e-12:  # no step makes progress: at the optimum up to rounding
            break
        moved = scale * float(np.max(np.abs(step)))
        improvement = current - new
        a, b, current = a_new, b_new, new
        if moved < 1e-10 or improvement <= tol * max(1.0, abs(current)):
            break
    return Calibrator(PLATT, a=float(a), b=float(b), n=int(s.size))


def fit_calibrator(scores: Any, labels: Any, method: str = ISOTONIC) -> Calibrator:
    if method == ISOTONIC:
        return fit_isotonic(scores, labels)
    if method == PLATT:
        return fit_platt(scores, labels)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")


# ============================================================================ thresholds
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


def _search_upper_set(s: np.ndarray, good: np.ndarray, target: float, min_support: int, z: float,
                      side: str, sign: float, bound: float | None) -> ThresholdChoice:
    """Largest set {sign·score ≥ u} (u a score value, sign·u ≥ sign·bound) whose Wilson lower bound
    reaches ``target``."""
    n = int(s.size)
    symbol = "≥" if side == ACCEPT_SIDE else "≤"
    if n == 0:
        return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, 0, "no items")
    v = sign * s
    order = np.argsort(-v, kind="stable")
    v_sorted = v[order]
    cum_good = np.cumsum(good[order])
    # a cut may fall only after the last item of a run of equal scores (ties stay together)
    last = np.flatnonzero(np.append(v_sorted[1:] != v_sorted[:-1], True))
    support = last + 1
    hits = cum_good[last]
    low, high = wilson_interval(hits, support, z)
    ok = (low >= target) & (support >= min_support)
    if bound is not None:
        ok &= v_sorted[last] >= sign * bound
    if not ok.any():
        allowed = np.ones(last.size, bool) if bound is None else v_sorted[last] >= sign * bound
        if not allowed.any():
            limit = "≥" if side == ACCEPT_SIDE else "≤"
            return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n,
                                   f"no {side} threshold: no score {limit} {_fmt(bound, 4)}")
        best = int(np.flatnonzero(allowed)[np.argmax(low[allowed])])
        needed = needed_for_target(int(hits[best]), target, z=z, min_support=min_support)
        reason = (f"no {side} threshold reaches precision {_fmt(target)} at 95% confidence: best is "
                  f"score {symbol} {_fmt(sign * float(v_sorted[last[best]]), 4)} with precision "
                  f"{_fmt(float(hits[best] / support[best]))} ({int(hits[best])}/{int(support[best])}, "
                  f"Wilson lower bound {_fmt(float(low[best]))})")
        if needed:
            reason += f"; even a perfect sample needs {needed} more correct verdicts"
        return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)
    idx = int(np.flatnonzero(ok)[-1])  # the largest passing set = the lowest accept threshold
    k, m = int(hits[idx]), int(support[idx])
    threshold = sign * float(v_sorted[last[idx]])
    reason = (f"{side} when score {symbol} {_fmt(threshold, 4)}: precision {_fmt(k / m)} ({k}/{m}), "
              f"95% Wilson [{_fmt(float(low[idx]))}, {_fmt(float(high[idx]))}] ≥ target {_fmt(target)}, "
              f"coverage {_fmt(m / n)}")
    return ThresholdChoice(side, target, threshold, m / n, k / m, float(low[idx]), float(high[idx]), m, n,
                           reason)


def choose_threshold(scores: Any, labels: Any, target_precision: float,
                     min_support: int = DEFAULT_MIN_SUPPORT, *, z: float = Z_95,
                     min_threshold: float | None = None) -> ThresholdChoice:
    """The lowest threshold ``t`` (one of the scores) such that the items with score ≥ ``t`` are
    positives with a Wilson lower bound ≥ ``target_precision`` and number ≥ ``min_support``.

    Items with equal scores are never split. With few samples nothing passes and the threshold
    is None: 20 perfect verdicts give a lower bound of only 0.84. ``min_threshold``: never choose
    a threshold below it.
    """
    s = _as_scores(scores)
    y = _as_labels(labels, s.size)
    return _search_upper_set(s, y, _check_target(target_precision), int(min_support), z, ACCEPT_SIDE, 1.0,
                             min_threshold)


def choose_reject_threshold(scores: Any, labels: Any, target_precision: float,
                            min_support: int = DEFAULT_MIN_SUPPORT, *, z: float = Z_95,
                            max_threshold: float | None = None) -> ThresholdChoice:
    """The highest threshold ``t`` such that the items with score ≤ ``t`` are negatives with a
    Wilson lower bound ≥ ``target_precision`` (precision of predicting the negative).
    ``max_threshold``: never choose a threshold above it."""
    s = _as_scores(scores)
    y = _as_labels(labels, s.size)
    return _search_upper_set(s, ~y, _check_target(target_precision), int(min_support), z, REJECT_SIDE, -1.0,
                             max_threshold)


# ============================================================================ per task
@dataclass(frozen=True)
class CalibrationResult:
    """Calibration of one verifier version for one task kind (``verify_mask`` or
    ``check_exhaustivity``): the calibrator, both thresholds (on calibrated probability), their
    measured precision and confidence, and how well the AI's own answer agrees with humans."""

    method: str
    target_precision: float
    n: int
    n_positive: int
    n_negative: int
    calibrator: Calibrator | None
    accept: ThresholdChoice
    reject: ThresholdChoice
    agreement: float | None  # share of items where the AI's argmax equals the human label
    needed_positive: int  # more positive verdicts needed before an accept threshold can exist
    needed_negative: int  # more negative verdicts needed before a reject threshold can exist
    more_verdicts_needed: int  # estimate of further human verdicts before any threshold can exist
    reason: str | None = None  # why a threshold is missing (None when both exist)
    verifier_version: str | None = None
    task_kind: str | None = None

    @property
    def accept_threshold(self) -> float | None:
        return self.accept.threshold

    @property
    def reject_threshold(self) -> float | None:
        return self.reject.threshold

    @property
    def coverage(self) -> float:
        """Share of the calibration items that the two thresholds decide without a human."""
        return self.accept.coverage + self.reject.coverage

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "target_precision": self.target_precision, "n": self.n,
            "n_positive": self.n_positive, "n_negative": self.n_negative,
            "calibrator": self.calibrator.to_dict() if self.calibrator else None,
            "accept": self.accept.to_dict(), "reject": self.reject.to_dict(), "agreement": self.agreement,
            "needed_positive": self.needed_positive, "needed_negative": self.needed_negative,
            "more_verdicts_needed": self.more_verdicts_needed, "reason": self.reason,
            "verifier_version": self.verifier_version, "task_kind": self.task_kind,
            "coverage": self.coverage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationResult:
        return cls(
            method=data["method"], target_precision=data["target_precision"], n=data["n"],
            n_positive=data["n_positive"], n_negative=data["n_negative"],
            calibrator=Calibrator.from_dict(data["calibrator"]) if data.get("calibrator") else None,
            accept=ThresholdChoice.from_dict(data["accept"]), reject=ThresholdChoice.from_dict(data["reject"]),
            agreement=data.get("agreement"), needed_positive=data["needed_positive"],
            needed_negative=data["needed_negative"], more_verdicts_needed=data["more_verdicts_needed"],
            reason=data.get("reason"), verifier_version=data.get("verifier_version"),
            task_kind=data.get("task_kind"),
        )


def _skipped(side: str, target: float, n: int, reason: str) -> ThresholdChoice:
    return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)


def calibrate_task(scores: Any, labels: Any, target_precision: float = 0.95, method: str = ISOTONIC,
                   min_support: int = DEFAULT_MIN_SUPPORT, *, ai_labels: Sequence[Any] | None = None,
                   verifier_version: str | None = None, task_kind: str | None = None,
                   z: float = Z_95, min_probability: float = 0.5) -> CalibrationResult:
    """Fit a calibrator on (score, human label) pairs and choose the accept and reject thresholds on
    the calibrated probability at ``target_precision``.

    ``labels``: the human verdicts, 1 = accept (mask correct / pair exhaustive). ``ai_labels``: the
    AI's own answers (argmax) as 0/1 for the agreement figure; by default ``score ≥ 0.5``.
    With too few verdicts on a side its threshold is None and ``reason`` says how many more
    human verdicts are needed.

    ``min_probability``: the accept threshold is never below it and the reject threshold never above
    ``1 − min_probability``. The precision target holds for the auto-decided *set*; where the base
    rate alone exceeds the target (pairs without masks are ~98% negatives) the set criterion
    would also auto-accept items the calibrated model itself thinks are more likely wrong; the
    floor (default 0.5: never against the calibrated odds) keeps those for humans.
    """
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must lie in [0, 1], got {min_probability}")
    target = _check_target(target_precision)
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    s = _as_scores(scores)
    y = _as_labels(labels, s.size)
    n = int(s.size)
    n_pos = int(y.sum())
    n_neg = n - n_pos
    required = max(min_sample_size(target, z), int(min_support))
    need_pos = max(0, required - n_pos)
    need_neg = max(0, required - n_neg)

    if ai_labels is not None:
        ai = _as_labels(ai_labels, n)
    else:
        ai = s >= 0.5
    agreement = float(np.mean(ai == y)) if n else None

    # Estimated further verdicts before at least one side can pass (at the observed base rate).
    if need_pos == 0 or need_neg == 0:
        more = 0
    elif n == 0:
        more = required
    else:
        estimates = [math.ceil(need / (count / n)) for need, count in ((need_pos, n_pos), (need_neg, n_neg))
                     if count > 0]
        more = min(estimates) if estimates else required
    calibrator = fit_calibrator(s, y, method) if n_pos and n_neg else None
    probs = calibrator.calibrate_many(s) if calibrator is not None else s

    def side_choice(side: str, need: int, have: int, what: str) -> ThresholdChoice:
        if need:
            return _skipped(side, target, n, f"{side}: {have} {what} human verdicts, {required} needed for a "
                                             f"95% lower bound ≥ {_fmt(target)}: {need} more")
        if calibrator is None:
            return _skipped(side, target, n, f"{side}: verdicts of only one class, nothing to calibrate")
        if side == ACCEPT_SIDE:
            return choose_threshold(probs, y, target, min_support, z=z, min_threshold=min_probability)
        return choose_reject_threshold(probs, y, target, min_support, z=z, max_threshold=1.0 - min_probability)

    accept = side_choice(ACCEPT_SIDE, need_pos, n_pos, "positive")
    reject = side_choice(REJECT_SIDE, need_neg, n_neg, "negative")
    if accept.passed and reject.passed and reject.threshold >= accept.threshold:  # type: ignore[operator]
        reject = _skipped(REJECT_SIDE, target, n, f"reject threshold {_fmt(reject.threshold, 4)} would overlap "
                                                  f"the accept threshold {_fmt(accept.threshold, 4)}; dropped")
    reasons = [c.reason for c in (accept, reject) if not c.passed]
    reason = None
    if reasons:
        reason = "; ".join(reasons)
        if not accept.passed and not reject.passed and more:
            reason = (f"too few human verdicts: about {more} more needed before any threshold can pass "
                      f"({reason})")
    return CalibrationResult(
        method=method, target_precision=target, n=n, n_positive=n_pos, n_negative=n_neg,
        calibrator=calibrator, accept=accept, reject=reject, agreement=agreement, needed_positive=need_pos,
        needed_negative=need_neg, more_verdicts_needed=more, reason=reason,
        verifier_version=verifier_version, task_kind=task_kind,
    )
