"""The positive pairs of the exhaustivity verifier's two scopes under automatic acceptance: each
scope's sample (:class:`PairScope`), the estimate of the share of positive pairs lost
(:class:`LossEstimate`), the budget that bounds it (:func:`loss_budget`) and the final-label
estimates (:func:`positive_finals`); :mod:`.pairs` chooses the thresholds with them.

The loss estimate is rank-based (split-conformal): ``(lost + 1) / (positives + 1)`` in weighted
pairs (the +1 in units of the largest weight). A cut just above the k-th sampled positive loses a
new positive with probability at most ``k / (positives + 1)`` whatever the score distributions, so
this keeps the expected loss within the budget where the plain share ``lost / positives`` — taken
at the deepest cut that fits — runs over it; no auto-accept at all loses nothing and is always
allowed. A Wilson-style confidence bound would need thousands of present pairs without masks at
these base rates. Label noise weighs on the presence scope (a wrong "present" is a phantom loss that
shuts the gate): re-check its "present" labels (:mod:`bench.annotation_efficiency` does) and watch
the audit of auto-negatives.

``loss_confidence`` (e.g. 0.9): hold the budget with that probability over calibration samples
rather than on average: the loss is then the Clopper–Pearson upper bound of ``lost`` out of
``positives`` (counts in units of the largest weight), i.e. the ``confidence`` quantile of the
Beta(lost + 1, positives − lost) that the conformal argument gives the loss. With ~240 positive
pairs in the sample and a 1% budget, 0.9 allows no lost positive at all.

``positive_final_drop`` (needs ``human_error`` e): the positive pairs as a population of final
labels, like the others — the share of them whose final label is right may fall at most this far
below all-human. All-human gets a complete pair right with 1 − e² (the check, else a correction that
adds nothing) and an incomplete one with (1 − e)² (the check, then the correction). A lost pair
(auto-accepted while instances are missing) costs (1 − e)²; a pair a reject side sends straight to
correction ends right with 1 − e: e(1 − e) more than all-human when it is incomplete, e(1 − e) less
when it is complete. The reject sides are the scopes' own; their credit is counted at their Wilson
lower bound (incomplete present pairs at least ``low · |R|`` minus the sampled pairs that are not
present, complete ones at most the rest; a scope whose present pairs all have label 0, the presence
scope, is never charged). The loss may then reach ``(positive_final_drop + credit) / (1 − e)²`` — the
credit in shares of the positive pairs, ``(positives + 1)`` as denominator like the loss — and the
same joint choice keeps it (the smaller of it and ``max_positive_loss`` when both are given). The
few complete pairs an exhaustive label makes more right (e² each) are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.intervals import clopper_pearson_upper
from engine.domain.calibration.task import CalibrationResult
from engine.domain.calibration.values import BoolArray, FloatArray, as_labels, as_scores, check_error, fmt


@dataclass(frozen=True)
class PairScope:
    """One scope's calibration sample: calibrated probabilities, human labels (1 = exhaustive /
    absent), whether the phrase is present, and the scope's weight and gain per pair."""

    name: str
    probs: FloatArray
    labels: BoolArray
    present: BoolArray
    weight: float
    gain: float

    @classmethod
    def of(cls, name: str, result: CalibrationResult, scores: npt.ArrayLike, labels: npt.ArrayLike,
           present: npt.ArrayLike | None, weight: float, gain: float, *, present_by_default: bool) -> PairScope:
        s = as_scores(scores)
        y = as_labels(labels, s.size)
        if present is not None:
            pz = as_labels(present, s.size)
        else:  # with masks: the phrase is there; without: nothing missing with no mask means absent
            pz = np.ones(s.size, bool) if present_by_default else ~y
        probs = result.calibrator.calibrate_many(s) if result.calibrator is not None else s
        return cls(name, probs, y, pz, weight, gain)

    @property
    def lossy(self) -> BoolArray:
        """Positive pairs that an auto-accept labels wrongly."""
        return self.present & ~self.labels

    def lost(self, result: CalibrationResult) -> float:
        """Weighted positive pairs that ``result``'s accept side labels wrongly."""
        threshold = result.accept.threshold
        if threshold is None:
            return 0.0
        return float(self.weight * self.lossy[self.probs >= threshold].sum())


