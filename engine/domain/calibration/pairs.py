"""The exhaustivity verifier calibrated in its two scopes — pairs with surviving masks (accept =
exhaustive) and pairs without (presence: accept = a negative label) — under one budget for the
positive pairs (:func:`calibrate_pairs`).

Why a budget: a negative label at 98% precision looks safe, but negatives outnumber the present
pairs without masks ~50 to 1, so its 2% errors are most of those positives: the positive pairs — the
training signal that matters most — pay for the precision of the plentiful negatives. The budget
bounds what the accept sides take from them: ``loss = (weighted present pairs without masks
auto-labelled negative + weighted incomplete pairs auto-labelled exhaustive) / weighted positive
pairs ≤ max_positive_loss``. Among the cut pairs that pass each scope's own tests (Wilson bound,
support, probability floor, final-precision drop), the one with the largest weighted gain
(``weights[i] · gains[i] · items auto-accepted``) within the budget is chosen; reject sides are each
scope's own (they send pairs to a person, they cannot lose a positive).

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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.calibrators import ISOTONIC
from engine.domain.calibration.intervals import Z_95, clopper_pearson_upper
from engine.domain.calibration.task import CalibrationResult, calibrate_task, final_floor
from engine.domain.calibration.thresholds import (
    ACCEPT_SIDE,
    DEFAULT_MIN_SUPPORT,
    Cuts,
    ThresholdChoice,
    choice_at,
    expected_final_precision,
    passing,
    skipped,
)
from engine.domain.calibration.values import BoolArray, FloatArray, IntArray, as_labels, as_scores, check_error, fmt


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
class _Scope:
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
           present: npt.ArrayLike | None, weight: float, gain: float, *, present_by_default: bool) -> _Scope:
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
class _LossEstimate:
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

    def of(self, results: Sequence[CalibrationResult], scopes: Sequence[_Scope]) -> float:
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
class _Budget:
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


def _budget(results: Sequence[CalibrationResult], scopes: Sequence[_Scope], estimate: _LossEstimate,
            max_positive_loss: float | None, human_error: float | None,
            positive_final_drop: float | None) -> _Budget:
    if positive_final_drop is None or human_error is None:
        return _Budget(max_positive_loss, positive_final_drop, None, None)
    e = check_error(human_error)
    credit = sum(_reject_credit(r, scope, e) for r, scope in zip(results, scopes, strict=True))
    denom = estimate.credit_denominator
    credit_share = credit / denom if denom > 0 else 0.0
    final_budget = (positive_final_drop + credit_share) / (1.0 - e) ** 2 if denom > 0 else 0.0
    return _Budget(max_positive_loss, positive_final_drop, credit_share, final_budget)


def _check_pair_options(max_positive_loss: float | None, loss_confidence: float | None,
                        weights: tuple[float, float], gains: tuple[float, float], human_error: float | None,
                        positive_final_drop: float | None) -> None:
    if positive_final_drop is not None:
        if human_error is None or not 0.0 <= positive_final_drop < 1.0:
            raise ValueError("positive_final_drop needs human_error and must lie in [0, 1)")
    if loss_confidence is not None and not 0.0 < loss_confidence < 1.0:
        raise ValueError(f"loss_confidence must lie strictly between 0 and 1, got {loss_confidence}")
    if max_positive_loss is not None and not 0.0 <= max_positive_loss < 1.0:
        raise ValueError(f"max_positive_loss must lie in [0, 1), got {max_positive_loss}")
    if len(weights) != 2 or len(gains) != 2 or any(not (math.isfinite(w) and w > 0) for w in (*weights, *gains)):
        raise ValueError("weights and gains: two positive numbers each (with masks, presence)")


def calibrate_pairs(with_masks_scores: npt.ArrayLike, with_masks_labels: npt.ArrayLike,
                    presence_scores: npt.ArrayLike, presence_labels: npt.ArrayLike,
                    target_precision: float = 0.95, method: str = ISOTONIC,
                    min_support: int = DEFAULT_MIN_SUPPORT, *, max_positive_loss: float | None = None,
                    with_masks_present: npt.ArrayLike | None = None, presence_present: npt.ArrayLike | None = None,
                    weights: tuple[float, float] = (1.0, 1.0), gains: tuple[float, float] = (1.0, 1.0),
                    human_error: float | None = None, max_final_drop: float | None = None,
                    with_masks_ai_labels: Sequence[Any] | None = None,
                    presence_ai_labels: Sequence[Any] | None = None, verifier_version: str | None = None,
                    task_kind: str | None = None, z: float = Z_95, min_probability: float = 0.5,
                    loss_confidence: float | None = None,
                    positive_final_drop: float | None = None) -> PairCalibration:
    """Calibrate the exhaustivity verifier for pairs with masks and pairs without (presence), each
    with :func:`calibrate_task`, then lower the two accept sides jointly until the positive pairs
    keep their budget (``max_positive_loss``, and with ``positive_final_drop`` the final-label check;
    None: no budget, the per-scope thresholds stand and the loss is reported). The module's
    docstring says why and how the loss is estimated.

    Scope order in ``weights`` / ``gains``: (with masks, presence). ``weights``: production pairs
    per sampled pair of the scope (1, 1 for a uniform sample; a stratified sample passes its
    inverse sampling rates). ``with_masks_present``: per pair with masks, whether the phrase is
    present (default all; a person's "not present" makes it False); ``presence_present``: default
    ``label == 0`` (nothing missing with no mask means absent).
    """
    _check_pair_options(max_positive_loss, loss_confidence, weights, gains, human_error, positive_final_drop)

    def scope(scores: npt.ArrayLike, labels: npt.ArrayLike, ai_labels: Sequence[Any] | None) -> CalibrationResult:
        return calibrate_task(scores, labels, target_precision, method, min_support, ai_labels=ai_labels,
                              verifier_version=verifier_version, task_kind=task_kind, z=z,
                              min_probability=min_probability, human_error=human_error,
                              max_final_drop=max_final_drop)

    results = [scope(with_masks_scores, with_masks_labels, with_masks_ai_labels),
               scope(presence_scores, presence_labels, presence_ai_labels)]
    scopes = [_Scope.of("with masks", results[0], with_masks_scores, with_masks_labels, with_masks_present,
                        weights[0], gains[0], present_by_default=True),
              _Scope.of("presence", results[1], presence_scores, presence_labels, presence_present,
                        weights[1], gains[1], present_by_default=False)]
    estimate = _LossEstimate(float(sum(s.weight * s.present.sum() for s in scopes)), max(weights), loss_confidence)
    budget = _budget(results, scopes, estimate, max_positive_loss, human_error, positive_final_drop)
    chosen, unconstrained = results, estimate.of(results, scopes)
    loss, reason = unconstrained, None
    if budget.limit is not None and unconstrained > budget.limit:
        chosen = _within_budget(results, scopes, budget.limit, estimate.allowed_lost(budget.limit),
                                int(min_support), z, min_probability)
        loss = estimate.of(chosen, scopes)
        reason = budget.reason(unconstrained, loss, loss_confidence)
    finals: tuple[float | None, float | None] = (None, None)
    if human_error is not None and estimate.positives > 0:
        finals = _positive_finals(chosen, scopes, human_error)
    return PairCalibration(chosen[0], chosen[1], max_positive_loss, loss, unconstrained, estimate.positives, reason,
                           loss_confidence, positive_final_drop=positive_final_drop,
                           reject_credit=budget.credit_share, loss_budget=budget.limit,
                           positive_final=finals[0], positive_all_human=finals[1])


@dataclass(frozen=True)
class _ScopeOptions:
    """The accept cuts of one scope that pass on their own, with their weighted loss and gain."""

    cuts: Cuts | None
    index: IntArray  # cut indices that pass (smallest set first)
    loss: FloatArray  # weighted positive pairs the set labels wrongly, per passing cut
    gain: FloatArray  # weighted gain (seconds saved) per passing cut


def _scope_options(result: CalibrationResult, scope: _Scope, min_support: int, z: float,
                   min_probability: float) -> _ScopeOptions:
    empty = _ScopeOptions(None, np.zeros(0, np.intp), np.zeros(0), np.zeros(0))
    if result.calibrator is None or result.needed_positive or not scope.labels.size:
        return empty
    cuts = Cuts.of(scope.probs, scope.labels, 1.0, z)
    final = final_floor(result.human_error, result.all_human_precision, result.max_final_drop)
    ok, _, _ = passing(cuts, result.target_precision, min_support, 1.0, min_probability, final)
    index = np.flatnonzero(ok)
    order = np.argsort(-scope.probs, kind="stable")
    cum_loss = np.cumsum(scope.lossy[order])[cuts.support - 1]
    return _ScopeOptions(cuts, index, scope.weight * cum_loss[index].astype(np.float64),
                         scope.weight * scope.gain * cuts.support[index].astype(np.float64))


def _best_cuts(a: _ScopeOptions, b: _ScopeOptions, allowed_lost: float) -> tuple[int, int]:
    """The passing cut of each scope (-1: none) with the largest joint gain whose weighted loss stays
    within ``allowed_lost``: every presence option (none first), then the deepest with-masks cut
    that fits what is left."""
    a_loss = np.concatenate([[0.0], a.loss])
    a_gain = np.concatenate([[0.0], a.gain])
    best = (0.0, -1, -1)  # no auto-accept at all: nothing lost
    b_options = zip(np.concatenate([[0.0], b.loss]), np.concatenate([[0.0], b.gain]), strict=True)
    for j, (b_loss, b_gain) in enumerate(b_options):
        if b_loss > allowed_lost or allowed_lost < 0:
            break
        i = int(np.searchsorted(a_loss, allowed_lost - b_loss, side="right")) - 1  # a_loss is non-decreasing
        total = float(a_gain[i] + b_gain)
        if total > best[0]:
            best = (total, i - 1, j - 1)
    return best[1], best[2]


def _within_budget(results: Sequence[CalibrationResult], scopes: Sequence[_Scope], limit: float,
                   allowed_lost: float, min_support: int, z: float,
                   min_probability: float) -> list[CalibrationResult]:
    """The scopes' results with the accept thresholds of the best joint cut within the budget."""
    options = [_scope_options(r, scope, min_support, z, min_probability)
               for r, scope in zip(results, scopes, strict=True)]
    picks = _best_cuts(options[0], options[1], allowed_lost)
    return [_at_cut(r, scope, opts, k, limit)
            for r, scope, opts, k in zip(results, scopes, options, picks, strict=True)]


def _at_cut(result: CalibrationResult, scope: _Scope, options: _ScopeOptions, k: int,
            limit: float) -> CalibrationResult:
    """``result`` with its accept side at passing cut ``k`` (-1: no accept threshold)."""
    if k < 0 or options.cuts is None:
        if not result.accept.passed:
            return result
        accept = skipped(ACCEPT_SIDE, result.target_precision, result.n,
                         f"no accept threshold ({scope.name}) within the positive-pair budget "
                         f"{fmt(limit)}: own threshold {fmt(result.accept_threshold, 4)} "
                         f"would leave too little for the positives")
    else:
        accept = choice_at(options.cuts, int(options.index[k]), ACCEPT_SIDE, result.target_precision, 1.0,
                           f"; raised from {fmt(result.accept_threshold, 4)} for the positive-pair budget")
        if accept.threshold == result.accept_threshold:
            return result
    return _with_accept(result, accept, scope.probs, scope.labels)


def _with_accept(result: CalibrationResult, accept: ThresholdChoice, probs: FloatArray,
                 y: BoolArray) -> CalibrationResult:
    reasons = [c.reason for c in (accept, result.reject) if not c.passed]
    final_precision = result.final_precision
    if result.human_error is not None and y.size:
        final_precision = expected_final_precision(
            y, probs >= accept.threshold if accept.threshold is not None else np.zeros(y.size, bool),
            result.human_error,
            probs <= result.reject.threshold if result.reject.threshold is not None else None)
    return replace(result, accept=accept, reason="; ".join(reasons) if reasons else None,
                   final_precision=final_precision)


def _reject_credit(result: CalibrationResult, scope: _Scope, e: float) -> float:
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


def _positive_finals(rs: Sequence[CalibrationResult], scopes: Sequence[_Scope],
                     e: float) -> tuple[float | None, float | None]:
    """(engine, all-human) estimates of the share of positive pairs whose final label is right:
    auto-accepted ones are right when complete, pairs sent straight to correction with 1 − e,
    checked ones with 1 − e² (complete) or (1 − e)² (instances missing)."""
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
