"""The rows of an export and how they are written: filters as SQL conditions, server-side cursor
streams, and writers that hash and fsync what they write (engine/services/export.py uses them)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from sqlalchemy import Connection, and_, case, exists, func, or_, select
from sqlalchemy.orm import aliased

from engine.db.models import Concept, HumanTask, Image, ImageConcept, JobItem, Mask, Verdict
from engine.domain.decisions import UNDONE
from engine.domain.exports import ACCEPT_ANSWER, ExportSpecError
from engine.domain.ground_truth import LABEL_SOURCES, GroundTruth, deciders
from engine.domain.vocabulary import (
    Decider,
    LabelSource,
    MaskLabel,
    PairLabel,
    Polarity,
    RoutePairLabel,
    VerdictKind,
)

YIELD_PER = 5000
Progress = Callable[[int], None]
#: exhaustivity labels that agree with a pair's final state (positive and exhaustive / negative)
POSITIVE_PAIR_AGREES = (ACCEPT_ANSWER, PairLabel.COMPLETE, RoutePairLabel.EXHAUSTIVE)
NEGATIVE_PAIR_AGREES = (ACCEPT_ANSWER, PairLabel.COMPLETE, PairLabel.NOT_PRESENT, RoutePairLabel.NEGATIVE)


class ExportError(RuntimeError):
    """The export cannot be made (the output folder is not empty, a name is taken, …)."""


@dataclass(frozen=True)
class ExportFilters:
    """What goes into an export. ``jobs`` are job ids (see :func:`resolve_jobs`), ``concepts``
    exact concept texts, ``since``/``until`` bound when the image was mined (until: exclusive)."""

    jobs: tuple[int, ...] = ()
    concepts: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    label_source: str = LabelSource.BOTH  # human | ai | both
    min_agreement: float | None = None
    exhaustive_only: bool = False
    val_percent: int = 10

    def __post_init__(self) -> None:
        if self.label_source not in LABEL_SOURCES:
            raise ExportSpecError(f"label_source must be one of {', '.join(LABEL_SOURCES)}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ExportSpecError("min_agreement must lie in 0..1")
        if not 0 <= self.val_percent <= 100:
            raise ExportSpecError("val_percent must lie in 0..100")
        if self.since and self.until and self.since >= self.until:
            raise ExportSpecError("since must come before until")

    @property
    def deciders(self) -> tuple[Decider, ...]:
        return deciders(self.label_source)

    @property
    def ground_truth(self) -> GroundTruth:
        """The one definition of ground truth (engine/domain/ground_truth.py) under this label source."""
        return GroundTruth(self.label_source)

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": sorted(set(self.jobs)), "concepts": sorted(set(self.concepts)),
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "label_source": self.label_source, "min_agreement": self.min_agreement,
                "exhaustive_only": self.exhaustive_only, "val_percent": self.val_percent}


@dataclass
class Stats:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    versions: set[int | None] = field(default_factory=set)  # model version ids (None: none recorded)
    records: int = 0

    def add(self, split: str, key: str, n: int = 1) -> None:
        per = self.counts.setdefault(split, {})
        per[key] = per.get(key, 0) + n

    def merge(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Add per-split counts (a split with nothing counted is listed empty)."""
        for split, per in counts.items():
            self.counts.setdefault(split, {})
            for key, n in per.items():
                self.add(split, key, n)



# ---------------------------------------------------------------------------------- reading
def stream(conn: Connection, stmt: Any, *, prefetch: bool = False) -> Iterator[Any]:
    """The statement's rows through a server-side cursor (PostgreSQL), ``YIELD_PER`` at a time
    (see :func:`stream_batches`, which gives them batch by batch)."""
    for rows in stream_batches(conn, stmt, prefetch=prefetch):
        yield from rows


