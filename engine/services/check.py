"""``dataengine check``: scan the database for every violation of the written invariants
(:mod:`engine.domain.invariants`), like fsck; ``repair`` fixes the few that are unambiguous.

One query per invariant, portable SQLAlchemy Core (SQLite and PostgreSQL): filters, anti-joins and
aggregates the database answers in one pass — no Python loop over rows, so a million tasks cost a
few scans (``python -m bench.check``). The exception is M2 (a mask's RLE is valid), which SQL cannot
say: it streams the masks in batches and validates each in Python (:func:`_m2`). Each statement sees
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from engine.db.base import utcnow
from engine.db.models import HumanTask, ImageConcept, Mask, Verdict
from engine.db.rowcount import rowcount
from engine.domain.invariants import BY_CODE, INVARIANTS, MEDIA_CODES, Invariant
from engine.domain.masks import MaskError, validate_rle
from engine.domain.vocabulary import MaskState, Polarity, TaskKind, TaskState, VerdictKind
from engine.services import check_media
from engine.services.check_media import MediaCheck

#: a SELECT of any columns (each invariant's query has its own)
Rows: TypeAlias = Select[*tuple[Any, ...]]

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
REPAIR_NOTE = "dataengine check --repair"
_CHUNK = 1000  # ids per UPDATE … IN (…)


# ============================================================================ results
@dataclass(frozen=True)
class Violation:
    code: str
    ids: dict[str, Any]  # mask / pair / task / verdict / user (or plural: a sorted list of ids)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "ids": self.ids, "detail": self.detail}


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


# ============================================================================ helpers
def _id_list(session: Session, column: Any) -> Any:
    """An aggregate of ids as text ("3,5,8"): string_agg on PostgreSQL, group_concat on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return func.string_agg(cast(column, String), ",")
    return func.group_concat(column)


def _ids(text: str | None) -> list[int]:
    return sorted(int(v) for v in (text or "").split(",") if v)


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


def _accepted_mask_exists() -> Any:
    return exists().where(Mask.pair_id == ImageConcept.id, Mask.state == MaskState.ACCEPTED)


def _not_superseded(session: Session) -> tuple[Any, ColumnElement[bool]]:
    """(an alias of verdicts to outer-join, the condition "no verdict supersedes v"): a LEFT JOIN …
    IS NULL is an anti-join on both databases (PostgreSQL hashes it; SQLite builds an automatic index,
    verdicts have none on supersedes_id)."""
    later = aliased(Verdict, name="later")
    return later, later.id.is_(None)


@dataclass(frozen=True)
class _Query:
    build: Callable[[Session], Rows]  # every violation, ordered
    row: Callable[[Any], Violation]


def _pair_claim(row: Any) -> str:
    return f"is_exhaustive={row.is_exhaustive}, decided_by={_value(row.decided_by)}"


# ============================================================================ one query per invariant
def _m1(session: Session) -> Rows:
    return (select(Mask.id, Mask.pair_id, Mask.state, Mask.decided_by)
            .where(or_(and_(Mask.state == MaskState.CANDIDATE, Mask.decided_by.is_not(None)),
                       and_(Mask.state != MaskState.CANDIDATE, Mask.decided_by.is_(None))))
            .order_by(Mask.id))


def _m1_row(r: Any) -> Violation:
    detail = (f"candidate with decided_by={_value(r.decided_by)}" if r.state == MaskState.CANDIDATE
              else f"{_value(r.state)} without decided_by")
    return Violation("M1", {"mask": r.id, "pair": r.pair_id}, detail)


def _accepted_on(polarity: Polarity) -> Callable[[Session], Rows]:
    def build(session: Session) -> Rows:
        return (select(ImageConcept.id, ImageConcept.is_exhaustive, ImageConcept.decided_by,
                       _id_list(session, Mask.id).label("mask_ids"))
                .join(Mask, Mask.pair_id == ImageConcept.id)
                .where(ImageConcept.polarity == polarity, Mask.state == MaskState.ACCEPTED)
                .group_by(ImageConcept.id, ImageConcept.is_exhaustive, ImageConcept.decided_by)
                .order_by(ImageConcept.id))
    return build


