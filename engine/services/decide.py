"""Reading and writing label state for the decision model (engine/domain/decisions.py).

``facts`` reads what the model needs about a pair (its claim, its masks, and who decided them when a
person did), locking the pair's row so that two decisions on one pair never interleave (PostgreSQL);
``write`` applies an :class:`~engine.domain.decisions.Outcome`: mask states, the pair's columns,
the moot open tasks of a settled pair, the follow-up task a pair now needs. Every writer of label
state — verdicts, corrections, the Label Studio pull, the router — goes through these two."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import HumanTask, ImageConcept, Mask, User, Verdict
from engine.domain import decisions as dm
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    Decider,
    MaskState,
    PairLabel,
    Polarity,
    TaskKind,
    TaskState,
    VerdictKind,
)

LEVELS = {VerdictKind.MASK: dm.Level.MASK, VerdictKind.EXHAUSTIVITY: dm.Level.PAIR,
          VerdictKind.CORRECTION: dm.Level.CORRECTION}
#: how many of a pair's latest verdicts by people are read to find the decision behind its state
_LOOKBACK = 64

_PAIR_COLUMNS = (ImageConcept.id, ImageConcept.polarity, ImageConcept.is_exhaustive, ImageConcept.decided_by)
_PAIR = select(*_PAIR_COLUMNS).where(ImageConcept.id == bindparam("pair_id"))
_TASK_PAIR = select(*_PAIR_COLUMNS).where(
    ImageConcept.id == select(HumanTask.pair_id).where(HumanTask.id == bindparam("task_id")).scalar_subquery())
_MASKS = select(Mask.id, Mask.state, Mask.decided_by)


def _decider(x: str | None) -> Decider | None:
    return None if x is None else Decider(x)


def _locked(session: Session, stmt: Any) -> Any:
    """``stmt`` holding the pair's row until the transaction ends (PostgreSQL; SQLite has one writer
    at a time). Every writer of a pair's labels takes this lock before it locks any of its tasks."""
    return stmt.with_for_update(of=ImageConcept) if session.get_bind().dialect.name == "postgresql" else stmt


def lock_pair_of_task(session: Session, task_id: int) -> Any:
    """The pair of a task (its columns, for :func:`facts`), locked; None when there is no such task.
    One statement: a verdict takes the pair's lock before its task's."""
    return session.execute(_locked(session, _TASK_PAIR), {"task_id": task_id}).first()


def facts(session: Session, pair_id: int, *, mask_id: int | None = None, lock: bool = True,
          row: Any = None) -> dm.PairFacts:
    """The pair as the decision model sees it (its row locked, unless ``row`` is the pair's columns
    read under the lock already in this transaction). The decisions of people behind its claim and
    behind ``mask_id``'s state are looked up when a person made them (only then can a judgement
    conflict)."""
    if row is None:
        row = session.execute(_locked(session, _PAIR) if lock else _PAIR, {"pair_id": pair_id}).one()
    masks = session.execute(_MASKS.where(Mask.pair_id == pair_id).order_by(Mask.id)).all()
    decided_by = _decider(row.decided_by)
    claim = dm.claim_of(row.is_exhaustive, row.polarity or Polarity.UNKNOWN, decided_by)
    people = None
    if decided_by == Decider.HUMAN or (mask_id is not None and any(
            m.id == mask_id and m.decided_by == Decider.HUMAN for m in masks)):
        people = _latest_by_people(session, pair_id)
    pair_decision = _decision(people, lambda v: v.kind in (VerdictKind.EXHAUSTIVITY, VerdictKind.CORRECTION)) \
        if decided_by == Decider.HUMAN else None
    out = []
    for m in masks:
        decision = None
        if m.id == mask_id and m.decided_by == Decider.HUMAN:
            decision = _decision(people, _about_mask(m.id))
        out.append(dm.MaskFacts(m.id, MaskState(m.state or MaskState.CANDIDATE), _decider(m.decided_by), decision))
    return dm.PairFacts(pair_id, claim, decided_by if claim != dm.Claim.NONE else None, tuple(out), pair_decision)


def _about_mask(mask_id: int) -> Callable[[Row[*tuple[Any, ...]]], bool]:
    """Whether a person's verdict decides this mask: its own mask verdict, a correction of the pair,
    or the pair's phrase not present."""

    def matches(v: Row[*tuple[Any, ...]]) -> bool:
        return bool((v.mask_id == mask_id and v.kind == VerdictKind.MASK) or v.kind == VerdictKind.CORRECTION or (
            v.kind == VerdictKind.EXHAUSTIVITY and v.label == PairLabel.NOT_PRESENT))

    return matches


