"""The decision model: the label states of masks and pairs, and what every judgement may do to them.

Every writer of label state — a person's verdict in the queue or in Label Studio, a correction, the
router's automatic decisions — builds the facts it sees (:class:`PairFacts`), asks one function of this
module what its judgement does (:func:`judge_mask`, :func:`judge_pair`, :func:`correct`,
:func:`route_mask`, :func:`route_pair`), and writes the :class:`Outcome`. Nothing else changes a mask's
state or a pair's polarity, exhaustivity or decider.

States
  A mask is ``candidate``, ``accepted`` or ``rejected``; ``decided_by`` (``ai`` | ``human``) is set
  exactly when it is not a candidate.
  A pair carries one *claim* (:class:`Claim`) with its decider: none; ``missing`` (the phrase is
  present, instances lack masks); ``exhaustive`` (every instance has a mask among the masks not
  rejected); ``negative`` (the phrase is absent). Stored as (``is_exhaustive``, ``polarity``,
  ``decided_by``): none = (NULL, …, NULL), missing = (false, positive, d), exhaustive = (true, …, d),
  negative = (true, negative, d). ``polarity`` is derived (:func:`polarity_of`): ``negative`` for a
  negative claim, ``positive`` when a mask is accepted or the claim is ``missing``, else ``unknown``
  (an exhaustive claim whose masks are all still candidates waits for them).

Authority
  A person's decision always stands over the AI's; the router never changes what a person decided.
  Between people a decision has a level (:class:`Level`): a correction (the whole set of masks) above
  an exhaustivity verdict (its author saw the pair's masks) above a mask verdict. A decision may
  change what lower levels decided; one that disagrees with what *another task* decided at the same or
  a higher level is a :class:`Conflict`: the caller appends the verdict, changes nothing and tells the
  person. Agreeing with the settled state is no conflict (nothing changes). The same task deciding
  again (a multi-review majority, a superseding Label Studio edit) is no conflict either.

Undo
  A person may take back their last verdict (:func:`undo`): what it changed (:func:`record`, kept in the
  verdict) goes back to what it was, provided nothing has decided those items since; the masks a
  correction drew are rejected (never deleted). The taking back is itself a verdict (label
  :data:`UNDONE`) that supersedes the one it takes back; it is no judgement of its own.

Consequences
  accepting a mask makes its pair positive; a person accepting a mask on a pair the AI called negative
  clears that claim and asks a person to check the pair again; an exhaustive claim whose masks all end
  rejected is void (the masks it vouched for were wrong): the claim is cleared and the pair checked
  again; "not present" rejects every mask; a correction accepts exactly the masks it keeps or draws.

Its words are the vocabulary's (engine/domain/vocabulary.py); the short names below are aliases of
its members. Pure: plain dataclasses and StrEnums, no database.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.domain.vocabulary import (
    CorrectionLabel,
    Decider,
    MaskLabel,
    MaskState,
    PairLabel,
    Polarity,
    RouteMaskLabel,
    RoutePairLabel,
    TaskKind,
)

CANDIDATE, ACCEPTED, REJECTED = MaskState.CANDIDATE, MaskState.ACCEPTED, MaskState.REJECTED
AI, HUMAN = Decider.AI, Decider.HUMAN
POSITIVE, NEGATIVE, UNKNOWN = Polarity.POSITIVE, Polarity.NEGATIVE, Polarity.UNKNOWN
CHECK_EXHAUSTIVITY, CORRECT = TaskKind.CHECK_EXHAUSTIVITY, TaskKind.CORRECT

#: labels of a person's verdicts, per task kind (the queue page shows these)
MASK_LABELS = tuple(MaskLabel)
PAIR_LABELS = tuple(PairLabel)
CORRECTION_LABELS = tuple(CorrectionLabel)
#: labels of the router's automatic decisions (engine/domain/routing.py)
ROUTE_MASK_LABELS = tuple(RouteMaskLabel)
ROUTE_PAIR_LABELS = tuple(RoutePairLabel)


class Claim(enum.StrEnum):
    NONE = "none"
    MISSING = "missing"
    EXHAUSTIVE = "exhaustive"
    NEGATIVE = "negative"


class Level(enum.IntEnum):
    """How much of the pair a person's decision covers (higher stands over lower)."""

    MASK = 1
    PAIR = 2
    CORRECTION = 3


