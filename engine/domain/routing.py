"""The routing policy: which AI verdicts stand on their own, which go to a human, and as what task.

Two kinds of items reach the router once the AI verifiers have scored them:

* a candidate mask (:class:`MaskItem`) with the mask verifier's calibrated P(accept);
* an image–phrase pair (:class:`PairItem`) whose masks have been verified, with the exhaustivity
  verifier's calibrated P(accept) = P(nothing is missing) and the number of surviving masks.

Thresholds come from :mod:`engine.domain.calibration`, one pair per population the router labels:
masks (accept / reject), pairs with surviving masks (exhaustive / straight to correction) and
pairs without (the negative label / straight to correction). Each is calibrated on its own so
that its automatic decisions meet the target precision and its final labels stay close to
all-human (``calibrate_task(human_error=, max_final_drop=)``), and the two pair accept sides
share one budget for the positive pairs (``calibrate_pairs(max_positive_loss=)``): the plentiful
negatives must not buy their coverage with the positives' labels. A missing threshold means
"not calibrated", and everything on that side goes to a human. An item already decided by a
human is never overridden. An auto-decision picked for the audit sample (:mod:`engine.domain.audit`)
still goes to a human, with the decision it would have had written in the reason, so that the
audit measures the auto-decisions' real precision.

Its words (task kinds, route actions, the auto-decisions' labels) are the vocabulary's
(engine/domain/vocabulary.py). Pure functions over frozen dataclasses: no database, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.domain.vocabulary import RouteAction, RouteMaskLabel, RoutePairLabel, TaskKind

if TYPE_CHECKING:
    from engine.domain.calibration import CalibrationResult, PairCalibration

# short names of the vocabulary's members, as the router uses them
VERIFY_MASK = TaskKind.VERIFY_MASK
CHECK_EXHAUSTIVITY = TaskKind.CHECK_EXHAUSTIVITY
CORRECT = TaskKind.CORRECT
TASK_KINDS = tuple(TaskKind)

# Labels written for auto-decisions.
LABEL_ACCEPT = RouteMaskLabel.ACCEPT  # the mask is right
LABEL_REJECT = RouteMaskLabel.REJECT  # the mask is wrong
LABEL_EXHAUSTIVE = RoutePairLabel.EXHAUSTIVE  # every instance of the phrase has an accepted mask
LABEL_NEGATIVE = RoutePairLabel.NEGATIVE  # the phrase is absent from the image: no instances, verified
#: the label of an auto-decision (on a mask or on a pair)
AutoLabel = RouteMaskLabel | RoutePairLabel

AUDIT_REASON = "audit sample"

#: what the router does with an item: auto_accept | auto_reject | human (a task of ``task_kind``) |
#: keep_human (a human already decided: nothing to do, never overridden); the router's short name
Action = RouteAction


@dataclass(frozen=True)
class RouteDecision:
    """Where the router sends one item, and why (engine/services/route.py stores it as a RouteRecord)."""

    action: RouteAction
    task_kind: TaskKind | None  # set when action is HUMAN
    reason: str  # human-readable, with the numbers that decided
    auto_label: AutoLabel | None = None  # set when action is AUTO_*: the label to record as the AI's verdict
    audited_label: AutoLabel | None = None  # audit sample: the auto label the item would have had

    def __post_init__(self) -> None:
        if self.action is RouteAction.HUMAN and self.task_kind not in TASK_KINDS:
            raise ValueError(f"a human route needs a task kind, got {self.task_kind!r}")
        if self.action is not RouteAction.HUMAN and self.task_kind is not None:
            raise ValueError("only a human route has a task kind")
        if self.action in (RouteAction.AUTO_ACCEPT, RouteAction.AUTO_REJECT) and not self.auto_label:
            raise ValueError("an auto-decision needs its label")
        if self.action not in (RouteAction.AUTO_ACCEPT, RouteAction.AUTO_REJECT) and self.auto_label is not None:
            raise ValueError("only an auto-decision has an auto label")

    @property
    def to_human(self) -> bool:
        return self.action is RouteAction.HUMAN

    @property
    def is_audit(self) -> bool:
        return self.audited_label is not None


@dataclass(frozen=True)
class KindThresholds:
    """Thresholds on calibrated P(accept) for one task kind; None = not calibrated on that side."""

    accept: float | None = None  # P ≥ accept → auto-accept
    reject: float | None = None  # P ≤ reject → auto-reject (EV: straight to correction)

    def __post_init__(self) -> None:
        for name in ("accept", "reject"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} threshold must lie in [0, 1], got {value}")
        if self.accept is not None and self.reject is not None and self.reject >= self.accept:
            raise ValueError(f"reject threshold {self.reject} must lie below accept threshold {self.accept}")

    @property
    def calibrated(self) -> bool:
        return self.accept is not None or self.reject is not None


@dataclass(frozen=True)
class Thresholds:
    """Per task kind: ``mask`` for verify_mask (MV), ``exhaustivity`` for check_exhaustivity (EV).
    The default is uncalibrated on both: every item goes to a human.

    ``presence`` (optional) applies instead of ``exhaustivity`` to pairs with no surviving mask,
    where EV's answer is the presence decision (P(accept | no boxes)): calibrated on its own, the
    easy, plentiful negatives cannot lend their precision to the pairs with masks (a pooled
    threshold can meet its target on average while letting many incomplete positives through).
    None: the ``exhaustivity`` thresholds apply to every pair. The caller computes each pair's
    ``p_accept`` with the calibrator of the thresholds that apply to it.
    """

    mask: KindThresholds = KindThresholds()
    exhaustivity: KindThresholds = KindThresholds()
    presence: KindThresholds | None = None

    def for_pair(self, n_masks: int) -> KindThresholds:
        if n_masks == 0 and self.presence is not None:
            return self.presence
        return self.exhaustivity

    @classmethod
    def from_calibration(cls, mask: CalibrationResult | None = None,
                         exhaustivity: CalibrationResult | None = None,
                         presence: CalibrationResult | None = None,
                         pairs: PairCalibration | None = None) -> Thresholds:
        """``pairs`` (from :func:`~engine.domain.calibration.calibrate_pairs`) stands for
        ``exhaustivity`` = its pairs with masks and ``presence`` = its pairs without."""
        if pairs is not None:
            if exhaustivity is not None or presence is not None:
                raise ValueError("pass pairs, or exhaustivity and presence, not both")
            exhaustivity, presence = pairs.with_masks, pairs.presence

        def kind(result: CalibrationResult | None) -> KindThresholds:
            if result is None:
                return KindThresholds()
            return KindThresholds(accept=result.accept_threshold, reject=result.reject_threshold)

        return cls(mask=kind(mask), exhaustivity=kind(exhaustivity),
                   presence=kind(presence) if presence is not None else None)


@dataclass(frozen=True)
class MaskItem:
    """A candidate mask scored by the mask verifier (MV)."""

    mask_id: int
    pair_id: int
    p_accept: float  # calibrated P(a human accepts the mask)
    probabilities: Mapping[str, float] = field(default_factory=dict, hash=False)  # raw AI label → prob
    human_decided: bool = False
    human_label: str | None = None


@dataclass(frozen=True)
class PairItem:
    """An image–phrase pair scored by the exhaustivity verifier (EV) after mask verification."""

    pair_id: int
    p_accept: float  # calibrated P(exhaustive): nothing is missing
    n_masks: int  # surviving (accepted) masks of the pair
    presence_score: float | None = None  # 1 − P(accept | no boxes), as the verifier reported it
    probabilities: Mapping[str, float] = field(default_factory=dict, hash=False)
    human_decided: bool = False
    human_label: str | None = None


# ============================================================================ formatting
def _num(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _pair(p: float, t: float) -> tuple[str, str]:
    """Format p and a threshold with just enough decimals that unequal values look unequal."""
    for digits in range(2, 9):
        a, b = _num(p, digits), _num(t, digits)
        if a != b or p == t:
            return a, b
    return _num(p, 9), _num(t, 9)


def _top_label(probabilities: Mapping[str, float]) -> str:
    """The verifier's most probable raw label, worded for a person ("the AI suggested: reject (23 %)")."""
    if not probabilities:
        return ""
    label, prob = max(probabilities.items(), key=lambda kv: (kv[1], kv[0]))
    return f"; {AI_SUGGESTED} {label} ({percent(prob)})"


