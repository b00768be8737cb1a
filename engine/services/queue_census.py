"""Why an open task is not for a person, and an empty queue explained.

The tests of "not for this person" (judged it, judged another task of its pair under
``queue.independent_review = pair``, skipped it) as WHERE conditions, which the lease in
engine/services/queue.py filters on; and the census that ``why_empty`` answers with when the queue
has nothing for someone: per kind, the open tasks they may not take and why (at most CENSUS_CAP + 1
looked at per kind), and the open tasks of kinds they did not ask for."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BindParameter, ColumnElement, SQLColumnExpression, bindparam, case, func, literal, select
from sqlalchemy.orm import Session

from engine.db.models import HumanTask, TaskSkip, Verdict
from engine.domain.vocabulary import TaskKind, TaskState

#: an empty queue's census looks at this many open tasks per kind at most ("1000+" beyond)
CENSUS_CAP = 1000

IndependentReview = Literal["task", "pair"]
#: the kinds ``independent_review = pair`` keeps from anyone who judged another task of the pair: the
#: person who checks a pair's instances (or corrects them) is not the one who verified its masks
PAIR_KINDS = (TaskKind.CHECK_EXHAUSTIVITY, TaskKind.CORRECT)
KIND_NAMES = {TaskKind.VERIFY_MASK: "verify mask", TaskKind.CHECK_EXHAUSTIVITY: "check every instance",
              TaskKind.CORRECT: "correct masks"}

#: why an open task is not for a person (the census' codes, in the order they are tested)
JUDGED, SAME_PAIR, SKIPPED = "judged", "same_pair", "skipped"
REASONS = {JUDGED: "you judged these tasks already",
           SAME_PAIR: "you judged other tasks of these pairs (queue.independent_review = pair)",
           SKIPPED: "you skipped these"}


# The tests of "not for this person", as WHERE conditions on verdicts / task_skips correlated with a
# task's columns: EXISTS in the lease (anti-joins probing an index per candidate), one-row probes
# in the census.
def judged_by(user: SQLColumnExpression[int], task_id: SQLColumnExpression[int],
              pair_id: SQLColumnExpression[int]) -> tuple[ColumnElement[bool], ...]:
    """The user gave a verdict on this very task, looked up by the (user_id, pair_id) index (a
    verdict's pair is its task's). ``coalesce(task_id, 0)`` (task ids start at 1) keeps PostgreSQL off
    the partial index ix_verdicts_task_id: with statistics taken before people judged much (until
    autovacuum analyses a table that is mostly AI verdicts) it read that whole index — every person's
    verdicts — once per lease (6 ms at 40 k human verdicts, and growing); ``task_id = …`` or even
    ``task_id + 0 = …`` imply ``task_id IS NOT NULL`` and allow it. By (user_id, pair_id) a stale plan
    reads the user's own verdicts at worst (1 ms), a fresh one probes the index per candidate."""
    return Verdict.user_id == user, Verdict.pair_id == pair_id, func.coalesce(Verdict.task_id, 0) == task_id


def skipped_by(user: SQLColumnExpression[int], task_id: SQLColumnExpression[int]) -> tuple[ColumnElement[bool], ...]:
    return TaskSkip.user_id == user, TaskSkip.task_id == task_id


def same_pair_judged_by(user: SQLColumnExpression[int], kind: SQLColumnExpression[TaskKind],
                        pair_id: SQLColumnExpression[int]) -> tuple[ColumnElement[bool], ...]:
    """An exhaustivity or correction task of a pair the user judged in any task (the ``pair`` rule;
    index ix_verdicts_user_id_pair_id). The kind test sits inside the subquery: OR-ed outside a NOT
    EXISTS, PostgreSQL hashed every verdict of the user instead of probing the index per candidate."""
    return Verdict.user_id == user, Verdict.pair_id == pair_id, kind.in_(PAIR_KINDS)


# ---------------------------------------------------------------------------- an empty queue, explained
@dataclass(frozen=True)
class Blocked:
    """Open tasks of a kind the person asked for that are not for them, and why."""

    kind: TaskKind
    code: str  # JUDGED | SAME_PAIR | SKIPPED
    open: int
    capped: bool  # a lower bound: the census stopped looking ("1000+")

    @property
    def reason(self) -> str:
        return REASONS[self.code]


@dataclass(frozen=True)
class Waiting:
    """Open tasks of a kind the person did not ask for: ``assigned`` ones they may take (asking for
    the kind gives them one), others their role allows but they are not assigned."""

    kind: TaskKind
    open: int
    capped: bool
    assigned: bool


@dataclass(frozen=True)
class EmptyQueue:
    message: str
    blocked: list[Blocked]
    waiting: list[Waiting]