class DecisionError(ValueError):
    """A judgement the model does not know (a programming error of the caller)."""


@dataclass(frozen=True)
class Decision:
    """A person's decision that set the current state of an item: which task, what it said, when."""

    task_id: int | None
    level: Level
    label: str
    verdict_id: int | None = None
    user: str | None = None
    at: dt.datetime | None = None

    def describe(self) -> str:
        who = f" by {self.user}" if self.user else ""
        when = f" at {self.at.isoformat(timespec='seconds')}" if self.at else ""
        task = f"task {self.task_id}" if self.task_id is not None else "a decision without a task"
        return f"{task} ({self.label!r}{who}{when})"


@dataclass(frozen=True)
class MaskFacts:
    id: int
    state: MaskState
    decided_by: Decider | None = None
    decision: Decision | None = None  # a person's decision that set the state, when decided_by is human


@dataclass(frozen=True)
class PairFacts:
    id: int
    claim: Claim
    decided_by: Decider | None
    masks: tuple[MaskFacts, ...] = ()
    decision: Decision | None = None  # a person's decision that made the claim, when decided_by is human

    def mask(self, mask_id: int) -> MaskFacts:
        for m in self.masks:
            if m.id == mask_id:
                return m
        raise DecisionError(f"mask {mask_id} is not a mask of pair {self.id}")

    @property
    def polarity(self) -> Polarity:
        return polarity_of(self.claim, (m.state for m in self.masks))


@dataclass(frozen=True)
class Conflict:
    """A judgement that disagrees with a person's decision of another task."""

    message: str
    decision: Decision | None

    def to_dict(self) -> dict[str, object]:
        d = self.decision
        return {"message": self.message,
                "task_id": d.task_id if d else None, "label": d.label if d else None,
                "verdict_id": d.verdict_id if d else None, "level": d.level.name.lower() if d else None,
                "at": d.at.isoformat() if d and d.at else None}


@dataclass(frozen=True)
class PairState:
    """The pair's columns to write."""

    claim: Claim
    decided_by: Decider | None
    polarity: Polarity

    @property
    def is_exhaustive(self) -> bool | None:
        return {Claim.NONE: None, Claim.MISSING: False}.get(self.claim, True)


@dataclass(frozen=True)
class Outcome:
    """What a judgement does. ``conflict`` set: nothing changes (the caller still records the verdict)."""

    conflict: Conflict | None = None
    # mask id → (state, decided_by); decided_by None only with candidate (an undo restoring a candidate)
    masks: Mapping[int, tuple[MaskState, Decider | None]] = field(default_factory=dict)
    pair: PairState | None = None  # None: the pair's columns stay as they are
    follow_up: TaskKind | None = None  # a task kind the pair now needs (check_exhaustivity | correct)
    follow_up_reason: str | None = None
    settles: bool = False  # a person settled the pair: its other open tasks are moot
    new_masks: tuple[MaskState, Decider] | None = None  # (state, decided_by) of masks a correction draws

    @property
    def applied(self) -> bool:
        return self.conflict is None


# ----------------------------------------------------------------------------- derived state
def claim_of(is_exhaustive: bool | None, polarity: str, decided_by: str | None) -> Claim:
    """The claim the stored columns hold."""
    if decided_by is None or is_exhaustive is None:
        return Claim.NONE
    if not is_exhaustive:
        return Claim.MISSING
    return Claim.NEGATIVE if polarity == NEGATIVE else Claim.EXHAUSTIVE


def polarity_of(claim: Claim, states: Iterable[str]) -> Polarity:
    if claim == Claim.NEGATIVE:
        return NEGATIVE
    if claim == Claim.MISSING or any(s == ACCEPTED for s in states):
        return POSITIVE
    return UNKNOWN