#: how a reason names the verifier's top label (engine/services/task_reason.py rewords older reasons)
AI_SUGGESTED = "the AI suggested:"


def percent(prob: float) -> str:
    """A probability as a whole percentage ("23 %"); under 1 % and over 99 % not rounded to 0 or 100."""
    value = 100.0 * prob
    if 0.0 < value < 1.0:
        return "<1 %"
    if 99.0 < value < 100.0:
        return ">99 %"
    return f"{value:.0f} %"


def _check_probability(value: float, what: str) -> float:
    p = float(value)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")
    return p


def _side(p: float, thresholds: KindThresholds, name: str) -> tuple[str, str]:
    """('accept' | 'reject' | 'uncertain' | 'uncalibrated', explanation with the numbers)."""
    if not thresholds.calibrated:
        return "uncalibrated", f"{name}={_num(p, 3)}, no calibrated thresholds"
    if thresholds.accept is not None and p >= thresholds.accept:
        a, b = _pair(p, thresholds.accept)
        return "accept", f"{name}={a} ≥ {b} accept threshold"
    if thresholds.reject is not None and p <= thresholds.reject:
        a, b = _pair(p, thresholds.reject)
        return "reject", f"{name}={a} ≤ {b} reject threshold"
    acc, rej = thresholds.accept, thresholds.reject
    if acc is None:
        if rej is None:  # not reached: calibrated means one threshold at least
            return "uncalibrated", f"{name}={_num(p, 3)}, no calibrated thresholds"
        pr, tr = _pair(p, rej)
        return "uncertain", f"{name}={pr} > {tr} reject threshold, no accept threshold calibrated"
    pa, ta = _pair(p, acc)
    if rej is None:
        return "uncertain", f"{name}={pa} < {ta} accept threshold, no reject threshold calibrated"
    pr, tr = _pair(p, rej)
    shown = pa if len(pa) >= len(pr) else pr
    return "uncertain", f"{name}={shown} between {tr} reject and {ta} accept thresholds"


