"""Calibration of one (verifier version, task kind): the calibrator, both thresholds on the
calibrated probability, and — with too few verdicts — how many more a person must give.

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

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.calibrators import ISOTONIC, METHODS, Calibrator, fit_calibrator
from engine.domain.calibration.intervals import Z_95, min_sample_size
from engine.domain.calibration.thresholds import (
    ACCEPT_SIDE,
    DEFAULT_MIN_SUPPORT,
    REJECT_SIDE,
    ThresholdChoice,
    choose_reject_threshold,
    expected_final_precision,
    search_upper_set,
    skipped,
)
from engine.domain.calibration.values import (
    BoolArray,
    FloatArray,
    as_labels,
    as_scores,
    check_error,
    check_target,
    fmt,
)


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


def final_floor(human_error: float | None, all_human: float | None,
                max_final_drop: float | None) -> tuple[float, float] | None:
    """(human error, floor) of the final-label check, or None without one: the accept side must keep
    the estimated final precision at or above the all-human estimate minus ``max_final_drop``."""
    if max_final_drop is None or all_human is None or human_error is None:
        return None
    return float(human_error), all_human - float(max_final_drop)


def _more_verdicts(n: int, need_pos: int, need_neg: int, n_pos: int, n_neg: int, required: int) -> int:
    """Estimated further verdicts before at least one side can pass (at the observed base rate)."""
    if need_pos == 0 or need_neg == 0:
        return 0
    if n == 0:
        return required
    estimates = [math.ceil(need / (count / n)) for need, count in ((need_pos, n_pos), (need_neg, n_neg))
                 if count > 0]
    return min(estimates) if estimates else required


def _check_options(target_precision: float, method: str, min_probability: float, human_error: float | None,
                   max_final_drop: float | None) -> float:
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must lie in [0, 1], got {min_probability}")
    if max_final_drop is not None and (human_error is None or not 0.0 <= max_final_drop < 1.0):
        raise ValueError("max_final_drop needs human_error and must lie in [0, 1)")
    if human_error is not None:
        check_error(human_error)
    target = check_target(target_precision)
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    return target


def _missing_reason(accept: ThresholdChoice, reject: ThresholdChoice, more: int) -> str | None:
    reasons = [c.reason for c in (accept, reject) if not c.passed]
    if not reasons:
        return None
    reason = "; ".join(reasons)
    if not accept.passed and not reject.passed and more:
        reason = f"too few human verdicts: about {more} more needed before any threshold can pass ({reason})"
    return reason


@dataclass(frozen=True)
class _SideSearch:
    """The threshold search of one side on a calibrated sample, or why there is none."""

    probs: FloatArray
    y: BoolArray
    calibrated: bool  # False: verdicts of one class only, no calibrator
    target: float
    required: int  # verdicts a side needs before its threshold can pass
    min_support: int
    z: float
    min_probability: float
    final: tuple[float, float] | None  # the final-label check of the accept side

    def choose(self, side: str, need: int, have: int, what: str) -> ThresholdChoice:
        target, n = self.target, int(self.probs.size)
        if need:
            return skipped(side, target, n, f"{side}: {have} {what} human verdicts, {self.required} needed for a "
                                            f"95% lower bound ≥ {fmt(target)}: {need} more")
        if not self.calibrated:
            return skipped(side, target, n, f"{side}: verdicts of only one class, nothing to calibrate")
        if side == ACCEPT_SIDE:
            return search_upper_set(self.probs, self.y, target, self.min_support, self.z, ACCEPT_SIDE, 1.0,
                                    self.min_probability, self.final)
        return choose_reject_threshold(self.probs, self.y, target, self.min_support, z=self.z,
                                       max_threshold=1.0 - self.min_probability)


def calibrate_task(scores: npt.ArrayLike, labels: npt.ArrayLike, target_precision: float = 0.95,
                   method: str = ISOTONIC, min_support: int = DEFAULT_MIN_SUPPORT, *,
                   ai_labels: Sequence[Any] | None = None, verifier_version: str | None = None,
                   task_kind: str | None = None, z: float = Z_95, min_probability: float = 0.5,
                   human_error: float | None = None, max_final_drop: float | None = None) -> CalibrationResult:
    """Fit a calibrator on (score, human label) pairs and choose the accept and reject thresholds on
    the calibrated probability at ``target_precision``.

    ``labels``: the human verdicts, 1 = accept (mask correct / pair exhaustive). ``ai_labels``: the
    AI's own answers (argmax) as 0/1 for the agreement figure; by default ``score ≥ 0.5``.
    With too few verdicts on a side its threshold is None and ``reason`` says how many more
    human verdicts are needed. ``min_probability``, ``human_error`` and ``max_final_drop``: the
    module's docstring.
    """
    target = _check_options(target_precision, method, min_probability, human_error, max_final_drop)
    s = as_scores(scores)
    y = as_labels(labels, s.size)
    n, n_pos = int(s.size), int(y.sum())
    n_neg = n - n_pos
    required = max(min_sample_size(target, z), int(min_support))
    need_pos, need_neg = max(0, required - n_pos), max(0, required - n_neg)

    ai = as_labels(ai_labels, n) if ai_labels is not None else s >= 0.5
    agreement = float(np.mean(ai == y)) if n else None
    more = _more_verdicts(n, need_pos, need_neg, n_pos, n_neg, required)
    calibrator = fit_calibrator(s, y, method) if n_pos and n_neg else None
    probs = calibrator.calibrate_many(s) if calibrator is not None else s
    all_human = expected_final_precision(y, np.zeros(n, bool), human_error) if human_error is not None else None
    search = _SideSearch(probs, y, calibrator is not None, target, required, int(min_support), z, min_probability,
                         final_floor(human_error, all_human, max_final_drop))
    accept = search.choose(ACCEPT_SIDE, need_pos, n_pos, "positive")
    reject = search.choose(REJECT_SIDE, need_neg, n_neg, "negative")
    if accept.threshold is not None and reject.threshold is not None and reject.threshold >= accept.threshold:
        reject = skipped(REJECT_SIDE, target, n, f"reject threshold {fmt(reject.threshold, 4)} would overlap "
                                                 f"the accept threshold {fmt(accept.threshold, 4)}; dropped")
    final_precision = None
    if human_error is not None and n:
        final_precision = expected_final_precision(
            y, probs >= accept.threshold if accept.threshold is not None else np.zeros(n, bool), human_error,
            probs <= reject.threshold if reject.threshold is not None else None)
    return CalibrationResult(
        method=method, target_precision=target, n=n, n_positive=n_pos, n_negative=n_neg,
        calibrator=calibrator, accept=accept, reject=reject, agreement=agreement, needed_positive=need_pos,
        needed_negative=need_neg, more_verdicts_needed=more, reason=_missing_reason(accept, reject, more),
        verifier_version=verifier_version, task_kind=task_kind, human_error=human_error,
        max_final_drop=max_final_drop, final_precision=final_precision, all_human_precision=all_human,
    )