@functools.cache
def _census_statement(independent_review: IndependentReview) -> Any:
    """(code, count) of one kind's first CENSUS_CAP + 1 open tasks in queue order (the open-queue
    index; never the whole table): why each one is not for the user, ``free`` when it is (a lease
    running at the same time took or locked it). Parameters: user_id, kind."""
    user: BindParameter[int] = bindparam("user_id")
    sample = (select(HumanTask.id, HumanTask.kind, HumanTask.pair_id)
              .where(HumanTask.state == TaskState.OPEN, HumanTask.is_gold.is_(False),
                     HumanTask.kind == bindparam("kind"))
              .order_by(HumanTask.priority.desc(), HumanTask.id).limit(CENSUS_CAP + 1).subquery("sample"))
    # each test a one-row scalar subquery, an index probe per sampled task: as EXISTS, PostgreSQL may
    # hash the subquery instead, reading every verdict the user ever gave
    def probe(test: tuple[Any, ...]) -> Any:
        return select(literal(1)).where(*test).limit(1).scalar_subquery().is_not(None)

    whens: list[Any] = [(probe(judged_by(user, sample.c.id, sample.c.pair_id)), JUDGED)]
    if independent_review == "pair":
        whens.append((probe(same_pair_judged_by(user, sample.c.kind, sample.c.pair_id)), SAME_PAIR))
    whens.append((probe(skipped_by(user, sample.c.id)), SKIPPED))
    coded = select(case(*whens, else_="free").label("code")).select_from(sample).subquery("coded")
    return select(coded.c.code, func.count()).group_by(coded.c.code)


def census(session: Session, user_id: int, kind: TaskKind,
           independent_review: IndependentReview = "task") -> tuple[dict[str, int], bool]:
    """The open tasks of ``kind`` by why they are not for the user (``free``: they are), and whether
    there were more than CENSUS_CAP (the counts are then of the first CENSUS_CAP + 1)."""
    rows = session.execute(_census_statement(independent_review), {"user_id": user_id, "kind": kind}).all()
    counts = {code: int(n) for code, n in rows}
    return counts, sum(counts.values()) > CENSUS_CAP


def _tasks(n: int, capped: bool) -> str:
    return f"{min(n, CENSUS_CAP)}+ tasks" if capped else f"{n} task" + ("" if n == 1 else "s")


def why_empty(session: Session, user_id: int, asked: Sequence[TaskKind], allowed: Sequence[TaskKind],
              permitted: Sequence[TaskKind] = tuple(TaskKind),
              independent_review: IndependentReview = "task") -> EmptyQueue:
    """Why the queue had nothing for the user: open tasks of the ``asked`` kinds they may not take
    (and the reason), and open tasks of other kinds — ``allowed`` (assigned to them) but not asked
    for, or ``permitted`` by their role but not assigned. At most one census per kind (each looks at
    CENSUS_CAP + 1 tasks at most), so answering costs about the same however long the queue is."""
    blocked: list[Blocked] = []
    waiting: list[Waiting] = []
    racing = 0
    for kind in TaskKind:
        if kind not in asked and kind not in permitted:
            continue
        counts, capped = census(session, user_id, kind, independent_review)
        if kind in asked:
            blocked += _blocked(kind, counts, capped)
            racing += counts.get("free", 0)
            continue
        other = _waiting(kind, counts, capped, assigned=kind in allowed)
        if other is not None:
            waiting.append(other)
    return EmptyQueue(_empty_message(asked, blocked, waiting, racing), blocked, waiting)


def _blocked(kind: TaskKind, counts: dict[str, int], capped: bool) -> list[Blocked]:
    """An asked-for kind's open tasks that are not for the user, one entry per reason."""
    return [Blocked(kind, code, min(counts[code], CENSUS_CAP), capped)
            for code in (JUDGED, SAME_PAIR, SKIPPED) if counts.get(code)]


def _waiting(kind: TaskKind, counts: dict[str, int], capped: bool, *, assigned: bool) -> Waiting | None:
    """A kind not asked for that has work: its tasks free for the user when it is assigned to them,
    all its open tasks when not (None: none)."""
    n = counts.get("free", 0) if assigned else sum(counts.values())
    return Waiting(kind, min(n, CENSUS_CAP), capped, assigned) if n else None


#: the lead of the message's sentence on other kinds' work, by whether the kinds are assigned
_WAITING_LEADS = ((True, "Other kinds you may take have work: "),
                  (False, "Waiting for kinds you are not assigned (an admin can assign them): "))


def _empty_message(asked: Sequence[TaskKind], blocked: Sequence[Blocked], waiting: Sequence[Waiting],
                   racing: int) -> str:
    """The message of an empty queue, a sentence per finding."""
    names = ", ".join(KIND_NAMES[k] for k in TaskKind if k in asked)
    parts = [f"No task for you right now ({names})."]
    parts += [_blocked_sentence(b) for b in blocked]
    if racing:
        parts.append("Others were being handed out at this moment: ask again.")
    parts += _waiting_sentences(waiting)
    if not blocked and not racing and not waiting:
        parts.append("The queue is empty: new tasks come as the pipeline sends items to people.")
    return " ".join(parts)


def _blocked_sentence(b: Blocked) -> str:
    verb = "is" if b.open == 1 and not b.capped else "are"
    return f"{_tasks(b.open, b.capped)} of kind {KIND_NAMES[b.kind]} {verb} open but not for you: {b.reason}."


def _waiting_sentences(waiting: Sequence[Waiting]) -> list[str]:
    """A sentence on the assigned kinds that have work, then one on the others (each only if any)."""
    sentences: list[str] = []
    for assigned, lead in _WAITING_LEADS:
        kinds = [w for w in waiting if bool(w.assigned) == assigned]
        if kinds:
            sentences.append(lead + "; ".join(f"{KIND_NAMES[w.kind]}, {_tasks(w.open, w.capped)}" for w in kinds) + ".")
    return sentences
