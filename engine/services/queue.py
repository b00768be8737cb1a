"""The human task queue: lease the next task, mix in gold items, keep leases alive, expire them,
and say why the queue is empty for someone (``why_empty``: engine/services/queue_census.py, which
also holds the "not for this person" tests the lease filters on).

Leasing takes the highest-priority open task of the kinds asked for that the annotator may take: not
one they judged or skipped, and — with ``queue.independent_review = pair`` — no exhaustivity or
correction task of a pair they judged in any task. On PostgreSQL the candidate row is locked with
FOR UPDATE SKIP LOCKED so concurrent annotators never wait on each other; on every database the lease
itself is a compare-and-set (UPDATE … WHERE state = 'open'), so two annotators can never hold the
same task.

Leases expire in every mode: before leasing, the queue returns lapsed leases itself (``sweep``, at most
every SWEEP_EVERY_S per process and database, a conditional UPDATE on the (state, lease_expires_at)
index); the Celery beat sweep does the same. A person holds at most ``queue.max_leases_per_person``
live leases (``TooManyLeases``). Gold tasks are copies made ahead of time (GOLD_COPIES per active
gold item, refilled by the sweep as they are used), with the wording of an ordinary task of their
kind, so nothing a person sees tells them apart."""

from __future__ import annotations

import datetime as dt
import functools
import random
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    SQLColumnExpression,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import GoldItem, HumanTask, TaskSkip, Verdict
from engine.db.rowcount import rowcount
from engine.db.upsert import insert_ignore
from engine.domain.vocabulary import TaskKind, TaskState
from engine.services.queue_census import CENSUS_CAP as CENSUS_CAP
from engine.services.queue_census import Blocked as Blocked
from engine.services.queue_census import EmptyQueue as EmptyQueue
from engine.services.queue_census import IndependentReview, judged_by, same_pair_judged_by, skipped_by
from engine.services.queue_census import Waiting as Waiting
from engine.services.queue_census import census as census
from engine.services.queue_census import why_empty as why_empty

MAX_CANDIDATES = 8
#: the queue returns lapsed leases itself at most this often per process and database
SWEEP_EVERY_S = 5.0
#: the advisory-lock space (PostgreSQL) in which one person's leases are taken one at a time
LEASE_LOCK_SPACE = 0x1EA5
#: open or leased copies kept per active gold item
GOLD_COPIES = 3
#: a gold copy's reason when no ordinary task of its kind has one
GOLD_FALLBACK_REASON = "needs a person"

class LeaseLost(RuntimeError):
    """The caller does not hold this task's lease (expired, or someone else's)."""


class TooManyLeases(RuntimeError):
    """The person holds ``max_leases_per_person`` live leases already (HTTP 409 too_many_leases)."""

    def __init__(self, held: int) -> None:
        super().__init__(f"you hold {held} tasks: submit or release one")
        self.held = held


def _may_take(user: SQLColumnExpression[int], independent_review: IndependentReview) -> ColumnElement[bool]:
    """Neither judged nor skipped (this task) by the user; with ``pair``, no exhaustivity or
    correction task of a pair the user judged in any task."""
    allowed = (~exists().where(*judged_by(user, HumanTask.id, HumanTask.pair_id))
               & ~exists().where(*skipped_by(user, HumanTask.id)))
    if independent_review == "pair":
        allowed &= ~exists().where(*same_pair_judged_by(user, HumanTask.kind, HumanTask.pair_id))
    return allowed


@functools.cache
def _lease_statements(filter_kinds: bool, independent_review: IndependentReview = "task") -> tuple[Any, Any, Any]:
    """(candidates, PostgreSQL lease, compare-and-set lease), built once per setting: building a
    statement of this size costs more than PostgreSQL takes to run it. Parameters: user_id, kinds
    (when ``filter_kinds``), expires, now; the compare-and-set lease also task_id."""
    user: BindParameter[int] = bindparam("user_id")
    candidates = select(HumanTask.id).where(HumanTask.state == TaskState.OPEN, HumanTask.is_gold.is_(False),
                                            _may_take(user, independent_review))
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
              now: dt.datetime | None = None, independent_review: IndependentReview = "task") -> HumanTask | None:
    """Lease the next task for ``user_id`` (None when the queue has nothing for them)."""
    now = now or utcnow()
    filter_kinds = set(kinds) != set(TaskKind)
    candidates, pg_lease, cas_lease = _lease_statements(filter_kinds, independent_review)
    params: dict[str, Any] = {"user_id": user_id, "expires": now + dt.timedelta(seconds=lease_s), "now": now}
    if filter_kinds:
        params["kinds"] = [TaskKind(k) for k in kinds]
    if session.get_bind().dialect.name == "postgresql":
        return session.scalars(pg_lease, params, execution_options={"synchronize_session": False}).one_or_none()
    # SQLite serialises writers: a few candidates, each taken by compare-and-set
    for task_id in session.scalars(candidates.limit(MAX_CANDIDATES), params).all():
        taken = rowcount(session.execute(cas_lease, {**params, "task_id": task_id},
                                         execution_options={"synchronize_session": False}))
        if taken == 1:
            return session.get(HumanTask, task_id, populate_existing=True)
    return None


