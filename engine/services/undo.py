"""Undo of a person's last verdict (issue 20).

A person may take back their last verdict until their next verdict or ``queue.undo_window_s`` (60 s),
whichever comes first. The undo appends a verdict (label :data:`~engine.domain.decisions.UNDONE`) that
supersedes the one taken back — verdicts are append-only — and, through the decision model
(:func:`engine.domain.decisions.undo`), puts back what that verdict changed (its payload's ``prior``,
written by engine/services/annotation.py): the masks it decided, the pair's claim; the masks its
correction drew are rejected, never deleted. The follow-up task it asked for is cancelled while still
open, the tasks it settled as moot are re-opened (unless another live task of the same item exists),
and its own task is leased to the person again, so the page shows it back.

Refused (:class:`NotUndoable`, HTTP 409): no verdict, a gold answer, one older than the window, one
that is not the person's latest (or another person's), one already taken back or replaced, one on a
task that moved on (someone else judged or took it), one whose items were decided again since (the
decision model's conflict), one stored before undo existed (nothing recorded to put back)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import HumanTask, Verdict
from engine.domain import decisions as dm
from engine.domain.vocabulary import TaskKind, TaskState, VerdictSource
from engine.services import decide
from engine.settings import QueueSettings


class NotUndoable(RuntimeError):
    """Nothing the person may undo now; the message says why (HTTP 409)."""


class NoSuchVerdict(LookupError):
    """The named verdict does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Undoable:
    """The verdict a person may undo now, and until when."""

    verdict_id: int
    task_id: int
    label: str
    until: dt.datetime


@dataclass(frozen=True)
class Undone:
    verdict_id: int  # the undo's own verdict
    undone_id: int  # the verdict taken back
    task_id: int  # leased to the person again
    reopened: tuple[int, ...]  # tasks the verdict had cancelled, open again


def _latest(session: Session, user_id: int) -> Verdict | None:
    return session.scalars(select(Verdict).where(Verdict.user_id == user_id)
                           .order_by(Verdict.id.desc()).limit(1)).first()


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _check(session: Session, verdict: Verdict | None, user_id: int, now: dt.datetime,
           settings: QueueSettings) -> tuple[Verdict, dt.datetime]:
    """The verdict, if its author may undo it now (and until when); else :class:`NotUndoable`."""
    if verdict is None:
        raise NotUndoable("you have given no verdict to undo")
    if verdict.user_id != user_id:
        raise NotUndoable(f"verdict {verdict.id} is another person's: only its author may undo it")
    latest = _latest(session, user_id)
    if latest is not None and latest.id != verdict.id:
        raise NotUndoable(f"verdict {verdict.id} is not your last one: you gave a later verdict")
    if verdict.label == dm.UNDONE:
        raise NotUndoable("your last verdict was undone already")
    if verdict.source != VerdictSource.HUMAN or verdict.task_id is None:
        raise NotUndoable(f"verdict {verdict.id} was not given in the queue")
    if (verdict.payload or {}).get("gold"):
        raise NotUndoable("a gold task's answer cannot be undone")
    until = _aware(verdict.created_at) + dt.timedelta(seconds=settings.undo_window_s)
    if _aware(now) > until:
        raise NotUndoable(f"too late: a verdict can be undone for {settings.undo_window_s} s")
    if session.scalars(select(Verdict.id).where(Verdict.supersedes_id == verdict.id)).first() is not None:
        raise NotUndoable(f"verdict {verdict.id} was replaced already")
    return verdict, until


def undoable(session: Session, user_id: int, settings: QueueSettings, now: dt.datetime | None = None) -> Undoable:
    """The person's verdict they may undo now (:class:`NotUndoable` when none)."""
    verdict, until = _check(session, _latest(session, user_id), user_id, now or utcnow(), settings)
    assert verdict.task_id is not None  # _check
    return Undoable(verdict.id, verdict.task_id, verdict.label, until)