def _latest_by_people(session: Session, pair_id: int) -> list[Row[*tuple[Any, ...]]]:
    return list(session.execute(
        select(Verdict.id, Verdict.task_id, Verdict.kind, Verdict.mask_id, Verdict.label, Verdict.payload,
               Verdict.created_at, Verdict.supersedes_id, User.username)
        .join(User, User.id == Verdict.user_id)
        .where(Verdict.pair_id == pair_id, Verdict.source.in_(HUMAN_SOURCES))
        .order_by(Verdict.id.desc()).limit(_LOOKBACK)))


def _decision(rows: list[Row[*tuple[Any, ...]]] | None,
              matches: Callable[[Row[*tuple[Any, ...]]], bool]) -> dm.Decision | None:
    """The newest applied verdict by a person among ``rows`` that ``matches`` (gold answers and
    conflicting verdicts never decided anything; an undo and the verdict it took back decide nothing:
    rows come newest first, so the undo is met before what it takes back)."""
    taken_back: set[int] = set()
    for v in rows or []:
        payload = v.payload or {}
        if v.label == dm.UNDONE:
            taken_back.add(v.supersedes_id)
            continue
        if payload.get("gold") or payload.get("conflict") or v.id in taken_back or not matches(v):
            continue
        return dm.Decision(v.task_id, LEVELS[v.kind], v.label, v.id, v.username, v.created_at)
    return None


def write(session: Session, pair_id: int, outcome: dm.Outcome, *, task_id: int | None = None,
          priority: int = 0, now: dt.datetime | None = None, before: dm.PairFacts | None = None) -> None:
    """Apply an outcome (nothing for a conflict). ``task_id``: the task whose decision this is (its
    own row is never cancelled as moot). ``before``: the facts the outcome was judged on — the
    pair's row is not written when its state stays what they were."""
    if outcome.conflict is not None:
        return
    now = now or utcnow()
    groups: dict[tuple[MaskState, Decider | None], list[int]] = defaultdict(list)
    for mask_id, change in outcome.masks.items():
        groups[change].append(mask_id)
    for (state, by), ids in groups.items():
        session.execute(update(Mask).where(Mask.id.in_(ids)).values(state=state, decided_by=by)
                        .execution_options(synchronize_session="fetch"))
    unchanged = before is not None and outcome.pair == dm.PairState(before.claim, before.decided_by, before.polarity)
    if outcome.pair is not None and not unchanged:
        p = outcome.pair
        session.execute(update(ImageConcept).where(ImageConcept.id == pair_id).values(
            polarity=p.polarity, is_exhaustive=p.is_exhaustive, decided_by=p.decided_by)
            .execution_options(synchronize_session="fetch"))
    if outcome.settles:
        cancel_moot(session, pair_id, task_id)
    if outcome.follow_up:
        ensure_task(session, outcome.follow_up, pair_id, outcome.follow_up_reason or "", priority, now)


def cancel_moot(session: Session, pair_id: int, done_task_id: int | None) -> None:
    """Open tasks on a pair a person has just settled (its masks or its absence) are moot.

    One conditional UPDATE: a task someone leased after this transaction began stays theirs (reading
    the open tasks first and writing them back would cancel a lease committed in between); its
    verdict will meet the settled state in the decision model."""
    conds = [HumanTask.pair_id == pair_id, HumanTask.is_gold.is_(False)]
    if done_task_id is not None:
        conds.append(HumanTask.id != done_task_id)
    cancel_open(session, conds, f"settled by task {done_task_id}")


def cancel_open(session: Session, where: list[Any], why: str) -> None:
    """Cancel the open tasks matching ``where``, noting ``why`` in their reason — one conditional
    UPDATE, so a task leased meanwhile is never cancelled under its holder."""
    note = f" | cancelled: {why}"
    session.execute(
        update(HumanTask).where(*where, HumanTask.state == TaskState.OPEN)
        .values(state=TaskState.CANCELLED, reason=func.substr(func.coalesce(HumanTask.reason, "") + note, 1, 2000))
        .execution_options(synchronize_session="fetch"))


def ensure_task(session: Session, kind: TaskKind, pair_id: int, reason: str, priority: int = 0,
                now: dt.datetime | None = None, mask_id: int | None = None) -> int:
    """The open or leased task of this kind for the item, or a new one (never two at once)."""
    now = now or utcnow()
    existing = session.scalars(select(HumanTask.id).where(
        HumanTask.kind == kind, HumanTask.pair_id == pair_id, HumanTask.is_gold.is_(False),
        HumanTask.mask_id.is_(None) if mask_id is None else HumanTask.mask_id == mask_id,
        HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]))).first()
    if existing is not None:
        return existing
    task = HumanTask(kind=kind, pair_id=pair_id, mask_id=mask_id, state=TaskState.OPEN, priority=priority,
                     reason=reason[:2000], created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    return task.id
