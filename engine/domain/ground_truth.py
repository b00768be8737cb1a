"""Ground truth: the one definition of which pairs and masks are ground truth under a label source,
and of the binary target a person's decision gives a verifier.

Everything that reads labels as truth uses this module: the COCO and SA-Co exports
(engine/services/export_rows.py, export_formats.py), the verifier training sets
(export_verifier.py), calibration (engine/services/calibrate.py) and the quality report
(engine/services/quality.py: ``ground_truth_pairs``). docs/architecture.md, "Labels: the decision
model, its invariants, one ground truth", states the definition; :class:`GroundTruth` builds it as
SQL booleans (SQLAlchemy Core over the ORM tables, no session, no I/O), so every reader can put it
into its own statement — a streaming export into its ON and WHERE clauses, the report into a plain
query — and they cannot drift apart.

Under a label source (``human`` | ``ai`` | ``both``: the deciders allowed):

- *negative* pair: polarity negative, its claim decided by an allowed decider;
- *exhaustive* pair: an exhaustive claim (``is_exhaustive`` true, not negative) decided by an
  allowed decider, with an accepted mask (the positive polarity: an exhaustive claim whose masks
  are all still candidates waits for them and is no ground truth yet); its ground-truth masks are
  all its accepted masks, whoever accepted each (the claim was made with them in view);
- *partial* pair: not negative, not exhaustive under the source, with an accepted mask decided by
  an allowed decider; its ground-truth masks are those.
- *instance-exhaustive* (what the report scores, SA-Co's ``is_instance_exhaustive``): negative, or
  exhaustive without an accepted crowd mask (a mask over several instances cannot be matched one
  to one).

A pair is ground truth when it is negative or has a ground-truth mask (an exhaustive pair always
has one). "Positive" is read as the decision model derives polarity — an accepted mask (or a
*missing* claim) — so the stored polarity is only trusted for ``negative``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.orm import aliased

from engine.db.models import ImageConcept, Mask
from engine.domain.vocabulary import (
    Decider,
    LabelSource,
    MaskLabel,
    MaskState,
    PairLabel,
    Polarity,
    RoutePairLabel,
    TaskKind,
    VerifierTask,
)

LABEL_SOURCES = tuple(LabelSource)
DECIDERS: dict[str, tuple[Decider, ...]] = {
    LabelSource.HUMAN: (Decider.HUMAN,), LabelSource.AI: (Decider.AI,),
    LabelSource.BOTH: (Decider.HUMAN, Decider.AI)}


def deciders(label_source: str) -> tuple[Decider, ...]:
    """The deciders a label source allows."""
    try:
        return DECIDERS[label_source]
    except KeyError:
        raise ValueError(f"label source must be one of {', '.join(LABEL_SOURCES)}, not {label_source!r}") from None


@dataclass(frozen=True)
class GroundTruth:
    """The ground-truth predicates under ``label_source``, over ``pair`` (``ImageConcept`` or an
    alias of it) and ``mask`` (``Mask`` or an alias). Predicates named ``mask_…`` read both and
    expect the statement to join them (``mask.pair_id = pair.id``); the others read the pair only
    (those with ``exists`` correlate a subquery on the pair's masks)."""

    label_source: str = LabelSource.HUMAN
    pair: Any = ImageConcept
    mask: Any = Mask

    def __post_init__(self) -> None:
        deciders(self.label_source)  # refuses an unknown source

    @property
    def deciders(self) -> tuple[Decider, ...]:
        return deciders(self.label_source)

    def _allowed(self, column: Any) -> ColumnElement[bool]:
        """``column`` (a decider) is allowed; for ``both`` that is "decided" (the column's CHECK
        admits only the two deciders)."""
        if len(self.deciders) == len(DECIDERS[LabelSource.BOTH]):
            decided: ColumnElement[bool] = column.is_not(None)
            return decided
        return and_(column.is_not(None), column.in_(self.deciders))  # never NULL, so NOT works

    # ------------------------------------------------------------------ the pair's claim
    def negative_pair(self) -> ColumnElement[bool]:
        """The pair is a ground-truth negative: the phrase is absent."""
        return and_(self.pair.polarity == Polarity.NEGATIVE, self._allowed(self.pair.decided_by))

    def exhaustive_claim(self) -> ColumnElement[bool]:
        """The pair carries an exhaustive (positive) claim by an allowed decider. It is an
        exhaustive ground-truth pair once it has an accepted mask (:meth:`exhaustive_pair`)."""
        return and_(self.pair.is_exhaustive.is_(True), self.pair.polarity != Polarity.NEGATIVE,
                    self._allowed(self.pair.decided_by))

    def decided_claim(self) -> ColumnElement[bool]:
        """The pair carries a claim (missing, exhaustive or negative) by an allowed decider."""
        return and_(self.pair.is_exhaustive.is_not(None), self._allowed(self.pair.decided_by))

    # ------------------------------------------------------------------------- masks
    def mask_is_ground_truth(self) -> ColumnElement[bool]:
        """The mask is a ground-truth mask of its pair: accepted, on a pair that is not negative,
        and either the pair is exhaustive under the source (every accepted mask) or the mask was
        accepted by an allowed decider (a partial pair)."""
        return and_(self.mask.state == MaskState.ACCEPTED, self.pair.polarity != Polarity.NEGATIVE,
                    or_(self.exhaustive_claim(), self._allowed(self.mask.decided_by)))

    def mask_rejection_is_ground_truth(self) -> ColumnElement[bool]:
        """The mask is known not to be an instance: rejected by an allowed decider."""
        return and_(self.mask.state == MaskState.REJECTED, self._allowed(self.mask.decided_by))

    def _masks_where(self, *conds: Any) -> ColumnElement[bool]:
        """EXISTS a mask of the pair with ``conds`` (given a function of the aliased mask)."""
        m = aliased(Mask)
        return exists().where(m.pair_id == self.pair.id, *(c(m) for c in conds))

    def has_ground_truth_mask(self) -> ColumnElement[bool]:
        return self._masks_where(lambda m: GroundTruth(self.label_source, self.pair, m).mask_is_ground_truth())

    def _has_accepted(self, *, crowd: bool = False) -> ColumnElement[bool]:
        return self._masks_where(lambda m: m.state == MaskState.ACCEPTED,
                                 *([lambda m: m.is_crowd.is_(True)] if crowd else []))

    # ------------------------------------------------------------------------- pairs
    def exhaustive_pair(self) -> ColumnElement[bool]:
        return and_(self.exhaustive_claim(), self._has_accepted())

    def partial_pair(self) -> ColumnElement[bool]:
        return and_(self.pair.polarity != Polarity.NEGATIVE, ~self.exhaustive_claim(),
                    self._masks_where(lambda m: m.state == MaskState.ACCEPTED, lambda m: self._allowed(m.decided_by)))

    def ground_truth_pair(self) -> ColumnElement[bool]:
        """Negative, exhaustive or partial (the three are disjoint)."""
        return or_(self.negative_pair(), self.has_ground_truth_mask())

    def instance_exhaustive_pair(self) -> ColumnElement[bool]:
        """Negative, or exhaustive without an accepted crowd mask."""
        return or_(self.negative_pair(), and_(self.exhaustive_pair(), ~self._has_accepted(crowd=True)))


def instance_exhaustive(negative: bool, exhaustive: bool, crowd: bool) -> bool:
    """:meth:`GroundTruth.instance_exhaustive_pair` for a pair whose ground-truth masks are in hand
    (the exports stream them): ``negative`` and ``exhaustive`` are the pair's predicates, ``crowd``
    whether one of its ground-truth masks is a crowd mask (an exhaustive pair's ground-truth masks
    are all its accepted masks, so this is the predicate's crowd test). Evaluating it on the rows
    keeps a correlated subquery out of the export's statement (with it PostgreSQL took 1.2 s
    instead of 0.3 s for 125,000 rows, most of it JIT compilation)."""
    return negative or (exhaustive and not crowd)


# ---------------------------------------------------------------------- the verifiers' targets
#: verifier task → the human task kind it answers
VERIFIER_TASKS: dict[str, TaskKind] = {
    VerifierTask.MV: TaskKind.VERIFY_MASK, VerifierTask.EV: TaskKind.CHECK_EXHAUSTIVITY}
TASK_OF_KIND: dict[str, VerifierTask] = {kind: VerifierTask(task) for task, kind in VERIFIER_TASKS.items()}
#: labels that say "the AI should have said accept" (a person's, the router's, or the verifier's own
#: ``accept``, which is the mask label's word)
POSITIVE_LABELS: dict[str, frozenset[str]] = {
    VerifierTask.MV: frozenset({MaskLabel.ACCEPT}),
    VerifierTask.EV: frozenset({MaskLabel.ACCEPT, PairLabel.COMPLETE, RoutePairLabel.EXHAUSTIVE}),
}
#: "phrase not present": nothing is missing where the pair has no masks, everything is wrong where it has
PRESENCE_POSITIVE = frozenset({PairLabel.NOT_PRESENT, RoutePairLabel.NEGATIVE})


def verifier_target(task: str, label: str, *, has_masks: bool) -> int:
    """A person's decision on an item as the verifier's binary target (1: the verifier should have
    said accept). ``task`` is ``mv`` or ``ev`` (or the task kind they answer); for EV a "not present"
    is right (1) when no boxes were shown and wrong when boxes were. Calibration
    (engine/services/calibrate.py) and the verifier training sets
    (engine/domain/exports.py: ``verifier_label``) both use this mapping."""
    task = TASK_OF_KIND.get(task, task)
    if task not in VERIFIER_TASKS:
        raise ValueError(f"unknown verifier task {task!r}; use mv or ev")
    if task == VerifierTask.EV and label in PRESENCE_POSITIVE:
        return int(not has_masks)
    return int(label in POSITIVE_LABELS[task])


def people_decision(labels: Sequence[str]) -> int:
    """Which of several people's labels on one item (oldest first) is their decision, as the queue
    decides: the majority label, a tie to the latest. Returns its index (the last verdict with it)."""
    if not labels:
        raise ValueError("no labels to decide among")
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    best = max(counts.values())
    return max(i for i, label in enumerate(labels) if counts[label] == best)


def mask_truth(is_ground_truth: bool, is_rejection: bool) -> int | None:
    """A mask's ground-truth target under a source: 1 for a ground-truth mask, 0 for a mask
    rejected by an allowed decider, None when the source does not decide it. A verifier example or
    calibration item about a mask counts only where its target equals this."""
    if is_ground_truth:
        return 1
    if is_rejection:
        return 0
    return None