def heartbeat(session: Session, task_id: int, user_id: int, lease_s: int,
              now: dt.datetime | None = None) -> dt.datetime:
    """Extend the caller's lease; raises LeaseLost when they no longer hold it. A lease past its
    expiry that the sweep has not returned yet is still the caller's (as for submitting)."""
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=lease_s)
    held = rowcount(session.execute(
        update(HumanTask)
        .where(HumanTask.id == task_id, HumanTask.state == TaskState.LEASED,
               HumanTask.lease_owner_id == user_id)
        .values(lease_expires_at=expires, updated_at=now)
        .execution_options(synchronize_session=False)
    ))
    if held != 1:
        raise LeaseLost(f"task {task_id} is not leased to you any more")
    return expires


def expire_leases(session: Session, now: dt.datetime | None = None) -> int:
    """Return every task whose lease ran out to the queue (gold copies too: they are reused); how
    many. On PostgreSQL rows locked by a running transaction (a verdict on a lapsed lease) are
    skipped, never waited for: the next sweep takes them."""
    now = now or utcnow()
    expired = (HumanTask.state == TaskState.LEASED, HumanTask.lease_expires_at < now)
    if session.get_bind().dialect.name == "postgresql":
        ids = select(HumanTask.id).where(*expired).with_for_update(skip_locked=True).scalar_subquery()
        where: tuple[Any, ...] = (HumanTask.id.in_(ids), *expired)
    else:
        where = expired
    return rowcount(session.execute(
        update(HumanTask).where(*where)
        .values(state=TaskState.OPEN, lease_owner_id=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)))


_last_sweep: weakref.WeakKeyDictionary[Any, dt.datetime] = weakref.WeakKeyDictionary()
_sweep_lock = threading.Lock()


def sweep(session: Session, now: dt.datetime | None = None, *, force: bool = False) -> bool:
    """The queue's own upkeep, at most every SWEEP_EVERY_S per process and database (``now`` decides,
    so a caller passing its clock is swept by it): lapsed leases back to the queue, gold copies
    refilled. Whether it ran."""
    now = now or utcnow()
    engine = session.get_bind().engine
    with _sweep_lock:
        last = _last_sweep.get(engine)
        due = force or last is None or now < last or (now - last).total_seconds() >= SWEEP_EVERY_S
        if due:
            _last_sweep[engine] = now
    if not due:
        return False
    expire_leases(session, now)
    refill_gold(session, now)
    return True


def release(session: Session, task_id: int, user_id: int, *, skip: bool = False,
            now: dt.datetime | None = None) -> None:
    """Give a leased task back unjudged; raises LeaseLost when the caller does not hold it. A skip
    is remembered: the task is not handed to this user again (everyone else still gets it)."""
    now = now or utcnow()
    task = session.get(HumanTask, task_id, with_for_update=True)
    if task is None or task.state != TaskState.LEASED or task.lease_owner_id != user_id:
        raise LeaseLost(f"task {task_id} is not leased to you")
    if skip:
        insert_ignore(session, TaskSkip.__table__, [{"task_id": task_id, "user_id": user_id, "created_at": now}],
                      ["user_id", "task_id"])
    task.state = TaskState.OPEN  # a gold copy too: it is reused
    task.lease_owner_id, task.lease_expires_at, task.updated_at = None, None, now
    session.flush()


def gold_reason(session: Session, kind: TaskKind, pair_id: int, mask_id: int | None) -> str:
    """What an ordinary task of this kind on this item says (the latest one's reason, without what
    was appended when it was cancelled), so that a gold copy reads like one."""
    same_mask = HumanTask.mask_id.is_(None) if mask_id is None else HumanTask.mask_id == mask_id
    reason = session.scalars(
        select(HumanTask.reason).where(HumanTask.pair_id == pair_id, HumanTask.kind == kind, same_mask,
                                       HumanTask.is_gold.is_(False), HumanTask.reason.is_not(None))
        .order_by(HumanTask.id.desc()).limit(1)).first()
    if reason is None:  # another task of the kind, as the router words it
        reason = session.scalars(select(HumanTask.reason).where(
            HumanTask.kind == kind, HumanTask.is_gold.is_(False), HumanTask.reason.is_not(None))
            .order_by(HumanTask.id.desc()).limit(1)).first()
    return (reason or "").split(" | ")[0].strip() or GOLD_FALLBACK_REASON