def _audited(kind: TaskKind, action: RouteAction, label: AutoLabel, reason: str) -> RouteDecision:
    would = action.value.replace("_", "-")
    if label not in (LABEL_ACCEPT, LABEL_REJECT):
        would += f" as {label}"
    return RouteDecision(RouteAction.HUMAN, kind, f"{AUDIT_REASON}: would {would} ({reason})", audited_label=label)


# ============================================================================ policy
def route_mask(item: MaskItem, thresholds: Thresholds, *, audit: bool = False) -> RouteDecision:
    """MV: P ≥ accept threshold → auto-accept; P ≤ reject threshold → auto-reject; otherwise (or
    uncalibrated) a human verify_mask task. ``audit``: the item is in the audit sample, so an
    auto-decision goes to a human instead (same task kind)."""
    p = _check_probability(item.p_accept, "P(accept)")
    if item.human_decided:
        label = f" as {item.human_label}" if item.human_label else ""
        return RouteDecision(RouteAction.KEEP_HUMAN, None,
                             f"already decided by a human{label}; AI P(accept)={_num(p, 3)} not applied")
    side, why = _side(p, thresholds.mask, "P(accept)")
    why += _top_label(item.probabilities)
    if side in ("accept", "reject"):
        label = LABEL_ACCEPT if side == "accept" else LABEL_REJECT
        action = RouteAction.AUTO_ACCEPT if side == "accept" else RouteAction.AUTO_REJECT
        if audit:
            return _audited(VERIFY_MASK, action, label, why)
        return RouteDecision(action, None, why, auto_label=label)
    if side == "uncalibrated":
        return RouteDecision(RouteAction.HUMAN, VERIFY_MASK, f"mask verifier not calibrated: {why}")
    return RouteDecision(RouteAction.HUMAN, VERIFY_MASK, why)


def route_pair(item: PairItem, thresholds: Thresholds, *, audit: bool = False) -> RouteDecision:
    """EV, once the pair's masks are verified.

    * confident accept and no surviving mask → a verified negative, no human (auto-accept, label
      ``negative``);
    * confident accept with masks → exhaustive (auto-accept, label ``exhaustive``);
    * confident reject (instances missing) → a human ``correct`` task, skipping the check;
    * uncertain or uncalibrated → a human ``check_exhaustivity`` task.
    ``audit`` turns an auto-accept into a check_exhaustivity task. Pairs with no surviving mask use
    ``thresholds.presence`` when it is set.
    """
    p = _check_probability(item.p_accept, "P(exhaustive)")
    if item.n_masks < 0:
        raise ValueError(f"n_masks must be ≥ 0, got {item.n_masks}")
    if item.human_decided:
        label = f" as {item.human_label}" if item.human_label else ""
        return RouteDecision(RouteAction.KEEP_HUMAN, None,
                             f"already decided by a human{label}; AI P(exhaustive)={_num(p, 3)} not applied")
    side, why = _side(p, thresholds.for_pair(item.n_masks), "P(exhaustive)")
    masks = "no surviving masks" if item.n_masks == 0 else (
        f"{item.n_masks} accepted mask{'s' if item.n_masks != 1 else ''}")
    if item.n_masks == 0 and thresholds.presence is not None:
        masks += " (presence thresholds)"
    why = f"{why}, {masks}"
    if item.presence_score is not None:
        why += f", presence {_num(_check_probability(item.presence_score, 'presence score'), 3)}"
    why += _top_label(item.probabilities)
    if side == "accept":
        label = LABEL_NEGATIVE if item.n_masks == 0 else LABEL_EXHAUSTIVE
        if audit:
            return _audited(CHECK_EXHAUSTIVITY, RouteAction.AUTO_ACCEPT, label, why)
        what = "verified negative" if label == LABEL_NEGATIVE else "exhaustive"
        return RouteDecision(RouteAction.AUTO_ACCEPT, None, f"{what}: {why}", auto_label=label)
    if side == "reject":
        return RouteDecision(RouteAction.HUMAN, CORRECT, f"instances missing: {why}")
    if side == "uncalibrated":
        return RouteDecision(RouteAction.HUMAN, CHECK_EXHAUSTIVITY, f"exhaustivity verifier not calibrated: {why}")
    return RouteDecision(RouteAction.HUMAN, CHECK_EXHAUSTIVITY, why)