def _p1_row(r: Any) -> Violation:
    masks = _ids(r.mask_ids)
    return Violation("P1", {"pair": r.id, "masks": masks},
                     f"negative ({_pair_claim(r)}) with accepted mask(s) {', '.join(map(str, masks))}")


def _p4_row(r: Any) -> Violation:
    masks = _ids(r.mask_ids)
    return Violation("P4", {"pair": r.id, "masks": masks},
                     f"polarity unknown ({_pair_claim(r)}) with accepted mask(s) {', '.join(map(str, masks))}")


def _pairs(*where: Any) -> Callable[[Session], Rows]:
    def build(_session: Session) -> Rows:
        return (select(ImageConcept.id, ImageConcept.polarity, ImageConcept.is_exhaustive, ImageConcept.decided_by)
                .where(*where).order_by(ImageConcept.id))
    return build


def _pair_row(code: str, what: str) -> Callable[[Any], Violation]:
    def row(r: Any) -> Violation:
        return Violation(code, {"pair": r.id}, f"{what}: polarity {_value(r.polarity)}, {_pair_claim(r)}")
    return row


_MISSING_CLAIM = and_(ImageConcept.is_exhaustive.is_(False), ImageConcept.decided_by.is_not(None))

_P2 = _pairs(ImageConcept.polarity == Polarity.NEGATIVE,
             or_(ImageConcept.is_exhaustive.is_not(True), ImageConcept.decided_by.is_(None)))
_P3 = _pairs(ImageConcept.polarity == Polarity.POSITIVE, ImageConcept.is_exhaustive.is_(True),
             ~_accepted_mask_exists())
_P5 = _pairs(or_(
    # positive without an accepted mask and without the claim "instances missing" (exhaustive: P3)
    and_(ImageConcept.polarity == Polarity.POSITIVE, ImageConcept.is_exhaustive.is_not(True), ~_MISSING_CLAIM,
         ~_accepted_mask_exists()),
    # the claim "instances missing" on a pair left unknown (on a negative one: P2)
    and_(ImageConcept.polarity == Polarity.UNKNOWN, _MISSING_CLAIM)))
_P6 = _pairs(or_(and_(ImageConcept.is_exhaustive.is_(None), ImageConcept.decided_by.is_not(None)),
                 and_(ImageConcept.is_exhaustive.is_not(None), ImageConcept.decided_by.is_(None))))


def _p5_row(r: Any) -> Violation:
    what = ("claim 'instances missing' but not positive" if r.polarity == Polarity.UNKNOWN
            else "positive without an accepted mask or the claim 'instances missing'")
    return Violation("P5", {"pair": r.id}, f"{what}: polarity {_value(r.polarity)}, {_pair_claim(r)}")


_LEASED = HumanTask.state == TaskState.LEASED
_T1_WHERE = or_(and_(_LEASED, or_(HumanTask.lease_owner_id.is_(None), HumanTask.lease_expires_at.is_(None))),
                and_(HumanTask.state != TaskState.LEASED,
                     or_(HumanTask.lease_owner_id.is_not(None), HumanTask.lease_expires_at.is_not(None))))


def _t1(_session: Session) -> Rows:
    return (select(HumanTask.id, HumanTask.state, HumanTask.lease_owner_id, HumanTask.lease_expires_at,
                   HumanTask.is_gold)
            .where(_T1_WHERE).order_by(HumanTask.id))


def _t1_row(r: Any) -> Violation:
    expiry = r.lease_expires_at.isoformat(timespec="seconds") if r.lease_expires_at else None
    if r.state == TaskState.LEASED:
        detail = "leased without " + " and ".join(
            w for w, v in (("an owner", r.lease_owner_id), ("an expiry", r.lease_expires_at)) if v is None)
    else:
        detail = f"{_value(r.state)} but still carries owner={r.lease_owner_id}, expiry={expiry}"
    return Violation("T1", {"task": r.id, "user": r.lease_owner_id}, detail + (" (gold)" if r.is_gold else ""))


