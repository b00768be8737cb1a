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
from dataclasses import dataclass, replace
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


def clopper_pearson_upper(successes: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial proportion (exact, Clopper–Pearson): the ``p``
    at which ``P(Binomial(n, p) ≤ successes) = 1 − confidence``. ``successes = 0`` gives
    ``1 − (1 − confidence)^(1/n)``; ``n = 0`` gives 1."""
    k, m, c = int(successes), int(n), float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if k < 0 or k > m:
        raise ValueError("successes must lie between 0 and n")
    if k == m:
        return 1.0
    if k == 0:
        return 1.0 - (1.0 - c) ** (1.0 / m)

    def cdf(p: float) -> float:
        log_p, log_q = math.log(p), math.log1p(-p)
        terms = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) + i * log_p + (m - i) * log_q
                 for i in range(k + 1)]
        top = max(terms)
        return math.exp(top) * sum(math.exp(t - top) for t in terms)

    lo, hi = k / m, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1.0 - c else (lo, mid)
    return hi


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


@dataclass(frozen=True)
class _Cuts:
    """The candidate sets {sign·score ≥ u} of one side, smallest first: one cut after each run of
    equal scores (ties stay together)."""

    v: np.ndarray  # sign·score at the cut
    support: np.ndarray  # items in the set
    hits: np.ndarray  # good items in the set (the side's label is right)
    low: np.ndarray  # 95% Wilson interval of hits / support
    high: np.ndarray
    n: int  # items searched
    n_good: int

    @classmethod
    def of(cls, s: np.ndarray, good: np.ndarray, sign: float, z: float) -> _Cuts:
        v = sign * s
        order = np.argsort(-v, kind="stable")
        v_sorted = v[order]
        cum_good = np.cumsum(good[order])
        last = np.flatnonzero(np.append(v_sorted[1:] != v_sorted[:-1], True))
        support = last + 1
        hits = cum_good[last]
        low, high = wilson_interval(hits, support, z)
        return cls(v_sorted[last], support, hits, np.atleast_1d(low), np.atleast_1d(high), int(s.size),
                   int(good.sum()))


def final_precision_curve(hits: Any, support: Any, n_good: int, n: int, human_error: float) -> np.ndarray:
    """Estimated precision of the final label-1 set when the ``support`` items of a cut (``hits`` of
    them right) are decided automatically and a person with error rate ``human_error`` labels the
    other items: ``(hits + (1 − e)·P′) / (support + (1 − e)·P′ + e·N′)`` with ``P′``/``N′`` the
    positives/negatives left to people. ``support = 0`` gives the all-human precision."""
    e = _check_error(human_error)
    k = np.asarray(hits, dtype=np.float64)
    m = np.asarray(support, dtype=np.float64)
    rest_pos = n_good - k
    rest_neg = (n - n_good) - (m - k)
    num = k + (1.0 - e) * rest_pos
    den = m + (1.0 - e) * rest_pos + e * rest_neg
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def expected_final_precision(labels: Any, auto_accepted: Any, human_error: float,
                             auto_rejected: Any | None = None) -> float | None:
    """The final precision of the label-1 set (accepted masks; negative labels for pairs without
    masks) on a labelled sample: items in ``auto_accepted`` keep the automatic label, items in
    ``auto_rejected`` are dropped, a person with error ``human_error`` labels the rest. Pass no
    automatic decisions for the all-human figure. None when nothing ends with label 1."""
    y = _as_labels(labels, np.asarray(labels).size)
    acc = np.asarray(auto_accepted, dtype=bool).reshape(-1)
    rej = np.zeros_like(acc) if auto_rejected is None else np.asarray(auto_rejected, dtype=bool).reshape(-1)
    if acc.size != y.size or rej.size != y.size:
        raise ValueError("labels and decisions must have the same length")
    if np.any(acc & rej):
        raise ValueError("an item cannot be both auto-accepted and auto-rejected")
    e = _check_error(human_error)
    pile = ~acc & ~rej
    num = float(y[acc].sum() + (1.0 - e) * y[pile].sum())
    den = float(acc.sum() + (1.0 - e) * y[pile].sum() + e * (~y[pile]).sum())
    return num / den if den > 0 else None


def _check_error(human_error: float) -> float:
    e = float(human_error)
    if not (math.isfinite(e) and 0.0 <= e < 0.5):
        raise ValueError(f"human error rate must lie in [0, 0.5), got {human_error!r}")
    return e


def _choice_at(cuts: _Cuts, idx: int, side: str, target: float, sign: float, reason: str = "") -> ThresholdChoice:
    k, m = int(cuts.hits[idx]), int(cuts.support[idx])
    threshold = sign * float(cuts.v[idx])
    symbol = "≥" if side == ACCEPT_SIDE else "≤"
    text = (f"{side} when score {symbol} {_fmt(threshold, 4)}: precision {_fmt(k / m)} ({k}/{m}), "
            f"95% Wilson [{_fmt(float(cuts.low[idx]))}, {_fmt(float(cuts.high[idx]))}] ≥ target {_fmt(target)}, "
            f"coverage {_fmt(m / cuts.n)}") + reason
    return ThresholdChoice(side, target, threshold, m / cuts.n, k / m, float(cuts.low[idx]), float(cuts.high[idx]),
                           m, cuts.n, text)


def _passing(cuts: _Cuts, target: float, min_support: int, sign: float, bound: float | None,
             final: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(ok, allowed by the bound, final precision per cut or None) of each cut."""
    allowed = np.ones(cuts.v.size, bool) if bound is None else cuts.v >= sign * bound
    ok = (cuts.low >= target) & (cuts.support >= min_support) & allowed
    curve = None
    if final is not None:
        # the auto-decided set at its Wilson lower bound: the same confidence as the target
        curve = final_precision_curve(cuts.low * cuts.support, cuts.support, cuts.n_good, cuts.n, final[0])
        ok &= curve >= final[1] - 1e-12
    return ok, allowed, curve


def _search_upper_set(s: np.ndarray, good: np.ndarray, target: float, min_support: int, z: float,
                      side: str, sign: float, bound: float | None,
                      final: tuple[float, float] | None = None) -> ThresholdChoice:
    """Largest set {sign·score ≥ u} (u a score value, sign·u ≥ sign·bound) whose Wilson lower bound
    reaches ``target``. ``final`` = (human error, floor): the set must also keep the estimated final
    precision (:func:`final_precision_curve`) at or above the floor."""
    n = int(s.size)
    symbol = "≥" if side == ACCEPT_SIDE else "≤"
    if n == 0:
        return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, 0, "no items")
    cuts = _Cuts.of(s, good, sign, z)
    ok, allowed, curve = _passing(cuts, target, min_support, sign, bound, final)
    if not ok.any():
        if not allowed.any():
            return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n,
                                   f"no {side} threshold: no score {symbol} {_fmt(bound, 4)}")
        wilson_ok = (cuts.low >= target) & (cuts.support >= min_support) & allowed
        if curve is not None and final is not None and wilson_ok.any():
            best = int(np.flatnonzero(wilson_ok)[np.argmax(curve[wilson_ok])])
            reason = (f"no {side} threshold keeps the estimated final precision ≥ {_fmt(final[1])} "
                      f"(all-human estimate minus the allowed drop): best is score {symbol} "
                      f"{_fmt(sign * float(cuts.v[best]), 4)} with {_fmt(float(curve[best]))}")
            return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)
        best = int(np.flatnonzero(allowed)[np.argmax(cuts.low[allowed])])
        needed = needed_for_target(int(cuts.hits[best]), target, z=z, min_support=min_support)
        reason = (f"no {side} threshold reaches precision {_fmt(target)} at 95% confidence: best is "
                  f"score {symbol} {_fmt(sign * float(cuts.v[best]), 4)} with precision "
                  f"{_fmt(float(cuts.hits[best] / cuts.support[best]))} "
                  f"({int(cuts.hits[best])}/{int(cuts.support[best])}, "
                  f"Wilson lower bound {_fmt(float(cuts.low[best]))})")
        if needed:
            reason += f"; even a perfect sample needs {needed} more correct verdicts"
        return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)
    idx = int(np.flatnonzero(ok)[-1])  # the largest passing set = the lowest accept threshold
    extra = ""
    if curve is not None and final is not None:
        extra = f", estimated final precision {_fmt(float(curve[idx]))} ≥ {_fmt(final[1])}"
    return _choice_at(cuts, idx, side, target, sign, extra)


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
    # Final-label check (``human_error`` given): the estimated precision of the final label-1 set
    # (auto-accepted + what people accept of the rest) with these thresholds and with none
    # (all-human), and the drop from all-human that the accept threshold was allowed.
    human_error: float | None = None
    max_final_drop: float | None = None
    final_precision: float | None = None
    all_human_precision: float | None = None

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
            "coverage": self.coverage, "human_error": self.human_error, "max_final_drop": self.max_final_drop,
            "final_precision": self.final_precision, "all_human_precision": self.all_human_precision,
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
            task_kind=data.get("task_kind"), human_error=data.get("human_error"),
            max_final_drop=data.get("max_final_drop"), final_precision=data.get("final_precision"),
            all_human_precision=data.get("all_human_precision"),
        )