def stream_batches(conn: Connection, stmt: Any, *, prefetch: bool = False) -> Iterator[Sequence[Any]]:
    """The statement's rows in batches of up to ``YIELD_PER`` through a server-side cursor
    (PostgreSQL). A writer that loops over the batches itself saves a generator step per row.

    ``prefetch`` (PostgreSQL only): a thread fetches the next batches while the caller writes the
    last ones, so the database's work and this process's overlap (psycopg waits without the GIL;
    its connection serialises the thread's fetches with other cursors' on ``conn``). The thread
    reads plain tuples from the driver's cursor (measurably faster than result rows), so every
    selected column must need no result processing: numbers, text, booleans, and enums through
    ``type_coerce(column, String)``."""
    result = conn.execution_options(stream_results=True, yield_per=YIELD_PER).execute(stmt)
    if prefetch and conn.dialect.name == "postgresql":
        cursor = result.cursor
        try:
            # the rows the result already took from the cursor (to learn the columns), then the rest
            taken = [result.fetchone() for _ in range(cursor.rownumber or 0)]
            if taken:
                yield taken
            yield from _prefetched(iter(lambda: cursor.fetchmany(YIELD_PER), []))
        finally:
            result.close()
        return
    yield from result.partitions()


_DONE = object()


def _prefetched(batches: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """``batches`` fetched by a helper thread, at most ``depth`` ahead; when the consumer stops
    early (an error while writing) the thread is stopped and joined before this returns."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ahead.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            ahead.put(exc)

    worker = threading.Thread(target=fetch, name="export-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                continue
        worker.join()


def not_gold(verdict: Any = Verdict) -> Any:
    """The verdict (table or alias) was not given on a gold task (those only score people)."""
    return ~exists().where(HumanTask.id == verdict.task_id, HumanTask.is_gold.is_(True))


def standing(verdict: Any = Verdict) -> Any:
    """The verdict (table or alias) stands: it is no undo (label ``undone``, no judgement of its own) and no
    later verdict superseded it (an undo took it back, or a replacement — an annotation edited in Label
    Studio — replaced it). Every reader of people's verdicts as judgements (calibration, agreement, verifier
    training sets, failure mining) takes only these."""
    newer = aliased(Verdict)
    return and_(verdict.label != UNDONE, ~exists().where(newer.supersedes_id == verdict.id))


def image_conditions(filters: ExportFilters) -> list[Any]:
    """Conditions on ``images`` (the job and date filters)."""
    conds: list[Any] = []
    if filters.jobs:
        conds.append(exists().where(JobItem.image_id == Image.id, JobItem.job_id.in_(filters.jobs)))
    if filters.since:
        conds.append(Image.created_at >= filters.since)
    if filters.until:
        conds.append(Image.created_at < filters.until)
    return conds


def pair_only_conditions(filters: ExportFilters) -> list[Any]:
    """Conditions on image_concepts ⋈ concepts (the concept and exhaustivity filters)."""
    conds: list[Any] = []
    if filters.concepts:
        conds.append(Concept.text.in_(sorted(set(filters.concepts))))
    if filters.exhaustive_only:
        trust = pair_trust(filters)
        conds.append(or_(trust.negative, trust.exhaustive))
    return conds


def pair_conditions(filters: ExportFilters) -> list[Any]:
    """Conditions on images ⋈ image_concepts ⋈ concepts shared by every format."""
    return image_conditions(filters) + pair_only_conditions(filters)


class PairTrust(NamedTuple):
    """SQL booleans on a pair, for statements whose rows are its exported masks (see
    :func:`pair_trust`)."""

    negative: Any  # a ground-truth negative
    exhaustive: Any  # an exhaustive claim (with its rows' masks: an exhaustive ground-truth pair)


def pair_trust(filters: ExportFilters) -> PairTrust:
    """The pair's ground truth under the filters' label source (engine/domain/ground_truth.py),
    narrowed by ``--min-agreement``: a pair below it is neither negative nor exhaustive, and an
    exhaustive pair one of whose ground-truth masks falls below it is exported as partial (its
    masks would no longer be complete). With the rows' masks, ``exhaustive`` is the definition's
    exhaustive pair: an exhaustive claim's ground-truth masks are all its accepted masks."""
    gt = filters.ground_truth
    negative, exhaustive = gt.negative_pair(), gt.exhaustive_claim()
    if filters.min_agreement is not None:
        agreed = _pair_agreement() >= filters.min_agreement
        m = aliased(Mask)
        dropped = exists().where(m.pair_id == ImageConcept.id,
                                 GroundTruth(filters.label_source, mask=m).mask_is_ground_truth(),
                                 _mask_agreement(m) < filters.min_agreement)
        negative, exhaustive = and_(negative, agreed), and_(exhaustive, agreed, ~dropped)
    return PairTrust(negative, exhaustive)


