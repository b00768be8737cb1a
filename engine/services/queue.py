"""The human task queue: lease the next task, keep it alive, expire abandoned leases.

Leasing takes the highest-priority open task of the kinds asked for that the annotator has not
judged before. On PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED so concurrent
annotators never wait on each other; on every database the lease itself is a compare-and-set
(UPDATE … WHERE state = 'open'), so two annotators can never hold the same task."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import HumanTask, TaskKind, TaskState, Verdict

MAX_CANDIDATES = 8


class LeaseLost(RuntimeError):
    """The caller does not hold this task's lease (expired, or someone else's)."""


def _not_judged_by(user_id: int):  # type: ignore[no-untyped-def]
    judged = exists().where(
        Verdict.user_id == user_id, Verdict.pair_id == HumanTask.pair_id,
        or_(HumanTask.mask_id.is_(None), Verdict.mask_id == HumanTask.mask_id))
    return ~judged


def next_task(session: Session, user_id: int, kinds: Sequence[TaskKind], lease_s: int,
              now: dt.datetime | None = None) -> HumanTask | None:
    """Lease the next task for ``user_id`` (None when the queue has nothing for them)."""
    now = now or utcnow()
    query = (select(HumanTask.id)
             .where(HumanTask.state == TaskState.OPEN, HumanTask.kind.in_(list(kinds)), _not_judged_by(user_id))
             .order_by(HumanTask.priority.desc(), HumanTask.id)
             .limit(MAX_CANDIDATES)
             .with_for_update(skip_locked=True))
    for task_id in session.scalars(query).all():
        taken = session.execute(
            update(HumanTask)
            .where(HumanTask.id == task_id, HumanTask.state == TaskState.OPEN)
            .values(state=TaskState.LEASED, lease_owner_id=user_id,
                    lease_expires_at=now + dt.timedelta(seconds=lease_s),
                    attempts=HumanTask.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken == 1:
            return session.get(HumanTask, task_id, populate_existing=True)
    return None


def heartbeat(session: Session, task_id: int, user_id: int, lease_s: int, now: dt.datetime | None = None) -> dt.datetime:
    """Extend the caller's lease; raises LeaseLost when they no longer hold it."""
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=lease_s)
    held = session.execute(
        update(HumanTask)
        .where(HumanTask.id == task_id, HumanTask.state == TaskState.LEASED,
               HumanTask.lease_owner_id == user_id, HumanTask.lease_expires_at >= now)
        .values(lease_expires_at=expires, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if held != 1:
        raise LeaseLost(f"task {task_id} is not leased to you any more")
    return expires


def expire_leases(session: Session, now: dt.datetime | None = None) -> int:
    """Return every task whose lease ran out to the queue; how many."""
    now = now or utcnow()
    return session.execute(
        update(HumanTask)
        .where(HumanTask.state == TaskState.LEASED, HumanTask.lease_expires_at < now)
        .values(state=TaskState.OPEN, lease_owner_id=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount or 0


