"""The query or scan of every written invariant (:mod:`engine.domain.invariants`) for
:mod:`engine.services.check`: one portable SQLAlchemy Core statement per invariant (filters, anti-joins
and aggregates the database answers in one pass), M2 streamed and validated in Python, F1 and F2
through :mod:`engine.services.check_media`. Each returns the violations, naming the rows involved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from engine.db.models import HumanTask, ImageConcept, Mask, Verdict
from engine.domain.decisions import UNDONE
from engine.domain.invariants import BY_CODE, MEDIA_CODES
from engine.domain.masks import MaskError, validate_rle
from engine.domain.vocabulary import VERDICT_KIND, MaskState, Polarity, TaskKind, TaskState
from engine.services import check_media
from engine.services.check_media import MediaCheck

#: a SELECT of any columns (each invariant's query has its own)
Rows: TypeAlias = Select[*tuple[Any, ...]]


# ============================================================================ results
@dataclass(frozen=True)
class Violation:
    code: str
    ids: dict[str, Any]  # mask / pair / task / verdict / user (or plural: a sorted list of ids)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "ids": self.ids, "detail": self.detail}



# ============================================================================ helpers
def _id_list(session: Session, column: Any) -> Any:
    """An aggregate of ids as text ("3,5,8"): string_agg on PostgreSQL, group_concat on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return func.string_agg(cast(column, String), ",")
    return func.group_concat(column)


def id_values(text: str | None) -> list[int]:
    """The ids of an aggregate made by ``_id_list``, sorted."""
    return sorted(int(v) for v in (text or "").split(",") if v)


def plain_value(v: Any) -> Any:
    """An enum member's value (other values as they are), for a violation's text."""
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
    return f"is_exhaustive={row.is_exhaustive}, decided_by={plain_value(row.decided_by)}"


# ============================================================================ one query per invariant
def _m1(session: Session) -> Rows:
    return (select(Mask.id, Mask.pair_id, Mask.state, Mask.decided_by)
            .where(or_(and_(Mask.state == MaskState.CANDIDATE, Mask.decided_by.is_not(None)),
                       and_(Mask.state != MaskState.CANDIDATE, Mask.decided_by.is_(None))))
            .order_by(Mask.id))


def _m1_row(r: Any) -> Violation:
    detail = (f"candidate with decided_by={plain_value(r.decided_by)}" if r.state == MaskState.CANDIDATE
              else f"{plain_value(r.state)} without decided_by")
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
    masks = id_values(r.mask_ids)
    return Violation("P1", {"pair": r.id, "masks": masks},
                     f"negative ({_pair_claim(r)}) with accepted mask(s) {', '.join(map(str, masks))}")


def _p4_row(r: Any) -> Violation:
    masks = id_values(r.mask_ids)
    return Violation("P4", {"pair": r.id, "masks": masks},
                     f"polarity unknown ({_pair_claim(r)}) with accepted mask(s) {', '.join(map(str, masks))}")


def _pairs(*where: Any) -> Callable[[Session], Rows]:
    def build(_session: Session) -> Rows:
        return (select(ImageConcept.id, ImageConcept.polarity, ImageConcept.is_exhaustive, ImageConcept.decided_by)
                .where(*where).order_by(ImageConcept.id))
    return build


def _pair_row(code: str, what: str) -> Callable[[Any], Violation]:
    def row(r: Any) -> Violation:
        return Violation(code, {"pair": r.id}, f"{what}: polarity {plain_value(r.polarity)}, {_pair_claim(r)}")
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
    return Violation("P5", {"pair": r.id}, f"{what}: polarity {plain_value(r.polarity)}, {_pair_claim(r)}")