def _skipped(side: str, target: float, n: int, reason: str) -> ThresholdChoice:
    return ThresholdChoice(side, target, None, 0.0, None, None, None, 0, n, reason)


def calibrate_task(scores: Any, labels: Any, target_precision: float = 0.95, method: str = ISOTONIC,
                   min_support: int = DEFAULT_MIN_SUPPORT, *, ai_labels: Sequence[Any] | None = None,
                   verifier_version: str | None = None, task_kind: str | None = None,
                   z: float = Z_95, min_probability: float = 0.5, human_error: float | None = None,
                   max_final_drop: float | None = None) -> CalibrationResult:
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

    ``human_error`` (the annotators' error rate, e.g. measured on gold items) and ``max_final_drop``:
    the precision target holds for the auto-decided set, yet the final labels of the population
    (the auto-accepted items plus what people accept of the rest, whose share of right items
    falls as the best go automatically) can end less right than all-human. With both given, the
    accept threshold must also keep :func:`final_precision_curve` at or above the all-human estimate
    minus ``max_final_drop``. With ``human_error`` alone both estimates are only reported.
    """
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must lie in [0, 1], got {min_probability}")
    if max_final_drop is not None and (human_error is None or not 0.0 <= max_final_drop < 1.0):
        raise ValueError("max_final_drop needs human_error and must lie in [0, 1)")
    if human_error is not None:
        _check_error(human_error)
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
    all_human = expected_final_precision(y, np.zeros(n, bool), human_error) if human_error is not None else None
    final = None
    if max_final_drop is not None and all_human is not None:
        final = (float(human_error), all_human - float(max_final_drop))  # type: ignore[arg-type]

    def side_choice(side: str, need: int, have: int, what: str) -> ThresholdChoice:
        if need:
            return _skipped(side, target, n, f"{side}: {have} {what} human verdicts, {required} needed for a "
                                             f"95% lower bound ≥ {_fmt(target)}: {need} more")
        if calibrator is None:
            return _skipped(side, target, n, f"{side}: verdicts of only one class, nothing to calibrate")
        if side == ACCEPT_SIDE:
            return _search_upper_set(probs, y, target, int(min_support), z, ACCEPT_SIDE, 1.0, min_probability,
                                     final)
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
    final_precision = None
    if human_error is not None and n:
        final_precision = expected_final_precision(
            y, probs >= accept.threshold if accept.passed else np.zeros(n, bool), human_error,
            probs <= reject.threshold if reject.passed else None)
    return CalibrationResult(
        method=method, target_precision=target, n=n, n_positive=n_pos, n_negative=n_neg,
        calibrator=calibrator, accept=accept, reject=reject, agreement=agreement, needed_positive=need_pos,
        needed_negative=need_neg, more_verdicts_needed=more, reason=reason,
        verifier_version=verifier_version, task_kind=task_kind, human_error=human_error,
        max_final_drop=max_final_drop, final_precision=final_precision, all_human_precision=all_human,
    )


# ============================================================================ pairs: one budget for the positives
@dataclass(frozen=True)
class PairCalibration:
    """The exhaustivity verifier calibrated in its two scopes — pairs with surviving masks
    (``with_masks``: accept = exhaustive) and pairs without (``presence``: accept = a negative
    label) — under one budget for the positive pairs.

    ``positive_loss``: the estimated share of positive pairs (the phrase is present) that the two
    accept thresholds label wrongly — present pairs without masks made negatives, incomplete pairs
    made exhaustive — on the (weighted) calibration sample, ``(lost + 1) / (positives + 1)`` (0
    without any auto-accept; see :func:`calibrate_pairs`); ``unconstrained_loss``: the same with
    each scope's own thresholds, before the budget. ``positives``: weighted positive pairs seen.

    Final-label check of the positive pairs (``positive_final_drop`` given): ``loss_budget`` is the
    loss the check allows — ``(positive_final_drop + reject_credit) / (1 − e)²`` — where
    ``reject_credit`` is the (conservative) share of positive pairs the reject sides make more
    right than all-human by sending them straight to correction; ``positive_final`` and
    ``positive_all_human`` estimate the share of positive pairs whose final label is right with
    the chosen thresholds and with none (people with error ``e`` check and correct every pair).
    """

    with_masks: CalibrationResult
    presence: CalibrationResult
    max_positive_loss: float | None
    positive_loss: float | None
    unconstrained_loss: float | None
    positives: float
    reason: str | None = None
    loss_confidence: float | None = None  # set: the loss is a Clopper–Pearson upper bound, not a mean
    positive_final_drop: float | None = None
    reject_credit: float | None = None
    loss_budget: float | None = None  # the loss allowed: max_positive_loss and/or the final-label check
    positive_final: float | None = None
    positive_all_human: float | None = None

    @property
    def budget_applied(self) -> bool:
        """True when the budget moved an accept threshold above the scope's own."""
        return self.reason is not None

    def to_dict(self) -> dict[str, Any]:
        return {"with_masks": self.with_masks.to_dict(), "presence": self.presence.to_dict(),
                "max_positive_loss": self.max_positive_loss, "positive_loss": self.positive_loss,
                "unconstrained_loss": self.unconstrained_loss, "positives": self.positives, "reason": self.reason,
                "loss_confidence": self.loss_confidence, "positive_final_drop": self.positive_final_drop,
                "reject_credit": self.reject_credit, "loss_budget": self.loss_budget,
                "positive_final": self.positive_final, "positive_all_human": self.positive_all_human}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairCalibration:
        return cls(with_masks=CalibrationResult.from_dict(data["with_masks"]),
                   presence=CalibrationResult.from_dict(data["presence"]),
                   max_positive_loss=data.get("max_positive_loss"), positive_loss=data.get("positive_loss"),
                   unconstrained_loss=data.get("unconstrained_loss"), positives=float(data.get("positives", 0.0)),
                   reason=data.get("reason"), loss_confidence=data.get("loss_confidence"),
                   positive_final_drop=data.get("positive_final_drop"), reject_credit=data.get("reject_credit"),
                   loss_budget=data.get("loss_budget"), positive_final=data.get("positive_final"),
                   positive_all_human=data.get("positive_all_human"))


@dataclass(frozen=True)
class _ScopeOptions:
    """The accept cuts of one scope that pass on their own, with their weighted loss and gain."""

    cuts: _Cuts | None
    index: np.ndarray  # cut indices that pass (smallest set first)
    loss: np.ndarray  # weighted positive pairs the set labels wrongly, per passing cut
    gain: np.ndarray  # weighted gain (seconds saved) per passing cut


def _scope_options(result: CalibrationResult, probs: np.ndarray, y: np.ndarray, lossy: np.ndarray,
                   weight: float, gain: float, min_support: int, z: float, min_probability: float,
                   human_error: float | None, max_final_drop: float | None) -> _ScopeOptions:
    empty = _ScopeOptions(None, np.zeros(0, int), np.zeros(0), np.zeros(0))
    if result.calibrator is None or result.needed_positive or not y.size:
        return empty
    cuts = _Cuts.of(probs, y, 1.0, z)
    final = None
    if max_final_drop is not None and result.all_human_precision is not None:
        final = (float(human_error), result.all_human_precision - float(max_final_drop))  # type: ignore[arg-type]
    ok, _, _ = _passing(cuts, result.target_precision, min_support, 1.0, min_probability, final)
    index = np.flatnonzero(ok)
    order = np.argsort(-probs, kind="stable")
    cum_loss = np.cumsum(lossy[order])[cuts.support - 1]
    return _ScopeOptions(cuts, index, weight * cum_loss[index].astype(np.float64),
                         weight * gain * cuts.support[index].astype(np.float64))


def _with_accept(result: CalibrationResult, accept: ThresholdChoice, probs: np.ndarray,
                 y: np.ndarray) -> CalibrationResult:
    reasons = [c.reason for c in (accept, result.reject) if not c.passed]
    final_precision = result.final_precision
    if result.human_error is not None and y.size:
        final_precision = expected_final_precision(
            y, probs >= accept.threshold if accept.passed else np.zeros(y.size, bool), result.human_error,
            probs <= result.reject.threshold if result.reject.passed else None)
    return replace(result, accept=accept, reason="; ".join(reasons) if reasons else None,
                   final_precision=final_precision)


def calibrate_pairs(with_masks_scores: Any, with_masks_labels: Any, presence_scores: Any, presence_labels: Any,
                    target_precision: float = 0.95, method: str = ISOTONIC,
                    min_support: int = DEFAULT_MIN_SUPPORT, *, max_positive_loss: float | None = None,
                    with_masks_present: Any | None = None, presence_present: Any | None = None,
                    weights: tuple[float, float] = (1.0, 1.0), gains: tuple[float, float] = (1.0, 1.0),
                    human_error: float | None = None, max_final_drop: float | None = None,
                    with_masks_ai_labels: Sequence[Any] | None = None,
                    presence_ai_labels: Sequence[Any] | None = None, verifier_version: str | None = None,
                    task_kind: str | None = None, z: float = Z_95, min_probability: float = 0.5,
                    loss_confidence: float | None = None,
                    positive_final_drop: float | None = None) -> PairCalibration:
    """Calibrate the exhaustivity verifier for pairs with masks and pairs without (presence), each
    with :func:`calibrate_task`, then lower the two accept sides jointly until the positive pairs
    keep their budget.

    Why: a negative label at 98% precision looks safe, but negatives outnumber the present pairs
    without masks ~50 to 1, so its 2% errors are most of those positives: the positive pairs — the
    training signal that matters most — pay for the precision of the plentiful negatives. The
    budget bounds what the accept sides take from them: ``loss = (weighted present pairs without
    masks auto-labelled negative + weighted incomplete pairs auto-labelled exhaustive) / weighted
    positive pairs ≤ max_positive_loss``. Among the cut pairs that pass each scope's own tests
    (Wilson bound, support, probability floor, final-precision drop), the one with the largest
    weighted gain (``weights[i] · gains[i] · items auto-accepted``) within the budget is chosen;
    reject sides are each scope's own (they send pairs to a person, they cannot lose a positive).

    Scope order in ``weights`` / ``gains``: (with masks, presence). ``weights``: production pairs
    per sampled pair of the scope (1, 1 for a uniform sample; a stratified sample passes its
    inverse sampling rates). ``with_masks_present``: per pair with masks, whether the phrase is
    present (default all; a person's "not present" makes it False); ``presence_present``: default
    ``label == 0`` (nothing missing with no mask means absent).

    The loss estimate is rank-based (split-conformal): ``(lost + 1) / (positives + 1)`` in weighted
    pairs (the +1 in units of the largest weight). A cut just above the k-th sampled positive
    loses a new positive with probability at most ``k / (positives + 1)`` whatever the score
    distributions, so this keeps the expected loss within the budget where the plain share
    ``lost / positives`` — taken at the deepest cut that fits — runs over it; no auto-accept at
    all loses nothing and is always allowed. A Wilson-style confidence bound would need thousands
    of present pairs without masks at these base rates. Label noise weighs on the presence scope
    (a wrong "present" is a phantom loss that shuts the gate): re-check its "present" labels
    (:mod:`bench.annotation_efficiency` does) and watch the audit of auto-negatives.
    ``max_positive_loss`` None: no budget, the per-scope thresholds stand (the loss is reported).

    ``loss_confidence`` (e.g. 0.9): hold the budget with that probability over calibration samples
    rather than on average: the loss is then the Clopper–Pearson upper bound of ``lost`` out of
    ``positives`` (counts in units of the largest weight), i.e. the ``confidence`` quantile of
    the Beta(lost + 1, positives − lost) that the conformal argument gives the loss. With ~240
    positive pairs in the sample and a 1% budget, 0.9 allows no lost positive at all.

    ``positive_final_drop`` (needs ``human_error`` e): the positive pairs as a population of final
    labels, like the others — the share of them whose final label is right may fall at most this
    far below all-human. All-human gets a complete pair right with 1 − e² (the check, else a
    correction that adds nothing) and an incomplete one with (1 − e)² (the check, then the
    correction). A lost pair (auto-accepted while instances are missing) costs (1 − e)²; a pair a
    reject side sends straight to correction ends right with 1 − e: e(1 − e) more than all-human
    when it is incomplete, e(1 − e) less when it is complete. The reject sides are the scopes'
    own; their credit is counted at their Wilson lower bound (incomplete present pairs at least
    ``low · |R|`` minus the sampled pairs that are not present, complete ones at most the rest; a
    scope whose present pairs all have label 0, the presence scope, is never charged). The loss
    may then reach ``(positive_final_drop + credit) / (1 − e)²`` — the credit in shares of the
    positive pairs, ``(positives + 1)`` as denominator like the loss — and the same joint choice
    keeps it (the smaller of it and ``max_positive_loss`` when both are given). The few complete
    pairs an exhaustive label makes more right (e² each) are not counted.
    """
    if positive_final_drop is not None:
        if human_error is None or not 0.0 <= positive_final_drop < 1.0:
            raise ValueError("positive_final_drop needs human_error and must lie in [0, 1)")
    if loss_confidence is not None and not 0.0 < loss_confidence < 1.0:
        raise ValueError(f"loss_confidence must lie strictly between 0 and 1, got {loss_confidence}")
    if max_positive_loss is not None and not 0.0 <= max_positive_loss < 1.0:
        raise ValueError(f"max_positive_loss must lie in [0, 1), got {max_positive_loss}")
    if len(weights) != 2 or len(gains) != 2 or any(not (math.isfinite(w) and w > 0) for w in (*weights, *gains)):
        raise ValueError("weights and gains: two positive numbers each (with masks, presence)")
    def scope(scores: Any, labels: Any, ai_labels: Sequence[Any] | None) -> CalibrationResult:
        return calibrate_task(scores, labels, target_precision, method, min_support, ai_labels=ai_labels,
                              verifier_version=verifier_version, task_kind=task_kind, z=z,
                              min_probability=min_probability, human_error=human_error,
                              max_final_drop=max_final_drop)

    results = [scope(with_masks_scores, with_masks_labels, with_masks_ai_labels),
               scope(presence_scores, presence_labels, presence_ai_labels)]
    scores = [_as_scores(with_masks_scores), _as_scores(presence_scores)]
    labels = [_as_labels(with_masks_labels, scores[0].size), _as_labels(presence_labels, scores[1].size)]
    present = [np.ones(scores[0].size, bool) if with_masks_present is None
               else _as_labels(with_masks_present, scores[0].size),
               ~labels[1] if presence_present is None else _as_labels(presence_present, scores[1].size)]
    probs = [r.calibrator.calibrate_many(s) if r.calibrator is not None else s for r, s in zip(results, scores)]
    lossy = [p & ~y for p, y in zip(present, labels)]
    positives = float(sum(w * p.sum() for w, p in zip(weights, present)))

    pad = max(weights)  # the conformal +1, in weighted pairs
    n_units = int(positives / pad + 1e-9)

    def estimate(lost: float) -> float:
        if loss_confidence is None:
            return (lost + pad) / (positives + pad)
        return clopper_pearson_upper(min(n_units, math.ceil(lost / pad - 1e-9)), n_units, loss_confidence)

    def loss_of(rs: list[CalibrationResult]) -> float:
        if not any(r.accept.passed for r in rs):
            return 0.0
        return estimate(sum(float(w * lz[pr >= r.accept_threshold].sum()) if r.accept.passed else 0.0
                            for r, pr, lz, w in zip(rs, probs, lossy, weights)))

    credit_share = None
    final_budget = None
    if positive_final_drop is not None:
        e = _check_error(human_error)  # type: ignore[arg-type]
        credit = sum(_reject_credit(r, pr, y, pz, w, e) for r, pr, y, pz, w in zip(results, probs, labels, present,
                                                                                   weights))
        denom = (positives + pad) if loss_confidence is None else positives
        credit_share = credit / denom if denom > 0 else 0.0
        final_budget = (positive_final_drop + credit_share) / (1.0 - e) ** 2 if denom > 0 else 0.0
    limits = [b for b in (max_positive_loss, final_budget) if b is not None]
    loss_budget = min(limits) if limits else None
    extra = {"positive_final_drop": positive_final_drop, "reject_credit": credit_share, "loss_budget": loss_budget}

    def finished(rs: list[CalibrationResult], loss: float, reason: str | None = None) -> PairCalibration:
        finals: tuple[float | None, float | None] = (None, None)
        if human_error is not None and positives > 0:
            finals = _positive_finals(rs, probs, labels, present, weights, human_error)
        return PairCalibration(rs[0], rs[1], max_positive_loss, loss, unconstrained, positives, reason,
                               loss_confidence, **extra, positive_final=finals[0], positive_all_human=finals[1])

    unconstrained = loss_of(results)
    if loss_budget is None or unconstrained <= loss_budget:
        return finished(results, unconstrained)

    # weighted lost pairs the sample may show (< 0: not even none)
    if loss_confidence is None:
        budget = loss_budget * (positives + pad) - pad + 1e-9
    else:
        allowed = -1
        while allowed < n_units and estimate(pad * (allowed + 1)) <= loss_budget:
            allowed += 1
        budget = pad * allowed + 1e-9 if allowed >= 0 else -1.0
    options = [_scope_options(r, pr, y, lz, w, g, int(min_support), z, min_probability, human_error,
                              max_final_drop)
               for r, pr, y, lz, w, g in zip(results, probs, labels, lossy, weights, gains)]
    a, b = options  # with masks, presence
    # every presence option (none first), then the deepest with-masks cut that fits what is left
    a_loss = np.concatenate([[0.0], a.loss])
    a_gain = np.concatenate([[0.0], a.gain])
    best = (0.0, -1, -1)  # no auto-accept at all: nothing lost
    for j, (b_loss, b_gain) in enumerate(zip(np.concatenate([[0.0], b.loss]), np.concatenate([[0.0], b.gain]))):
        if b_loss > budget or budget < 0:
            break
        i = int(np.searchsorted(a_loss, budget - b_loss, side="right")) - 1  # a_loss is non-decreasing
        total = float(a_gain[i] + b_gain)
        if total > best[0]:
            best = (total, i - 1, j - 1)
    _, ia, ib = best
    chosen: list[CalibrationResult] = []
    for result, opts, k, pr, y, name in zip(results, options, (ia, ib), probs, labels, ("with masks", "presence")):
        if k < 0 or opts.cuts is None:
            if not result.accept.passed:
                chosen.append(result)
                continue
            accept = _skipped(ACCEPT_SIDE, result.target_precision, result.n,
                              f"no accept threshold ({name}) within the positive-pair budget "
                              f"{_fmt(loss_budget)}: own threshold {_fmt(result.accept_threshold, 4)} "
                              f"would leave too little for the positives")
        else:
            accept = _choice_at(opts.cuts, int(opts.index[k]), ACCEPT_SIDE, result.target_precision, 1.0,
                                f"; raised from {_fmt(result.accept_threshold, 4)} for the positive-pair budget")
            if accept.threshold == result.accept_threshold:
                chosen.append(result)
                continue
        chosen.append(_with_accept(result, accept, pr, y))
    loss = loss_of(chosen)
    bound = "" if loss_confidence is None else f" (upper bound at confidence {_fmt(loss_confidence)})"
    why = ""
    if final_budget is not None and loss_budget == final_budget:
        why = (f" (the positive pairs' final labels at most {_fmt(positive_final_drop)} below all-human, "
               f"{_fmt(credit_share)} credited to the reject sides)")
    reason = (f"positive-pair budget {_fmt(loss_budget)}{why}: the scopes' own accept thresholds would label "
              f"{_fmt(unconstrained)} of the positive pairs wrongly{bound}; raised to keep {_fmt(loss)}")
    return finished(chosen, loss, reason)


def _reject_credit(result: CalibrationResult, probs: np.ndarray, labels: np.ndarray, present: np.ndarray,
                   weight: float, e: float) -> float:
    """Weighted positive pairs a scope's reject side makes right beyond all-human (may be < 0):
    e(1 − e) per incomplete present pair sent straight to correction, minus as much per complete
    one, counted at the reject set's Wilson lower bound (see :func:`calibrate_pairs`)."""
    if not result.reject.passed or result.reject.ci_low is None or not labels.size:
        return 0.0
    sent = probs <= result.reject.threshold
    size = float(sent.sum())
    good_low = float(result.reject.ci_low) * size  # label 0 (instances missing) at least
    not_present = float((sent & ~labels & ~present).sum())
    complete_high = (size - good_low) if bool((labels & present).any()) else 0.0
    return weight * e * (1.0 - e) * (max(0.0, good_low - not_present) - complete_high)


def _positive_finals(rs: list[CalibrationResult], probs: list[np.ndarray], labels: list[np.ndarray],
                     present: list[np.ndarray], weights: tuple[float, float],
                     e: float) -> tuple[float | None, float | None]:
    """(engine, all-human) estimates of the share of positive pairs whose final label is right:
    auto-accepted ones are right when complete, pairs sent straight to correction with 1 − e,
    checked ones with 1 − e² (complete) or (1 − e)² (instances missing)."""
    num = base = den = 0.0
    for r, pr, y, pz, w in zip(rs, probs, labels, present, weights):
        checked = np.where(y, 1.0 - e * e, (1.0 - e) ** 2)
        auto = pr >= r.accept_threshold if r.accept.passed else np.zeros(y.size, bool)
        sent = pr <= r.reject_threshold if r.reject.passed else np.zeros(y.size, bool)
        final = np.where(auto, y.astype(np.float64), np.where(sent, 1.0 - e, checked))
        num += w * float(final[pz].sum())
        base += w * float(checked[pz].sum())
        den += w * float(pz.sum())
    return (num / den, base / den) if den > 0 else (None, None)