def _t2(session: Session) -> Rows:
    later, unreplaced = _not_superseded(session)
    return (select(Verdict.task_id, Verdict.user_id, _id_list(session, Verdict.id).label("verdict_ids"),
                   func.min(Verdict.id).label("first"))
            .outerjoin(later, later.supersedes_id == Verdict.id)
            .where(Verdict.task_id.is_not(None), Verdict.user_id.is_not(None), unreplaced)
            .group_by(Verdict.task_id, Verdict.user_id).having(func.count() > 1)
            .order_by(Verdict.task_id, Verdict.user_id))


def _t2_row(r: Any) -> Violation:
    verdicts = _ids(r.verdict_ids)
    return Violation("T2", {"task": r.task_id, "user": r.user_id, "verdicts": verdicts},
                     f"user {r.user_id} has {len(verdicts)} verdicts on task {r.task_id} that no verdict "
                     f"supersedes: {', '.join(map(str, verdicts))}")


_VERDICT_KIND = {TaskKind.VERIFY_MASK: VerdictKind.MASK, TaskKind.CHECK_EXHAUSTIVITY: VerdictKind.EXHAUSTIVITY,
                 TaskKind.CORRECT: VerdictKind.CORRECTION}


def _t3(_session: Session) -> Rows:
    replaced = aliased(Verdict, name="replaced")
    kind_differs = or_(*(and_(HumanTask.kind == tk, Verdict.kind != vk) for tk, vk in _VERDICT_KIND.items()))
    return (select(Verdict.id, Verdict.task_id, Verdict.user_id, Verdict.kind, Verdict.pair_id, Verdict.mask_id,
                   Verdict.supersedes_id, HumanTask.kind.label("task_kind"), HumanTask.pair_id.label("task_pair_id"),
                   HumanTask.mask_id.label("task_mask_id"), replaced.task_id.label("replaced_task_id"))
            .select_from(Verdict)
            .outerjoin(HumanTask, HumanTask.id == Verdict.task_id)
            .outerjoin(replaced, replaced.id == Verdict.supersedes_id)
            .where(or_(Verdict.task_id.is_not(None), Verdict.supersedes_id.is_not(None)))
            .where(or_(
                and_(HumanTask.id.is_not(None),
                     or_(kind_differs, Verdict.pair_id != HumanTask.pair_id,
                         Verdict.mask_id.is_distinct_from(HumanTask.mask_id))),
                and_(Verdict.supersedes_id.is_not(None), replaced.task_id.is_distinct_from(Verdict.task_id))))
            .order_by(Verdict.id))


def _t3_row(r: Any) -> Violation:
    wrong = []
    if r.task_kind is not None and _VERDICT_KIND[r.task_kind] != r.kind:
        wrong.append(f"kind {_value(r.kind)} on a {_value(r.task_kind)} task")
    if r.task_kind is not None and r.pair_id != r.task_pair_id:
        wrong.append(f"pair {r.pair_id} ≠ the task's pair {r.task_pair_id}")
    if r.task_kind is not None and r.mask_id != r.task_mask_id:
        wrong.append(f"mask {r.mask_id} ≠ the task's mask {r.task_mask_id}")
    if r.supersedes_id is not None and r.replaced_task_id != r.task_id:
        wrong.append(f"supersedes verdict {r.supersedes_id} of task {r.replaced_task_id}")
    ids = {"verdict": r.id, "task": r.task_id, "user": r.user_id, "pair": r.pair_id, "mask": r.mask_id}
    if r.supersedes_id is not None:
        ids["supersedes"] = r.supersedes_id
    return Violation("T3", ids, "; ".join(wrong))


def _t4(_session: Session) -> Rows:
    return (select(HumanTask.id, HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id,
                   Mask.pair_id.label("mask_pair_id"))
            .select_from(HumanTask).outerjoin(Mask, Mask.id == HumanTask.mask_id)
            .where(or_(and_(HumanTask.kind == TaskKind.VERIFY_MASK,
                            or_(HumanTask.mask_id.is_(None), Mask.pair_id.is_distinct_from(HumanTask.pair_id))),
                       and_(HumanTask.kind != TaskKind.VERIFY_MASK, HumanTask.mask_id.is_not(None))))
            .order_by(HumanTask.id))


