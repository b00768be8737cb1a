"""Calibrators: monotone maps from a raw verifier score to P(a human accepts), fitted by isotonic
regression (pool-adjacent-violators) or Platt scaling (a logistic curve fitted by Newton's method)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.values import FloatArray, as_labels, as_scores

ISOTONIC = "isotonic"
PLATT = "platt"
METHODS = (ISOTONIC, PLATT)


def _sigmoid(z: FloatArray) -> FloatArray:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


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
            if any(x2 <= x1 for x1, x2 in zip(self.x, self.x[1:], strict=False)):
                raise ValueError("isotonic x points must be strictly increasing")
            if any(y2 < y1 for y1, y2 in zip(self.y, self.y[1:], strict=False)):
                raise ValueError("isotonic y values must be non-decreasing")
            if any(not 0.0 <= v <= 1.0 for v in self.y):
                raise ValueError("isotonic y values must lie in [0, 1]")
        elif self.method == PLATT:
            if self.a is None or self.b is None or not (math.isfinite(self.a) and math.isfinite(self.b)):
                raise ValueError("a Platt calibrator needs finite a and b")
        else:
            raise ValueError(f"unknown calibration method {self.method!r}; expected one of {METHODS}")

    def _platt(self) -> tuple[float, float]:
        if self.a is None or self.b is None:  # __post_init__ refuses a Platt calibrator without them
            raise ValueError("a Platt calibrator needs finite a and b")
        return self.a, self.b

    def calibrate_many(self, scores: npt.ArrayLike) -> FloatArray:
        s = as_scores(scores)
        if self.method == ISOTONIC:
            clipped: FloatArray = np.clip(np.interp(s, np.asarray(self.x), np.asarray(self.y)), 0.0, 1.0)
            return clipped
        a, b = self._platt()
        return _sigmoid(float(a) * s + float(b))

    def calibrate(self, score: float) -> float:
        return float(self.calibrate_many([score])[0])

    def to_dict(self) -> dict[str, Any]:
        if self.method == ISOTONIC:
            return {"method": ISOTONIC, "x": [float(v) for v in self.x],
                    "y": [float(v) for v in self.y], "n": self.n}
        a, b = self._platt()
        return {"method": PLATT, "a": float(a), "b": float(b), "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        method = data["method"]
        if method == ISOTONIC:
            return cls(method, x=tuple(float(v) for v in data["x"]), y=tuple(float(v) for v in data["y"]),
                       n=int(data.get("n", 0)))
        return cls(method, a=float(data["a"]), b=float(data["b"]), n=int(data.get("n", 0)))


def fit_isotonic(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Calibrator:
    """Isotonic (non-decreasing) regression of the labels on the scores by pool-adjacent-violators.

    Equal scores are pooled first; each pooled block keeps its smallest and largest score as
    interpolation points. The fit minimises the squared error among all monotone maps and its
    values are averages of 0/1 labels, hence in [0, 1].
    """
    s = as_scores(scores)
    y = as_labels(labels, s.size).astype(np.float64)
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
    for bs, bw, lo, hi in zip(blk_sum, blk_w, blk_lo, blk_hi, strict=True):
        value = min(1.0, max(0.0, bs / bw))
        for idx in (lo, hi) if hi != lo else (lo,):
            px.append(float(xs[idx]))
            py.append(value)
    return Calibrator(ISOTONIC, x=tuple(px), y=tuple(py), n=int(s.size))


def fit_platt(scores: npt.ArrayLike, labels: npt.ArrayLike, *, prior_correction: bool = True, max_iter: int = 100,
              tol: float = 1e-10) -> Calibrator:
    """Platt scaling: ``P = sigmoid(a·score + b)`` by maximum likelihood (Newton with step halving).

    With ``prior_correction`` (Platt, 1999) the 0/1 targets become ``(N₊+1)/(N₊+2)`` and
    ``1/(N₋+2)``, which keeps the fit finite on separable data and changes little otherwise.
    """
    s = as_scores(scores)
    y = as_labels(labels, s.size)
    if s.size == 0:
        raise ValueError("cannot calibrate on zero items")
    n_pos = int(y.sum())
    n_neg = int(s.size - n_pos)
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0)) if prior_correction else y.astype(np.float64)
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


def fit_calibrator(scores: npt.ArrayLike, labels: npt.ArrayLike, method: str = ISOTONIC) -> Calibrator:
    if method == ISOTONIC:
        return fit_isotonic(scores, labels)
    if method == PLATT:
        return fit_platt(scores, labels)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