def _resolve(pair: PairFacts, masks: Mapping[int, tuple[MaskState, Decider | None]], claim: Claim,
             decided_by: Decider | None, follow_up: TaskKind | None = None, reason: str | None = None,
             settles: bool = False, new_masks: tuple[MaskState, Decider] | None = None, n_new: int = 0) -> Outcome:
    """The outcome once ``masks`` changed and the pair holds ``claim``: derive the polarity, and void
    an exhaustive claim whose masks all ended rejected."""
    states = [masks.get(m.id, (m.state, m.decided_by))[0] for m in pair.masks]
    states += [new_masks[0]] * n_new if new_masks else []
    if claim == Claim.EXHAUSTIVE and states and all(s == REJECTED for s in states):
        claim, decided_by = Claim.NONE, None
        follow_up = CHECK_EXHAUSTIVITY
        reason = "every mask the exhaustive claim covered was rejected: check the pair again"
    elif claim == Claim.EXHAUSTIVE and not states:
        claim = Claim.NEGATIVE  # nothing shown and nothing missing: the phrase is absent
    pair_state = PairState(claim, decided_by, polarity_of(claim, states))
    return Outcome(None, dict(masks), pair_state, follow_up, reason, settles, new_masks)


def _conflict(what: str, decision: Decision | None, settled: str) -> Outcome:
    because = f"{settled} by {decision.describe()}" if decision else settled
    return Outcome(Conflict(f"{what} conflicts with a decision already made: {because}. Your verdict was "
                            "recorded but not applied.", decision))


def _other_task(decision: Decision | None, task_id: int | None, redecide: bool) -> bool:
    """The state was set by another task's decision (or we cannot tell: then it counts as another)."""
    if decision is None:
        return True
    return not (redecide and decision.task_id == task_id)


# ------------------------------------------------------------------------------ a person's
def judge_mask(pair: PairFacts, mask_id: int, label: str, *, task_id: int | None,
               redecide: bool = False) -> Outcome:
    """A person's verify_mask verdict (accept | reject | ungroundable)."""
    if label not in MASK_LABELS:
        raise DecisionError(f"unknown mask label {label!r}")
    mask = pair.mask(mask_id)
    state = ACCEPTED if label == MaskLabel.ACCEPT else REJECTED
    if pair.claim == Claim.NEGATIVE and pair.decided_by == HUMAN and state == ACCEPTED:
        return _conflict(f"accepting mask {mask_id}", pair.decision, "the pair was judged 'phrase not present'")
    if mask.decided_by == HUMAN and mask.state != state and _other_task(mask.decision, task_id, redecide):
        return _conflict(f"{label!r} on mask {mask_id}", mask.decision, f"the mask was {mask.state}")
    if mask.state == state and mask.decided_by == HUMAN:
        return Outcome()  # agrees: nothing to change
    claim, decided_by = pair.claim, pair.decided_by
    follow_up = reason = None
    if state == ACCEPTED and claim == Claim.NEGATIVE:  # the AI's negative: a person saw an instance
        claim, decided_by = Claim.NONE, None
        follow_up, reason = CHECK_EXHAUSTIVITY, f"a person accepted mask {mask_id} on a pair the AI judged negative"
    return _resolve(pair, {mask_id: (state, HUMAN)}, claim, decided_by, follow_up, reason)


def _pair_agrees(pair: PairFacts, label: PairLabel) -> bool:
    surviving = any(m.state != REJECTED for m in pair.masks)
    return {PairLabel.NOT_PRESENT: pair.claim == Claim.NEGATIVE,
            PairLabel.MISSING: pair.claim == Claim.MISSING,
            PairLabel.COMPLETE: pair.claim == (Claim.EXHAUSTIVE if surviving else Claim.NEGATIVE)}[label]