LEASED = HumanTask.state == TaskState.LEASED
_T1_WHERE = or_(and_(LEASED, or_(HumanTask.lease_owner_id.is_(None), HumanTask.lease_expires_at.is_(None))),
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
        detail = f"{plain_value(r.state)} but still carries owner={r.lease_owner_id}, expiry={expiry}"
    return Violation("T1", {"task": r.id, "user": r.lease_owner_id}, detail + (" (gold)" if r.is_gold else ""))


def _t2(session: Session) -> Rows:
    later, unreplaced = _not_superseded(session)
    return (select(Verdict.task_id, Verdict.user_id, _id_list(session, Verdict.id).label("verdict_ids"),
                   func.min(Verdict.id).label("first"))
            .outerjoin(later, later.supersedes_id == Verdict.id)
            .where(Verdict.task_id.is_not(None), Verdict.user_id.is_not(None), unreplaced,
                   Verdict.label != UNDONE)
            .group_by(Verdict.task_id, Verdict.user_id).having(func.count() > 1)
            .order_by(Verdict.task_id, Verdict.user_id))


def _t2_row(r: Any) -> Violation:
    verdicts = id_values(r.verdict_ids)
    return Violation("T2", {"task": r.task_id, "user": r.user_id, "verdicts": verdicts},
                     f"user {r.user_id} has {len(verdicts)} verdicts on task {r.task_id} that no verdict "
                     f"supersedes: {', '.join(map(str, verdicts))}")


def _t3(_session: Session) -> Rows:
    replaced = aliased(Verdict, name="replaced")
    kind_differs = or_(*(and_(HumanTask.kind == tk, Verdict.kind != vk) for tk, vk in VERDICT_KIND.items()))
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
    if r.task_kind is not None and VERDICT_KIND[r.task_kind] != r.kind:
        wrong.append(f"kind {plain_value(r.kind)} on a {plain_value(r.task_kind)} task")
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
        detail = f"a {plain_value(r.kind)} task names mask {r.mask_id}"
    elif r.mask_id is None:
        detail = "a verify_mask task names no mask"
    else:
        detail = f"its mask {r.mask_id} belongs to pair {r.mask_pair_id}, not to the task's pair {r.pair_id}"
    return Violation("T4", {"task": r.id, "pair": r.pair_id, "mask": r.mask_id}, detail)


_LIVE = and_(HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]), HumanTask.is_gold.is_(False))


def _t5(session: Session) -> Rows:
    return (select(HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id,
                   _id_list(session, HumanTask.id).label("task_ids"),
                   func.sum(case((LEASED, 1), else_=0)).label("leased"),
                   func.min(HumanTask.id).label("first"))
            .where(_LIVE)
            .group_by(HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id).having(func.count() > 1)
            .order_by(func.min(HumanTask.id)))


def _t5_row(r: Any) -> Violation:
    tasks = id_values(r.task_ids)
    target = f"pair {r.pair_id}" + (f", mask {r.mask_id}" if r.mask_id is not None else "")
    return Violation("T5", {"tasks": tasks, "pair": r.pair_id, "mask": r.mask_id},
                     f"{len(tasks)} live {plain_value(r.kind)} tasks for {target} ({r.leased or 0} leased): "
                     f"{', '.join(map(str, tasks))}")


def _t6(session: Session) -> Rows:
    later, unreplaced = _not_superseded(session)
    people = func.count(func.distinct(Verdict.user_id))
    return (select(Verdict.task_id, HumanTask.reviews_required, people.label("people"),
                   _id_list(session, Verdict.user_id).label("user_ids"),
                   _id_list(session, Verdict.id).label("verdict_ids"))
            .join(HumanTask, HumanTask.id == Verdict.task_id)
            .outerjoin(later, later.supersedes_id == Verdict.id)
            .where(Verdict.user_id.is_not(None), unreplaced, Verdict.label != UNDONE)
            .group_by(Verdict.task_id, HumanTask.reviews_required)
            .having(people > HumanTask.reviews_required)
            .order_by(Verdict.task_id))


def _t6_row(r: Any) -> Violation:
    users = sorted(set(id_values(r.user_ids)))
    return Violation("T6", {"task": r.task_id, "users": users, "verdicts": id_values(r.verdict_ids)},
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