def refill_gold(session: Session, now: dt.datetime | None = None, item_ids: Sequence[int] | None = None) -> int:
    """Keep GOLD_COPIES open or leased copies of every active gold item (or of ``item_ids``): open
    tasks made ahead of time, so that their ids interleave with ordinary tasks and nothing marks them
    at lease time. How many were made. One grouped read on the gold-copy index."""
    now = now or utcnow()
    live = (select(HumanTask.gold_item_id, func.count().label("n"))
            .where(HumanTask.gold_item_id.is_not(None), HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]))
            .group_by(HumanTask.gold_item_id).subquery())
    have = func.coalesce(live.c.n, 0)
    items = (select(GoldItem.id, GoldItem.kind, GoldItem.pair_id, GoldItem.mask_id, GoldItem.answer, have)
             .outerjoin(live, live.c.gold_item_id == GoldItem.id)
             .where(GoldItem.is_active.is_(True), have < GOLD_COPIES))
    if item_ids is not None:
        items = items.where(GoldItem.id.in_(list(item_ids)))
    made = 0
    for item_id, kind, pair_id, mask_id, answer, n in session.execute(items.order_by(GoldItem.id)).all():
        reason = gold_reason(session, kind, pair_id, mask_id)
        for _ in range(GOLD_COPIES - int(n)):
            session.add(HumanTask(kind=kind, pair_id=pair_id, mask_id=mask_id, state=TaskState.OPEN, priority=0,
                                  reason=reason, attempts=0, is_gold=True, gold_item_id=item_id,
                                  gold_answer={"label": answer}, reviews_required=1, created_at=now, updated_at=now))
            made += 1
    if made:
        session.flush()
    return made


def lease_gold(session: Session, user_id: int, kinds: Sequence[TaskKind], lease_s: int,
               rng: random.Random | None = None, now: dt.datetime | None = None) -> HumanTask | None:
    """An open copy of a gold item of the asked kinds that the user has not seen (judged its item,
    holds another copy of it, or skipped this copy), leased to them. Copies are made ahead of time
    (``refill_gold``); none is made here."""
    now = now or utcnow()
    copy = HumanTask.__table__.alias("copy")
    held = HumanTask.__table__.alias("held")
    seen = exists().where(
        Verdict.user_id == user_id, Verdict.pair_id == GoldItem.pair_id,
        or_(GoldItem.mask_id.is_(None), Verdict.mask_id == GoldItem.mask_id))
    holding = exists().where(held.c.gold_item_id == GoldItem.id, held.c.state == TaskState.LEASED,
                             held.c.lease_owner_id == user_id)
    skipped = exists().where(TaskSkip.user_id == user_id, TaskSkip.task_id == copy.c.id)
    candidates = list(session.scalars(
        select(copy.c.id).join(GoldItem, GoldItem.id == copy.c.gold_item_id)
        .where(copy.c.gold_item_id.is_not(None), copy.c.state == TaskState.OPEN,
               GoldItem.is_active.is_(True), GoldItem.kind.in_(list(kinds)), ~seen, ~holding, ~skipped)
        .order_by(copy.c.id).limit(64)).all())
    (rng or random).shuffle(candidates)
    _, _, cas_lease = _lease_statements(False)
    params = {"user_id": user_id, "expires": now + dt.timedelta(seconds=lease_s), "now": now}
    for task_id in candidates[:MAX_CANDIDATES]:
        taken = rowcount(session.execute(cas_lease, {**params, "task_id": task_id},
                                         execution_options={"synchronize_session": False}))
        if taken == 1:
            return session.get(HumanTask, task_id, populate_existing=True)
    return None


def live_leases(session: Session, user_id: int, limit: int, now: dt.datetime | None = None) -> int:
    """How many leases the user holds that have not lapsed, counted up to ``limit`` (the partial
    index on leased tasks by owner)."""
    now = now or utcnow()
    held = (select(literal(1)).where(HumanTask.state == TaskState.LEASED, HumanTask.lease_owner_id == user_id,
                                     HumanTask.lease_expires_at >= now).limit(limit).subquery())
    return int(session.scalar(select(func.count()).select_from(held)) or 0)


def lease_for(session: Session, user_id: int, kinds: Sequence[TaskKind], *, lease_s: int, gold_rate: float,
              rng: random.Random | None = None, now: dt.datetime | None = None,
              independent_review: IndependentReview = "task", max_leases: int | None = None) -> HumanTask | None:
    """The next task for an annotator: a gold copy at ``gold_rate`` (when one is left for them),
    otherwise the queue's highest-priority task. Lapsed leases go back to the queue first (``sweep``).
    With ``max_leases``, a person who holds that many live leases gets TooManyLeases instead (on
    PostgreSQL one person's leases are taken one at a time, so parallel requests cannot pass it)."""
    now = now or utcnow()
    rng = rng or random.Random()
    sweep(session, now)
    if max_leases is not None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_ADVISORY_LOCK, {"space": LEASE_LOCK_SPACE, "user_id": user_id})
        held = live_leases(session, user_id, max_leases, now)
        if held >= max_leases:
            raise TooManyLeases(held)
    if gold_rate > 0 and rng.random() < gold_rate:
        task = lease_gold(session, user_id, kinds, lease_s, rng, now)
        if task is not None:
            return task
    return next_task(session, user_id, kinds, lease_s, now, independent_review)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:space, :user_id)")


def held_by(session: Session, user_id: int) -> list[HumanTask]:
    """The tasks leased to the user (a page that crashed picks its leases up again)."""
    return list(session.scalars(select(HumanTask).where(
        HumanTask.state == TaskState.LEASED, HumanTask.lease_owner_id == user_id).order_by(HumanTask.id)))