def undo_last(session: Session, user_id: int, now: dt.datetime | None, settings: QueueSettings,
              verdict_id: int | None = None) -> Undone:
    """Undo ``user_id``'s last verdict (``verdict_id``: only if it is that one). Locks the pair, then
    the task, as every writer of labels does."""
    now = now or utcnow()
    if verdict_id is not None:
        named = session.get(Verdict, verdict_id)
        if named is None:
            raise NoSuchVerdict(f"no verdict {verdict_id}")
        verdict, _ = _check(session, named, user_id, now, settings)
    else:
        verdict, _ = _check(session, _latest(session, user_id), user_id, now, settings)
    task_id = verdict.task_id
    assert task_id is not None  # _check
    pair_row = decide.lock_pair_of_task(session, task_id)
    task = session.get(HumanTask, task_id, with_for_update=True, populate_existing=True)
    if pair_row is None or task is None:
        raise NotUndoable(f"task {task_id} is gone")
    _check_task(session, task, verdict, user_id)
    payload: dict[str, Any] = verdict.payload or {}
    facts = decide.facts(session, task.pair_id, row=pair_row)
    prior = payload.get("prior")
    if prior is None and task.state == TaskState.DONE and not payload.get("conflict"):
        raise NotUndoable(f"verdict {verdict.id} was stored before undo existed: nothing recorded to put back")
    outcome = dm.undo(facts, prior, payload.get("new_mask_ids") or []) if prior else dm.Outcome()
    if outcome.conflict is not None:
        raise NotUndoable(outcome.conflict.message)
    follow_up = _follow_up(session, task, verdict, prior)
    undo = Verdict(kind=verdict.kind, source=VerdictSource.HUMAN, pair_id=verdict.pair_id, mask_id=verdict.mask_id,
                   task_id=task.id, user_id=user_id, label=dm.UNDONE, supersedes_id=verdict.id, created_at=now,
                   payload={"undoes": verdict.id, "label": verdict.label})
    session.add(undo)
    session.flush()
    decide.write(session, task.pair_id, outcome, task_id=task.id, priority=task.priority, now=now, before=facts)
    if follow_up is not None:
        decide.cancel_open(session, [HumanTask.id == follow_up], f"verdict {verdict.id} undone")
    reopened = _reopen_settled(session, task, verdict, now) if prior and prior.get("settles") else ()
    task.reviews_done = max(0, task.reviews_done - 1)
    task.state, task.lease_owner_id = TaskState.LEASED, user_id
    task.lease_expires_at, task.updated_at = now + dt.timedelta(seconds=settings.lease_s), now
    session.flush()
    return Undone(undo.id, verdict.id, task.id, reopened)


def _check_task(session: Session, task: HumanTask, verdict: Verdict, user_id: int) -> None:
    """The task has not moved on since the verdict: nobody else judged or holds it, and no other live
    task of the same item would stand beside it once it is leased again (T5)."""
    later = session.scalars(select(Verdict.id).where(Verdict.task_id == task.id, Verdict.id > verdict.id)).first()
    if later is not None:
        raise NotUndoable(f"task {task.id} was judged again since (verdict {later})")
    if task.state == TaskState.LEASED and task.lease_owner_id != user_id:
        raise NotUndoable(f"task {task.id} was taken by another person since")
    if task.state == TaskState.CANCELLED:
        raise NotUndoable(f"task {task.id} was closed since")


def _follow_up(session: Session, task: HumanTask, verdict: Verdict, prior: dict[str, Any] | None) -> int | None:
    """The open task the verdict asked for (to cancel); :class:`NotUndoable` when someone holds it
    already, or when another live task of the undone task's item would be a duplicate."""
    made = None
    if prior and prior.get("follow_up"):
        row = session.execute(select(HumanTask.id, HumanTask.state).where(
            HumanTask.kind == TaskKind(prior["follow_up"]), HumanTask.pair_id == task.pair_id,
            HumanTask.mask_id.is_(None), HumanTask.is_gold.is_(False), HumanTask.created_at >= verdict.created_at,
            HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]))).first()
        if row is not None and row.state == TaskState.LEASED:
            raise NotUndoable(f"task {row.id}, which the verdict asked for, is being worked on already")
        made = row.id if row is not None else None
    if not task.is_gold and task.state != TaskState.LEASED:
        twin = _live_twin(session, task, exclude=made)
        if twin is not None:
            raise NotUndoable(f"task {twin} asks the same question now")
    return made


def _live_twin(session: Session, task: HumanTask, exclude: int | None = None) -> int | None:
    """Another live non-gold task of the same (kind, pair, mask) as ``task``."""
    stmt = select(HumanTask.id).where(
        HumanTask.kind == task.kind, HumanTask.pair_id == task.pair_id, HumanTask.id != task.id,
        HumanTask.mask_id.is_(None) if task.mask_id is None else HumanTask.mask_id == task.mask_id,
        HumanTask.is_gold.is_(False), HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]))
    if exclude is not None:
        stmt = stmt.where(HumanTask.id != exclude)
    return session.scalars(stmt.limit(1)).first()


def _reopen_settled(session: Session, task: HumanTask, verdict: Verdict, now: dt.datetime) -> tuple[int, ...]:
    """Re-open the tasks the verdict cancelled as moot (engine/services/decide.py cancel_moot notes
    "settled by task N" in their reason), each unless another live task asks its question now."""
    note = re.compile(rf"cancelled: settled by task {task.id}(?!\d)")
    cancelled = session.scalars(select(HumanTask).where(
        HumanTask.pair_id == task.pair_id, HumanTask.state == TaskState.CANCELLED, HumanTask.is_gold.is_(False),
        HumanTask.reason.contains(f"settled by task {task.id}")).order_by(HumanTask.id)).all()
    reopened: list[int] = []
    for other in cancelled:
        if not note.search(other.reason or "") or _live_twin(session, other) is not None:
            continue
        session.execute(update(HumanTask).where(HumanTask.id == other.id, HumanTask.state == TaskState.CANCELLED)
                        .values(state=TaskState.OPEN, updated_at=now,
                                reason=func.substr(func.coalesce(HumanTask.reason, "")
                                                   + f" | re-opened: verdict {verdict.id} undone", 1, 2000))
                        .execution_options(synchronize_session="fetch"))
        reopened.append(other.id)
    return tuple(reopened)