def _t4_row(r: Any) -> Violation:
    if r.kind != TaskKind.VERIFY_MASK:
        detail = f"a {_value(r.kind)} task names mask {r.mask_id}"
    elif r.mask_id is None:
        detail = "a verify_mask task names no mask"
    else:
        detail = f"its mask {r.mask_id} belongs to pair {r.mask_pair_id}, not to the task's pair {r.pair_id}"
    return Violation("T4", {"task": r.id, "pair": r.pair_id, "mask": r.mask_id}, detail)


_LIVE = and_(HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]), HumanTask.is_gold.is_(False))


def _t5(session: Session) -> Rows:
    return (select(HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id,
                   _id_list(session, HumanTask.id).label("task_ids"),
                   func.sum(case((_LEASED, 1), else_=0)).label("leased"),
                   func.min(HumanTask.id).label("first"))
            .where(_LIVE)
            .group_by(HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id).having(func.count() > 1)
            .order_by(func.min(HumanTask.id)))


def _t5_row(r: Any) -> Violation:
    tasks = _ids(r.task_ids)
    target = f"pair {r.pair_id}" + (f", mask {r.mask_id}" if r.mask_id is not None else "")
    return Violation("T5", {"tasks": tasks, "pair": r.pair_id, "mask": r.mask_id},
                     f"{len(tasks)} live {_value(r.kind)} tasks for {target} ({r.leased or 0} leased): "
                     f"{', '.join(map(str, tasks))}")


def _t6(session: Session) -> Rows:
    later, unreplaced = _not_superseded(session)
    people = func.count(func.distinct(Verdict.user_id))
    return (select(Verdict.task_id, HumanTask.reviews_required, people.label("people"),
                   _id_list(session, Verdict.user_id).label("user_ids"),
                   _id_list(session, Verdict.id).label("verdict_ids"))
            .join(HumanTask, HumanTask.id == Verdict.task_id)
            .outerjoin(later, later.supersedes_id == Verdict.id)
            .where(Verdict.user_id.is_not(None), unreplaced)
            .group_by(Verdict.task_id, HumanTask.reviews_required)
            .having(people > HumanTask.reviews_required)
            .order_by(Verdict.task_id))


def _t6_row(r: Any) -> Violation:
    users = sorted(set(_ids(r.user_ids)))
    return Violation("T6", {"task": r.task_id, "users": users, "verdicts": _ids(r.verdict_ids)},
                     f"{r.people} people judged it (users {', '.join(map(str, users))}), "
                     f"reviews_required={r.reviews_required}")


QUERIES: dict[str, _Query] = {
    "M1": _Query(_m1, _m1_row),
    "P1": _Query(_accepted_on(Polarity.NEGATIVE), _p1_row),
    "P2": _Query(_P2, _pair_row("P2", "negative without a decided negative claim")),
    "P3": _Query(_P3, _pair_row("P3", "exhaustive positive pair without an accepted mask")),
    "P4": _Query(_accepted_on(Polarity.UNKNOWN), _p4_row),
    "P5": _Query(_P5, _p5_row),
    "P6": _Query(_P6, _pair_row("P6", "decided_by and is_exhaustive disagree")),
    "T1": _Query(_t1, _t1_row),
    "T2": _Query(_t2, _t2_row),
    "T3": _Query(_t3, _t3_row),
    "T4": _Query(_t4, _t4_row),
    "T5": _Query(_t5, _t5_row),
    "T6": _Query(_t6, _t6_row),
}


def _m2(session: Session, limit: int | None) -> tuple[list[Violation], int]:
    """M2 cannot be said in SQL: the masks are streamed by id in batches of ``_M2_BATCH`` (keyset
    pagination, one short statement each: memory stays bounded) and each RLE is validated in Python
    (engine/domain/masks.py, the validator every write path uses)."""
    listed: list[Violation] = []
    count, after = 0, 0
    columns = (Mask.id, Mask.pair_id, Mask.rle_counts, Mask.height, Mask.width)
    while True:
        rows = session.execute(select(*columns).where(Mask.id > after).order_by(Mask.id).limit(_M2_BATCH)).all()
        if not rows:
            break
        after = rows[-1].id
        for r in rows:
            try:
                validate_rle(r.rle_counts, r.height, r.width)
            except MaskError as exc:
                count += 1
                if limit is None or len(listed) < limit:
                    listed.append(Violation("M2", {"mask": r.id, "pair": r.pair_id},
                                            f"RLE of {r.height}×{r.width}: {str(exc)[:200]}"))
    return listed, count


