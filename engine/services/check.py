"""``dataengine check``: scan the database for every violation of the written invariants
(:mod:`engine.domain.invariants`), like fsck; ``repair`` fixes the few that are unambiguous.

One query per invariant, portable SQLAlchemy Core (SQLite and PostgreSQL): filters, anti-joins and
aggregates the database answers in one pass — no Python loop over rows, so a million tasks cost a
few scans (``python -m bench.check``). The exception is M2 (a mask's RLE is valid), which SQL cannot
say: it streams the masks in batches and validates each in Python (:mod:`.check_queries`). Each statement sees
one snapshot of the data (every invariant holds at each commit of the services), so a check needs no
lock and can run beside the queue. A violation names the rows involved (mask, pair, task, verdict
and user ids) and says what is wrong. ``limit_per_invariant`` caps the violations listed per
invariant; the count is still exact.

``repair`` changes only bookkeeping that no person has to judge (M1, T1, T5: see each invariant's
``repair``), each change as one conditional UPDATE … RETURNING (a row that changed in between is left
alone), each logged (logger ``engine.services.check``; a task's ``reason`` records it too). The
label contradictions (P1–P6) and the verdict ones (T2, T3, T6) are never repaired here: verdicts are
append-only and a label needs a person.

With a media root (``media``), F1 and F2 compare the files with the image rows
(:mod:`engine.services.check_media`: a streamed walk and keyset batches); ``repair`` removes F1's orphans.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import HumanTask, Mask
from engine.db.rowcount import rowcount
from engine.domain.invariants import BY_CODE, INVARIANTS, Invariant
from engine.domain.vocabulary import MaskState, TaskState
from engine.services import check_media
from engine.services.check_media import MediaCheck
from engine.services.check_queries import LEASED, MEDIA_SCANS, QUERIES, SCANS, Violation, id_values, plain_value

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
REPAIR_NOTE = "dataengine check --repair"
_CHUNK = 1000  # ids per UPDATE … IN (…)


# ============================================================================ results
@dataclass
class InvariantResult:
    invariant: Invariant
    violations: list[Violation]  # at most the limit
    count: int  # every violation, listed or not
    seconds: float

    @property
    def ok(self) -> bool:
        return self.count == 0

    def to_dict(self) -> dict[str, Any]:
        inv = self.invariant
        return {"code": inv.code, "subject": inv.subject, "statement": inv.statement, "repair": inv.repair,
                "count": self.count, "listed": len(self.violations), "seconds": round(self.seconds, 4),
                "violations": [v.to_dict() for v in self.violations]}


@dataclass
class CheckReport:
    results: list[InvariantResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.results)

    def result(self, code: str) -> InvariantResult:
        return next(r for r in self.results if r.invariant.code == code)

    def violated(self) -> dict[str, list[Violation]]:
        """code → the violations listed, for the invariants that have any."""
        return {r.invariant.code: r.violations for r in self.results if not r.ok}

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": self.total, "seconds": round(self.seconds, 4),
                "invariants": [r.to_dict() for r in self.results]}


@dataclass(frozen=True)
class Repair:
    code: str
    ids: dict[str, Any]
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "ids": self.ids, "action": self.action}


# ============================================================================ check
def check_one(session: Session, code: str, limit: int | None = DEFAULT_LIMIT,
              media: MediaCheck | None = None) -> InvariantResult:
    """The violations of one invariant: the first ``limit`` listed (None: all), all counted. The
    media-store invariants (F1, F2) need ``media``."""
    t0 = time.perf_counter()
    if code in MEDIA_SCANS:
        if media is None:
            raise ValueError(f"{code} compares the media store with the database: give its root")
        listed, count = MEDIA_SCANS[code](session, limit, media)
        return InvariantResult(BY_CODE[code], listed, count, time.perf_counter() - t0)
    if code in SCANS:
        listed, count = SCANS[code](session, limit)
        return InvariantResult(BY_CODE[code], listed, count, time.perf_counter() - t0)
    inv, query = BY_CODE[code], QUERIES[code]
    statement = query.build(session)
    fetch = statement if limit is None else statement.limit(limit + 1)
    rows = session.execute(fetch).all()
    count = len(rows)
    if limit is not None and count > limit:
        rows = rows[:limit]
        count = session.execute(select(func.count()).select_from(statement.order_by(None).subquery())).scalar_one()
    return InvariantResult(inv, [query.row(r) for r in rows], count, time.perf_counter() - t0)


def check(session: Session, limit_per_invariant: int | None = DEFAULT_LIMIT,
          codes: Iterable[str] | None = None, media: MediaCheck | None = None) -> CheckReport:
    """Every invariant (or those of ``codes``), in the written order. Reads only. The media-store
    invariants (F1, F2) are checked when ``media`` says where the store is."""
    wanted = {c.upper() for c in codes} if codes is not None else None
    t0 = time.perf_counter()
    results = [check_one(session, inv.code, limit_per_invariant, media) for inv in INVARIANTS
               if (wanted is None or inv.code in wanted) and (media is not None or inv.code not in MEDIA_SCANS)]
    return CheckReport(results, time.perf_counter() - t0)


# ============================================================================ repair
def _note(text: str) -> Any:
    return func.substr(func.coalesce(HumanTask.reason, "") + f" | {REPAIR_NOTE}: {text}", 1, 2000)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield list(ids[i:i + _CHUNK])


def _logged(repairs: list[Repair], repair: Repair) -> None:
    log.warning("repaired %s %s: %s", repair.code, " ".join(f"{k}={v}" for k, v in repair.ids.items()),
                repair.action)
    repairs.append(repair)


def _repair_m1(session: Session, repairs: list[Repair]) -> None:
    stale = and_(Mask.state == MaskState.CANDIDATE, Mask.decided_by.is_not(None))
    ids = list(session.scalars(select(Mask.id).where(stale).order_by(Mask.id)))
    for chunk in _chunks(ids):
        for r in session.execute(update(Mask).where(Mask.id.in_(chunk), stale).values(decided_by=None)
                                 .returning(Mask.id, Mask.pair_id)
                                 .execution_options(synchronize_session=False)).all():
            _logged(repairs, Repair("M1", {"mask": r.id, "pair": r.pair_id}, "candidate: decided_by cleared"))


def _repair_tasks(session: Session, repairs: list[Repair], code: str, where: Any, values: dict[str, Any],
                  action: str) -> None:
    before = {r.id: r for r in session.execute(
        select(HumanTask.id, HumanTask.state, HumanTask.lease_owner_id).where(where).order_by(HumanTask.id))}
    for chunk in _chunks(list(before)):
        done = session.scalars(update(HumanTask).where(HumanTask.id.in_(chunk), where)
                               .values(**values, reason=_note(action)).returning(HumanTask.id)
                               .execution_options(synchronize_session=False)).all()
        for task_id in sorted(done):
            was = before[task_id]
            _logged(repairs, Repair(code, {"task": task_id, "user": was.lease_owner_id},
                                    f"{plain_value(was.state)} {action}"))


def _repair_t1(session: Session, repairs: list[Repair], now: dt.datetime) -> None:
    not_leased = and_(HumanTask.state != TaskState.LEASED,
                      or_(HumanTask.lease_owner_id.is_not(None), HumanTask.lease_expires_at.is_not(None)))
    _repair_tasks(session, repairs, "T1", not_leased,
                  {"lease_owner_id": None, "lease_expires_at": None, "updated_at": now},
                  "(not leased): lease owner and expiry cleared")
    ownerless = and_(LEASED, HumanTask.lease_owner_id.is_(None))
    _repair_tasks(session, repairs, "T1", and_(ownerless, HumanTask.is_gold.is_(False)),
                  {"state": TaskState.OPEN, "lease_expires_at": None, "updated_at": now},
                  "without an owner: back to open")
    _repair_tasks(session, repairs, "T1", and_(ownerless, HumanTask.is_gold.is_(True)),
                  {"state": TaskState.CANCELLED, "lease_expires_at": None, "updated_at": now},
                  "gold task without an owner: cancelled")
    _repair_tasks(session, repairs, "T1",
                  and_(LEASED, HumanTask.lease_owner_id.is_not(None), HumanTask.lease_expires_at.is_(None)),
                  {"lease_expires_at": now, "updated_at": now},
                  f"without an expiry: expires at the repair ({now.isoformat(timespec='seconds')})")


def _repair_t5(session: Session, repairs: list[Repair], now: dt.datetime) -> None:
    groups = session.execute(QUERIES["T5"].build(session)).all()
    if not groups:
        return
    ids = [i for g in groups for i in id_values(g.task_ids)]
    states: dict[int, TaskState] = {}
    for chunk in _chunks(ids):
        states.update(session.execute(select(HumanTask.id, HumanTask.state).where(HumanTask.id.in_(chunk))).all())
    for g in groups:
        tasks = id_values(g.task_ids)
        leased = [t for t in tasks if states.get(t) == TaskState.LEASED]
        keep = leased[0] if leased else tasks[0]
        for task_id in tasks:
            if task_id == keep or states.get(task_id) != TaskState.OPEN:
                continue
            action = f"duplicate of task {keep}: cancelled"
            done = rowcount(session.execute(
                update(HumanTask).where(HumanTask.id == task_id, HumanTask.state == TaskState.OPEN)
                .values(state=TaskState.CANCELLED, updated_at=now, reason=_note(action))
                .execution_options(synchronize_session=False)))
            if done:
                _logged(repairs, Repair("T5", {"task": task_id, "kept": keep, "pair": g.pair_id, "mask": g.mask_id},
                                        action))


def repair(session: Session, now: dt.datetime | None = None, *, media: MediaCheck | None = None,
           limit: int | None = None) -> list[Repair]:
    """Fix what is unambiguous (M1, T1, T5; with ``media`` also F1: orphan files removed), flushing;
    the caller commits. Returns what was done, in the written order; each change is also logged.
    Removed files beyond ``limit`` are summed up in one last F1 entry."""
    now = now or utcnow()
    repairs: list[Repair] = []
    _repair_m1(session, repairs)
    _repair_t1(session, repairs, now)
    _repair_t5(session, repairs, now)
    session.flush()
    if media is not None:
        removed, count = check_media.repair_orphans(session, media, limit)
        repairs += [Repair("F1", {"file": o.key}, f"orphan file removed ({o.size} bytes)") for o in removed]
        if count > len(removed):
            repairs.append(Repair("F1", {"files": count - len(removed)}, "more orphan files removed (not listed)"))
    return repairs


__all__ = ["DEFAULT_LIMIT", "CheckReport", "InvariantResult", "MediaCheck", "Repair", "Violation", "check", "check_one",
           "repair"]