def judge_pair(pair: PairFacts, label: str, *, task_id: int | None, redecide: bool = False) -> Outcome:
    """A person's check_exhaustivity verdict (complete | missing | not_present). It stands over mask
    verdicts (the person saw the masks) and under a correction."""
    if label not in PAIR_LABELS:
        raise DecisionError(f"unknown exhaustivity label {label!r}")
    if pair.decided_by == HUMAN and pair.claim != Claim.NONE and not _pair_agrees(pair, PairLabel(label)):
        level = pair.decision.level if pair.decision else Level.PAIR
        if level >= Level.PAIR and _other_task(pair.decision, task_id, redecide):
            return _conflict(f"{label!r} on pair {pair.id}", pair.decision, f"the pair was judged {pair.claim.value}")
    if label == PairLabel.NOT_PRESENT:
        changes = {m.id: (REJECTED, HUMAN) for m in pair.masks if m.state != REJECTED}
        return _resolve(pair, changes, Claim.NEGATIVE, HUMAN, settles=True)
    if label == PairLabel.MISSING:
        return _resolve(pair, {}, Claim.MISSING, HUMAN, CORRECT, f"instances missing (task {task_id})")
    surviving = any(m.state != REJECTED for m in pair.masks)
    return _resolve(pair, {}, Claim.EXHAUSTIVE if surviving else Claim.NEGATIVE, HUMAN)


def correct(pair: PairFacts, kept: Iterable[int], n_new: int, *, task_id: int | None,
            redecide: bool = False) -> Outcome:
    """A person's correction: exactly the kept masks and ``n_new`` drawn ones are the pair's masks
    (none: the phrase is not present)."""
    kept = set(kept)
    for mask_id in kept:
        pair.mask(mask_id)  # raises for a mask of another pair
    if (pair.decided_by == HUMAN and pair.decision is not None and pair.decision.level >= Level.CORRECTION
            and _other_task(pair.decision, task_id, redecide)):
        empty = not kept and not n_new
        if not (empty and pair.claim == Claim.NEGATIVE):
            return _conflict(f"the correction of pair {pair.id}", pair.decision, "the pair was corrected already")
    changes = {m.id: (ACCEPTED if m.id in kept else REJECTED, HUMAN) for m in pair.masks
               if m.id in kept or m.state != REJECTED}
    claim = Claim.EXHAUSTIVE if kept or n_new else Claim.NEGATIVE
    return _resolve(pair, changes, claim, HUMAN, settles=True, new_masks=(ACCEPTED, HUMAN) if n_new else None,
                    n_new=n_new)


# ------------------------------------------------------------------------------ the router's
def route_mask(pair: PairFacts, mask_id: int, label: str) -> Outcome:
    """The router auto-accepts or auto-rejects a mask on the AI's word. A person's decision on the
    mask, or a person's negative, stands: nothing changes."""
    if label not in ROUTE_MASK_LABELS:
        raise DecisionError(f"unknown route label {label!r}")
    mask = pair.mask(mask_id)
    state = ACCEPTED if label == RouteMaskLabel.ACCEPT else REJECTED
    if mask.decided_by == HUMAN or (state == ACCEPTED and pair.claim == Claim.NEGATIVE and pair.decided_by == HUMAN):
        return Outcome()
    claim, decided_by = pair.claim, pair.decided_by
    if state == ACCEPTED and claim == Claim.NEGATIVE:  # the AI's newer word on the AI's own negative
        claim, decided_by = Claim.NONE, None
    return _resolve(pair, {mask_id: (state, AI)}, claim, decided_by)


def route_pair(pair: PairFacts, label: str) -> Outcome:
    """The router auto-accepts a pair as exhaustive or as a verified negative. A person's claim stands."""
    if label not in ROUTE_PAIR_LABELS:
        raise DecisionError(f"unknown route label {label!r}")
    if pair.decided_by == HUMAN:
        return Outcome()
    if label == RoutePairLabel.NEGATIVE and any(m.state == ACCEPTED for m in pair.masks):
        return Outcome()  # an accepted mask says the phrase is there
    claim = Claim.NEGATIVE if label == RoutePairLabel.NEGATIVE else Claim.EXHAUSTIVE
    return _resolve(pair, {}, claim, AI)


