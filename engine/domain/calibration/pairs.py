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

How the loss is estimated and what the budget allows: :mod:`.pair_loss`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.calibration.calibrators import ISOTONIC
from engine.domain.calibration.intervals import Z_95
from engine.domain.calibration.pair_loss import LossEstimate, PairScope, loss_budget, positive_finals
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
from engine.domain.calibration.values import BoolArray, FloatArray, IntArray, fmt


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
    keep their budget (``max_positive_loss`` and/or, with ``positive_final_drop``, the final-label
    check; neither: the scopes' own thresholds stand, the loss is reported). Why: the module's
    docstring; the loss estimate, ``loss_confidence`` and ``positive_final_drop``: :mod:`.pair_loss`.

    Scope order in ``weights`` / ``gains``: (with masks, presence). ``weights``: production pairs
    per sampled pair of the scope (1, 1 for a uniform sample; a stratified sample passes its
    inverse sampling rates). ``with_masks_present``: per pair with masks, whether the phrase is
    present (default all; a person's "not present" makes it False); ``presence_present``: default
    ``label == 0`` (nothing missing with no mask means absent).
    """
    _check_pair_options(max_positive_loss, loss_confidence, weights, gains, human_error, positive_final_drop)

    task = functools.partial(calibrate_task, target_precision=target_precision, method=method,
                             min_support=min_support, verifier_version=verifier_version, task_kind=task_kind, z=z,
                             min_probability=min_probability, human_error=human_error, max_final_drop=max_final_drop)
    results = [task(with_masks_scores, with_masks_labels, ai_labels=with_masks_ai_labels),
               task(presence_scores, presence_labels, ai_labels=presence_ai_labels)]
    scopes = [PairScope.of("with masks", results[0], with_masks_scores, with_masks_labels, with_masks_present,
                           weights[0], gains[0], present_by_default=True),
              PairScope.of("presence", results[1], presence_scores, presence_labels, presence_present,
                           weights[1], gains[1], present_by_default=False)]
    estimate = LossEstimate(float(sum(s.weight * s.present.sum() for s in scopes)), max(weights), loss_confidence)
    budget = loss_budget(results, scopes, estimate, max_positive_loss, human_error, positive_final_drop)
    chosen, unconstrained = results, estimate.of(results, scopes)
    loss, reason = unconstrained, None
    if budget.limit is not None and unconstrained > budget.limit:
        chosen = _within_budget(results, scopes, budget.limit, estimate.allowed_lost(budget.limit),
                                int(min_support), z, min_probability)
        loss = estimate.of(chosen, scopes)
        reason = budget.reason(unconstrained, loss, loss_confidence)
    finals = positive_finals(chosen, scopes, human_error)
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


def _scope_options(result: CalibrationResult, scope: PairScope, min_support: int, z: float,
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


def _within_budget(results: Sequence[CalibrationResult], scopes: Sequence[PairScope], limit: float,
                   allowed_lost: float, min_support: int, z: float,
                   min_probability: float) -> list[CalibrationResult]:
    """The scopes' results with the accept thresholds of the best joint cut within the budget."""
    options = [_scope_options(r, scope, min_support, z, min_probability)
               for r, scope in zip(results, scopes, strict=True)]
    picks = _best_cuts(options[0], options[1], allowed_lost)
    return [_at_cut(r, scope, opts, k, limit)
            for r, scope, opts, k in zip(results, scopes, options, picks, strict=True)]


def _at_cut(result: CalibrationResult, scope: PairScope, options: _ScopeOptions, k: int,
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
