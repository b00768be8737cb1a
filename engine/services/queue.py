"""The human task queue: lease the next task, mix in gold items, keep leases alive, expire them.

Leasing takes the highest-priority open task of the kinds asked for that the annotator has not
judged before. On PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED so concurrent
annotators never wait on each other; on every database the lease itself is a compare-and-set
(UPDATE … WHERE state = 'open'), so two annotators can never hold the same task."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.upsert import insert_ignore
from engine.db.models import GoldItem, HumanTask, TaskKind, TaskSkip, TaskState, Verdict

MAX_CANDIDATES = 8


class LeaseLost(RuntimeError):
    """The caller does not hold this task's lease (expired, or someone else's)."""


def _not_judged_by(user_id):  # type: ignore[no-untyped-def]
    """Neither judged (this item, in any task) nor skipped (this task) by the user."""
    judged = exists().where(
        Verdict.user_id == user_id, Verdict.pair_id == HumanTask.pair_id,
        or_(HumanTask.mask_id.is_(None), Verdict.mask_id == HumanTask.mask_id))
    skipped = exists().where(TaskSkip.user_id == user_id, TaskSkip.task_id == HumanTask.id)
    return ~judged & ~skipped


@functools.cache
def _lease_statements(filter_kinds: bool) -> tuple[Any, Any, Any]:
    """(candidates, PostgreSQL lease, compare-and-set lease), built once: building a statement of
    this size costs more than PostgreSQL takes to run it. Parameters: user_id, kinds (when
    ``filter_kinds``), expires, now; the compare-and-set lease also task_id."""
    user = bindparam("user_id")
    candidates = select(HumanTask.id).where(HumanTask.state == TaskState.OPEN, HumanTask.is_gold.is_(False),
                                            _not_judged_by(user))
    if filter_kinds:  # every kind: no filter, the (priority, id) index gives the order
        candidates = candidates.where(HumanTask.kind.in_(bindparam("kinds", expanding=True)))
    candidates = candidates.order_by(HumanTask.priority.desc(), HumanTask.id)
    lease = dict(state=TaskState.LEASED, lease_owner_id=user, lease_expires_at=bindparam("expires"),
                 attempts=HumanTask.attempts + 1, updated_at=bindparam("now"))
    # one statement: lock exactly one candidate, skipping rows other annotators hold (locking several
    # would hide them from concurrent callers, who could then see an empty queue)
    chosen = candidates.limit(1).with_for_update(skip_locked=True).scalar_subquery()
    pg_lease = update(HumanTask).where(HumanTask.id == chosen).values(**lease).returning(HumanTask)
    cas_lease = (update(HumanTask).where(HumanTask.id == bindparam("task_id"), HumanTask.state == TaskState.OPEN)
                 .values(**lease))
    return candidates, pg_lease, cas_lease


def next_task(session: Session, user_id: int, kinds: Sequence[TaskKind], lease_s: int,
              now: dt.datetime | None = None) -> HumanTask | None:
    """Lease the next task for ``user_id`` (None when the queue has nothing for them)."""
    now = now or utcnow()
    filter_kinds = set(kinds) != set(TaskKind)
    candidates, pg_lease, cas_lease = _lease_statements(filter_kinds)
    params: dict[str, Any] = {"user_id": user_id, "expires": now + dt.timedelta(seconds=lease_s), "now": now}
    if filter_kinds:
        params["kinds"] = [TaskKind(k) for k in kinds]
    if session.get_bind().dialect.name == "postgresql":
        return session.scalars(pg_lease, params, execution_options={"synchronize_session": False}).one_or_none()
    # SQLite serialises writers: a few candidates, each taken by compare-and-set
    for task_id in session.scalars(candidates.limit(MAX_CANDIDATES), params).all():
        taken = session.execute(cas_lease, {**params, "task_id": task_id},
                                execution_options={"synchronize_session": False}).rowcount
        if taken == 1:
            return session.get(HumanTask, task_id, populate_existing=True)
    return None


def heartbeat(session: Session, task_id: int, user_id: int, lease_s: int, now: dt.datetime | None = None) -> dt.datetime:
    """Extend the caller's lease; raises LeaseLost when they no longer hold it. A lease past its
    expiry that the sweep has not returned yet is still the caller's (as for submitting)."""
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=lease_s)
    held = session.execute(
        update(HumanTask)
        .where(HumanTask.id == task_id, HumanTask.state == TaskState.LEASED,
               HumanTask.lease_owner_id == user_id)
        .values(lease_expires_at=expires, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if held != 1:
        raise LeaseLost(f"task {task_id} is not leased to you any more")
    return expires


def expire_leases(session: Session, now: dt.datetime | None = None) -> int:
    """Return every task whose lease ran out to the queue (a gold task, made for one person, is
    cancelled instead); how many."""
    now = now or utcnow()
    expired = (HumanTask.state == TaskState.LEASED, HumanTask.lease_expires_at < now)
    gold = session.execute(
        update(HumanTask).where(*expired, HumanTask.is_gold.is_(True))
        .values(state=TaskState.CANCELLED, lease_owner_id=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0
    return gold + (session.execute(
        update(HumanTask).where(*expired, HumanTask.is_gold.is_(False))
        .values(state=TaskState.OPEN, lease_owner_id=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0)


def release(session: Session, task_id: int, user_id: int, *, skip: bool = False,
            now: dt.datetime | None = None) -> None:
    """Give a leased task back unjudged; raises LeaseLost when the caller does not hold it. A skip
    is remembered: the task is not handed to this user again (everyone else still gets it)."""
    now = now or utcnow()
    task = session.get(HumanTask, task_id, with_for_update=True)
    if task is None or task.state != TaskState.LEASED or task.lease_owner_id != user_id:
        raise LeaseLost(f"task {task_id} is not leased to you")
    if skip and not task.is_gold:
        insert_ignore(session, TaskSkip.__table__, [{"task_id": task_id, "user_id": user_id, "created_at": now}],
                      ["user_id", "task_id"])
    task.state = TaskState.CANCELLED if task.is_gold else TaskState.OPEN
    task.lease_owner_id, task.lease_expires_at, task.updated_at = None, None, now
    session.flush()


def lease_gold(session: Session, user_id: int, kinds: Sequence[TaskKind], lease_s: int,
               rng: random.Random | None = None, now: dt.datetime | None = None) -> HumanTask | None:
    """A fresh task for a gold item of the asked kinds that the user has not seen, leased to them."""
    now = now or utcnow()
    seen = exists().where(
        Verdict.user_id == user_id, Verdict.pair_id == GoldItem.pair_id,
        or_(GoldItem.mask_id.is_(None), Verdict.mask_id == GoldItem.mask_id))
    candidates = session.execute(
        select(GoldItem.id, GoldItem.kind, GoldItem.pair_id, GoldItem.mask_id, GoldItem.answer)
        .where(GoldItem.is_active.is_(True), GoldItem.kind.in_(list(kinds)), ~seen)
        .order_by(GoldItem.id).limit(64)).all()
    if not candidates:
        return None
    item = (rng or random).choice(candidates)
    task = HumanTask(kind=item.kind, pair_id=item.pair_id, mask_id=item.mask_id, state=TaskState.LEASED,
                     priority=0, reason="gold item", lease_owner_id=user_id,
                     lease_expires_at=now + dt.timedelta(seconds=lease_s), attempts=1, is_gold=True,
                     gold_item_id=item.id, gold_answer={"label": item.answer}, reviews_required=1,
                     created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    return task


def lease_for(session: Session, user_id: int, kinds: Sequence[TaskKind], *, lease_s: int, gold_rate: float,
              rng: random.Random | None = None, now: dt.datetime | None = None) -> HumanTask | None:
    """The next task for an annotator: a gold item at ``gold_rate`` (when one is left for them),
    otherwise the queue's highest-priority task."""
    rng = rng or random.Random()
    if gold_rate > 0 and rng.random() < gold_rate:
        task = lease_gold(session, user_id, kinds, lease_s, rng, now)
        if task is not None:
            return task
    return next_task(session, user_id, kinds, lease_s, now)




def held_by(session: Session, user_id: int) -> list[HumanTask]:
    """The tasks leased to the user (a page that crashed picks its leases up again)."""
    return list(session.scalars(select(HumanTask).where(
        HumanTask.state == TaskState.LEASED, HumanTask.lease_owner_id == user_id).order_by(HumanTask.id)))