# ------------------------------------------------------------------------------------- undo
#: the label of a person's verdict that takes back their previous one (it supersedes it); such a
#: verdict judges nothing: it counts neither as a review nor as a decision
UNDONE = "undone"


def record(before: PairFacts, outcome: Outcome) -> dict[str, object]:
    """What an applied judgement changed, as JSON for its verdict's payload (what :func:`undo` needs):
    each changed mask's (state, decided_by) before and after, the pair's (claim, decider) before and
    after when its row changed, the follow-up task kind it asked for, whether it settled the pair."""
    masks: dict[str, object] = {}
    if outcome.conflict is None:
        for mask_id, (state, by) in outcome.masks.items():
            old = before.mask(mask_id)
            if (old.state, old.decided_by) != (state, by):
                masks[str(mask_id)] = {"before": [old.state.value, _value(old.decided_by)],
                                       "after": [state.value, _value(by)]}
    pair: dict[str, object] | None = None
    p = outcome.pair
    if outcome.conflict is None and p is not None and (p.claim, p.decided_by) != (before.claim, before.decided_by):
        pair = {"before": [before.claim.value, _value(before.decided_by)],
                "after": [p.claim.value, _value(p.decided_by)]}
    return {"masks": masks, "pair": pair, "applied": outcome.conflict is None,
            "follow_up": outcome.follow_up.value if outcome.follow_up and outcome.conflict is None else None,
            "settles": outcome.settles and outcome.conflict is None}


def _value(d: Decider | None) -> str | None:
    return None if d is None else d.value


def _decider_of(x: object) -> Decider | None:
    return None if x is None else Decider(str(x))


def _undo_conflict(message: str) -> Outcome:
    return Outcome(Conflict(f"{message}: the verdict can no longer be undone.", None))


def undo(pair: PairFacts, recorded: Mapping[str, object], new_mask_ids: Iterable[int] = ()) -> Outcome:
    """Take back a person's verdict whose applied changes are ``recorded`` (:func:`record`), the pair
    now being ``pair``: every mask it changed and the pair's claim go back to what they were, the
    masks its correction drew (``new_mask_ids``) are rejected. A :class:`Conflict` when anything it
    changed was decided again since (its state is not what the verdict left), or when going back
    would contradict what was decided since (a negative claim over an accepted mask)."""
    masks_rec = recorded.get("masks") or {}
    if not isinstance(masks_rec, Mapping):
        raise DecisionError("the recorded mask changes are not a mapping")
    changes: dict[int, tuple[MaskState, Decider | None]] = {}
    present = {m.id: m for m in pair.masks}
    for key, change in masks_rec.items():
        mask_id = int(key)
        mask = present.get(mask_id)
        before, after = change["before"], change["after"]
        if mask is None or (mask.state.value, _value(mask.decided_by)) != (after[0], after[1]):
            return _undo_conflict(f"mask {mask_id} was decided again since")
        changes[mask_id] = (MaskState(before[0]), _decider_of(before[1]))
    for mask_id in new_mask_ids:
        mask = present.get(mask_id)
        if mask is None or mask.state == REJECTED:
            continue
        if (mask.state, mask.decided_by) != (ACCEPTED, HUMAN):
            return _undo_conflict(f"mask {mask_id} was decided again since")
        changes[mask_id] = (REJECTED, HUMAN)
    claim, decided_by = pair.claim, pair.decided_by
    pair_rec = recorded.get("pair")
    if isinstance(pair_rec, Mapping):
        before, after = pair_rec["before"], pair_rec["after"]
        if (claim.value, _value(decided_by)) != (after[0], after[1]):
            return _undo_conflict(f"pair {pair.id} was judged again since")
        claim, decided_by = Claim(before[0]), _decider_of(before[1])
    states = [changes.get(m.id, (m.state, m.decided_by))[0] for m in pair.masks]
    if claim == Claim.NEGATIVE and any(s == ACCEPTED for s in states):
        return _undo_conflict(f"a mask of pair {pair.id} was accepted since, and the pair was judged negative before")
    if not changes and pair_rec is None:
        return Outcome()
    return _resolve(pair, changes, claim, decided_by)