_M2_BATCH = 2000
SCANS: dict[str, Callable[[Session, int | None], tuple[list[Violation], int]]] = {"M2": _m2}


def _f1(session: Session, limit: int | None, media: MediaCheck) -> tuple[list[Violation], int]:
    listed: list[Violation] = []
    count = 0
    for orphan in check_media.orphans(session, media):
        count += 1
        if limit is None or len(listed) < limit:
            when = dt.datetime.fromtimestamp(orphan.mtime, dt.UTC).isoformat(timespec="seconds")
            what = ("a temporary file left by an interrupted write" if orphan.temporary
                    else "no image row names it")
            listed.append(Violation("F1", {"file": orphan.key}, f"{what} ({orphan.size} bytes, modified {when})"))
    return listed, count


def _f2(session: Session, limit: int | None, media: MediaCheck) -> tuple[list[Violation], int]:
    listed: list[Violation] = []
    count = 0
    for gone in check_media.missing(session, media):
        count += 1
        if limit is None or len(listed) < limit:
            listed.append(Violation("F2", {"image": gone.image_id, "file": gone.key},
                                    "file missing; mine it again from "
                                    f"{(gone.source_uri or 'an unknown source')[:500]}"))
    return listed, count


MEDIA_SCANS: dict[str, Callable[[Session, int | None, MediaCheck], tuple[list[Violation], int]]] = {
    "F1": _f1, "F2": _f2}
assert set(MEDIA_SCANS) == set(MEDIA_CODES)
assert set(QUERIES) | set(SCANS) | set(MEDIA_SCANS) == set(BY_CODE), "every written invariant has its query or scan"


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
                                    f"{_value(was.state)} {action}"))


def _repair_t1(session: Session, repairs: list[Repair], now: dt.datetime) -> None:
    not_leased = and_(HumanTask.state != TaskState.LEASED,
                      or_(HumanTask.lease_owner_id.is_not(None), HumanTask.lease_expires_at.is_not(None)))
    _repair_tasks(session, repairs, "T1", not_leased,
                  {"lease_owner_id": None, "lease_expires_at": None, "updated_at": now},
                  "(not leased): lease owner and expiry cleared")
    ownerless = and_(_LEASED, HumanTask.lease_owner_id.is_(None))
    _repair_tasks(session, repairs, "T1", and_(ownerless, HumanTask.is_gold.is_(False)),
                  {"state": TaskState.OPEN, "lease_expires_at": None, "updated_at": now},
                  "without an owner: back to open")
    _repair_tasks(session, repairs, "T1", and_(ownerless, HumanTask.is_gold.is_(True)),
                  {"state": TaskState.CANCELLED, "lease_expires_at": None, "updated_at": now},
                  "gold task without an owner: cancelled")
    _repair_tasks(session, repairs, "T1",
                  and_(_LEASED, HumanTask.lease_owner_id.is_not(None), HumanTask.lease_expires_at.is_(None)),
                  {"lease_expires_at": now, "updated_at": now},
                  f"without an expiry: expires at the repair ({now.isoformat(timespec='seconds')})")


def _repair_t5(session: Session, repairs: list[Repair], now: dt.datetime) -> None:
    groups = session.execute(QUERIES["T5"].build(session)).all()
    if not groups:
        return
    ids = [i for g in groups for i in _ids(g.task_ids)]
    states: dict[int, TaskState] = {}
    for chunk in _chunks(ids):
        states.update(session.execute(select(HumanTask.id, HumanTask.state).where(HumanTask.id.in_(chunk))).all())
    for g in groups:
        tasks = _ids(g.task_ids)
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
