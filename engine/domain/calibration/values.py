"""What the calibration modules share: the array types, the checks of their inputs (scores, 0/1
labels, a precision target, a human error rate) and the short number format of their reasons."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


def as_scores(scores: npt.ArrayLike) -> FloatArray:
    """The scores as a flat float array; refuses NaN and infinities."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError("scores must be finite numbers")
    return arr


def as_labels(labels: npt.ArrayLike, n: int) -> BoolArray:
    """``n`` labels (0/1 or booleans) as a flat boolean array."""
    raw = np.asarray(labels).reshape(-1)
    if raw.size != n:
        raise ValueError(f"{n} scores but {raw.size} labels")
    if raw.dtype == bool:
        return raw
    arr = raw.astype(np.float64)
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("labels must be 0/1 or booleans")
    ones: BoolArray = arr == 1
    return ones


def check_target(target_precision: float) -> float:
    target = float(target_precision)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must lie strictly between 0 and 1, got {target_precision}")
    return target


def check_error(human_error: float) -> float:
    e = float(human_error)
    if not (math.isfinite(e) and 0.0 <= e < 0.5):
        raise ValueError(f"human error rate must lie in [0, 0.5), got {human_error!r}")
    return e


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a reason's text: at most ``digits`` decimals, no trailing zeros; ``-`` for None."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