@dataclass(frozen=True)
class LossEstimate:
    """The share of positive pairs lost, estimated from the weighted lost pairs: rank-based
    ``(lost + pad) / (positives + pad)``, or the Clopper–Pearson upper bound at ``confidence``."""

    positives: float  # weighted positive pairs in the sample
    pad: float  # the conformal +1, in weighted pairs
    confidence: float | None

    @property
    def units(self) -> int:
        return int(self.positives / self.pad + 1e-9)

    def __call__(self, lost: float) -> float:
        if self.confidence is None:
            return (lost + self.pad) / (self.positives + self.pad)
        return clopper_pearson_upper(min(self.units, math.ceil(lost / self.pad - 1e-9)), self.units, self.confidence)

    def of(self, results: Sequence[CalibrationResult], scopes: Sequence[PairScope]) -> float:
        if not any(r.accept.passed for r in results):
            return 0.0
        return self(sum(scope.lost(r) for r, scope in zip(results, scopes, strict=True)))

    def allowed_lost(self, limit: float) -> float:
        """The weighted lost pairs the sample may show within ``limit`` (< 0: not even none)."""
        if self.confidence is None:
            return limit * (self.positives + self.pad) - self.pad + 1e-9
        allowed = -1
        while allowed < self.units and self(self.pad * (allowed + 1)) <= limit:
            allowed += 1
        return self.pad * allowed + 1e-9 if allowed >= 0 else -1.0

    @property
    def credit_denominator(self) -> float:
        return (self.positives + self.pad) if self.confidence is None else self.positives


@dataclass(frozen=True)
class LossBudget:
    """What the positive pairs may lose: ``max_positive_loss`` and/or the final-label check."""

    max_positive_loss: float | None
    final_drop: float | None
    credit_share: float | None  # share of positive pairs the reject sides make more right
    final_budget: float | None  # the loss the final-label check allows

    @property
    def limit(self) -> float | None:
        limits = [b for b in (self.max_positive_loss, self.final_budget) if b is not None]
        return min(limits) if limits else None

    def reason(self, unconstrained: float, loss: float, confidence: float | None) -> str:
        bound = "" if confidence is None else f" (upper bound at confidence {fmt(confidence)})"
        why = ""
        if self.final_budget is not None and self.limit == self.final_budget:
            why = (f" (the positive pairs' final labels at most {fmt(self.final_drop)} below all-human, "
                   f"{fmt(self.credit_share)} credited to the reject sides)")
        return (f"positive-pair budget {fmt(self.limit)}{why}: the scopes' own accept thresholds would label "
                f"{fmt(unconstrained)} of the positive pairs wrongly{bound}; raised to keep {fmt(loss)}")


def loss_budget(results: Sequence[CalibrationResult], scopes: Sequence[PairScope], estimate: LossEstimate,
            max_positive_loss: float | None, human_error: float | None,
            positive_final_drop: float | None) -> LossBudget:
    if positive_final_drop is None or human_error is None:
        return LossBudget(max_positive_loss, positive_final_drop, None, None)
    e = check_error(human_error)
    credit = sum(reject_credit(r, scope, e) for r, scope in zip(results, scopes, strict=True))
    denom = estimate.credit_denominator
    credit_share = credit / denom if denom > 0 else 0.0
    final_budget = (positive_final_drop + credit_share) / (1.0 - e) ** 2 if denom > 0 else 0.0
    return LossBudget(max_positive_loss, positive_final_drop, credit_share, final_budget)


def reject_credit(result: CalibrationResult, scope: PairScope, e: float) -> float:
    """Weighted positive pairs a scope's reject side makes right beyond all-human (may be < 0):
    e(1 − e) per incomplete present pair sent straight to correction, minus as much per complete
    one, counted at the reject set's Wilson lower bound (the module's docstring says why)."""
    threshold, ci_low, labels = result.reject.threshold, result.reject.ci_low, scope.labels
    if threshold is None or ci_low is None or not labels.size:
        return 0.0
    sent = scope.probs <= threshold
    size = float(sent.sum())
    good_low = float(ci_low) * size  # label 0 (instances missing) at least
    not_present = float((sent & ~labels & ~scope.present).sum())
    complete_high = (size - good_low) if bool((labels & scope.present).any()) else 0.0
    return scope.weight * e * (1.0 - e) * (max(0.0, good_low - not_present) - complete_high)


def positive_finals(rs: Sequence[CalibrationResult], scopes: Sequence[PairScope],
                    e: float | None) -> tuple[float | None, float | None]:
    """(engine, all-human) estimates of the share of positive pairs whose final label is right:
    auto-accepted ones are right when complete, pairs sent straight to correction with 1 − e,
    checked ones with 1 − e² (complete) or (1 − e)² (instances missing). (None, None) without an
    error rate ``e`` or without positive pairs."""
    if e is None:
        return None, None
    num = base = den = 0.0
    for r, scope in zip(rs, scopes, strict=True):
        y, pz = scope.labels, scope.present
        checked = np.where(y, 1.0 - e * e, (1.0 - e) ** 2)
        auto = scope.probs >= r.accept.threshold if r.accept.threshold is not None else np.zeros(y.size, bool)
        sent = scope.probs <= r.reject.threshold if r.reject.threshold is not None else np.zeros(y.size, bool)
        final = np.where(auto, y.astype(np.float64), np.where(sent, 1.0 - e, checked))
        num += scope.weight * float(final[pz].sum())
        base += scope.weight * float(checked[pz].sum())
        den += scope.weight * float(pz.sum())
    return (num / den, base / den) if den > 0 else (None, None)
