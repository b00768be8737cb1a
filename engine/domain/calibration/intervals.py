"""Confidence bounds of a binomial proportion (Wilson score interval, Clopper–Pearson upper bound)
and the sample sizes they imply for a precision target."""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.values import FloatArray, check_target

Z_95 = 1.959963984540054  # two-sided 95% normal quantile (the "1.96")


@overload
def wilson_interval(successes: float | np.number[Any], n: float | np.number[Any],
                    z: float = Z_95) -> tuple[float, float]: ...
@overload
def wilson_interval(successes: npt.NDArray[np.generic], n: npt.ArrayLike,
                    z: float = Z_95) -> tuple[FloatArray, FloatArray]: ...
def wilson_interval(successes: npt.ArrayLike, n: npt.ArrayLike,
                    z: float = Z_95) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
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
    target = check_target(target_precision)
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
        return 1.0 - float((1.0 - c) ** (1.0 / m))

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