def _pair_agreement() -> Any:
    """Correlated: the share of the pair's exhaustivity judgements that agree with its state."""
    agrees = case((ImageConcept.polarity == Polarity.NEGATIVE, Verdict.label.in_(NEGATIVE_PAIR_AGREES)),
                  else_=Verdict.label.in_(POSITIVE_PAIR_AGREES))
    share = (select(func.avg(case((agrees, 1.0), else_=0.0)))
             .where(Verdict.pair_id == ImageConcept.id, Verdict.kind == VerdictKind.EXHAUSTIVITY,
                    Verdict.mask_id.is_(None), not_gold())
             .scalar_subquery())
    return func.coalesce(share, 1.0)


def _mask_agreement(mask: Any = Mask) -> Any:
    """Correlated: the share of the mask's (non-gold) mask judgements that say accept (1.0: none)."""
    share = (select(func.avg(case((Verdict.label == MaskLabel.ACCEPT, 1.0), else_=0.0)))
             .where(Verdict.mask_id == mask.id, Verdict.kind == VerdictKind.MASK, not_gold())
             .scalar_subquery())
    return func.coalesce(share, 1.0)


def mask_conditions(filters: ExportFilters) -> list[Any]:
    """Conditions on a mask (joined to its pair) for it to be exported: a ground-truth mask of its
    pair under the label source, narrowed by ``--min-agreement``."""
    conds = [filters.ground_truth.mask_is_ground_truth()]
    if filters.min_agreement is not None:
        conds.append(_mask_agreement() >= filters.min_agreement)
    return conds



# ---------------------------------------------------------------------------------- writing
class HashingWriter:
    """A binary file written once, front to back, hashed on the way; fsynced when closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    def close(self) -> dict[str, Any]:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return {"sha256": self._digest.hexdigest(), "bytes": self.size}

    def abandon(self) -> None:
        self._handle.close()


class JsonArray:
    """Writes ``[item, item, …]`` into a :class:`HashingWriter` (or a plain file). Items come as
    encoded JSON (:meth:`add`, :meth:`extend`) or as objects (:meth:`add_object`,
    :meth:`extend_objects`: a list of them is encoded at once, by one sorted-keys ``orjson.dumps``
    of the list — the same bytes as one call per item, as orjson writes a list as its items joined
    by commas — and not kept: objects held back in bulk would wake the cyclic garbage collector).
    Writes go out ``batch`` items at a time (fewer, larger writes)."""

    def __init__(self, out: Any, batch: int = 1000) -> None:
        self.out, self.count, self.batch = out, 0, batch
        self._pending: list[bytes] = []  # encoded pieces, each one item or several joined by commas
        self._pending_items = 0
        self._written = 0
        out.write(b"[")

    def add(self, data: bytes) -> None:
        self._pending.append(data)
        self.count += 1
        self._pending_items += 1
        if self._pending_items >= self.batch:
            self._flush()

    def extend(self, items: list[bytes]) -> None:
        self._pending.extend(items)
        self.count += len(items)
        self._pending_items += len(items)
        if self._pending_items >= self.batch:
            self._flush()

    def add_object(self, obj: Any) -> None:
        self.add(orjson.dumps(obj, option=SORTED))

    def extend_objects(self, objs: list[Any]) -> None:
        if objs:
            self._pending.append(orjson.dumps(objs, option=SORTED)[1:-1])  # the items, without the brackets
            self.count += len(objs)
            self._pending_items += len(objs)
            if self._pending_items >= self.batch:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.out.write((b"," if self._written else b"") + b",".join(self._pending))
            self._written += self._pending_items
            self._pending, self._pending_items = [], 0

    def end(self) -> None:
        self._flush()
        self.out.write(b"]")


SORTED = orjson.OPT_SORT_KEYS


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=SORTED)


def tick(stats: Stats, progress: Progress | None, n: int = 1) -> None:
    """``n`` more records written."""
    stats.records += n
    if progress is not None:
        progress(stats.records)
