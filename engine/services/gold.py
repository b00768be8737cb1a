"""Gold items (reviewers and admins): an item whose right answer is known, copied into the queue
as gold tasks that look like any other, and scored on the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from engine.db.models import GoldItem, HumanTask, Verdict
from engine.domain.vocabulary import LABELS, TaskKind, TaskState, VerdictSource
from engine.services import queue


class GoldError(ValueError):
    """The task cannot become a gold item as asked (the message says why)."""


class GoldNotFound(LookupError):
    """No such task (gold tasks cannot be gold items) or gold item."""


@dataclass(frozen=True)
class GoldStats:
    item: GoldItem
    answered: int  # verdicts on its gold tasks
    correct: int  # those that gave its answer


def list_gold(session: Session) -> list[GoldStats]:
    """Every gold item, by id, with how often it was answered and answered right."""
    stats = {row.gold_item_id: (row.n, row.ok or 0) for row in session.execute(
        select(HumanTask.gold_item_id, func.count(Verdict.id).label("n"),
               func.sum(case((Verdict.label == GoldItem.answer, 1), else_=0)).label("ok"))
        .join(Verdict, Verdict.task_id == HumanTask.id).join(GoldItem, GoldItem.id == HumanTask.gold_item_id)
        .group_by(HumanTask.gold_item_id))}
    return [GoldStats(item, *stats.get(item.id, (0, 0)))
            for item in session.scalars(select(GoldItem).order_by(GoldItem.id))]


def create_gold(session: Session, task_id: int, answer: str | None, created_by_id: int) -> GoldItem:
    """Make the item of a task gold, with ``answer`` (None: the task's latest human verdict; the
    task must be done) and put its gold tasks in the queue now."""
    task = session.get(HumanTask, task_id)
    if task is None or task.is_gold:
        raise GoldNotFound(f"no task {task_id} (gold tasks cannot be gold items)")
    if task.kind == TaskKind.CORRECT:
        raise GoldError("correction tasks cannot be gold items (answers are masks, not labels)")
    if answer is None:
        if task.state != TaskState.DONE:
            raise GoldError(f"task {task.id} is not done: give the answer")
        answer = session.scalars(select(Verdict.label).where(
            Verdict.task_id == task.id, Verdict.source == VerdictSource.HUMAN).order_by(Verdict.id.desc())).first()
        if answer is None:
            raise GoldError(f"task {task.id} has no human verdict: give the answer")
    if answer not in LABELS[task.kind]:
        raise GoldError(f"answer must be one of {', '.join(LABELS[task.kind])}")
    item = GoldItem(kind=task.kind, pair_id=task.pair_id, mask_id=task.mask_id, answer=answer, is_active=True,
                    created_by_id=created_by_id)
    session.add(item)
    session.flush()
    queue.refill_gold(session, item_ids=[item.id])  # its copies now, so their ids sit among ordinary tasks
    return item


def retire_gold(session: Session, gold_id: int) -> None:
    """Stop using a gold item: its open gold tasks are cancelled (answered ones keep counting)."""
    item = session.get(GoldItem, gold_id)
    if item is None:
        raise GoldNotFound(f"no gold item {gold_id}")
    item.is_active = False
    session.execute(update(HumanTask).where(HumanTask.gold_item_id == gold_id, HumanTask.state == TaskState.OPEN)
                    .values(state=TaskState.CANCELLED).execution_options(synchronize_session=False))
