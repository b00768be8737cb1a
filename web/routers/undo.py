"""Undo of the last verdict (engine/services/undo.py): what may be undone now, and the undo itself.

Only a verdict's author may undo it, only their last one, within ``queue.undo_window_s``; gold
answers never. Every refusal is a 409 (``X-Error-Code: not_undoable``) whose message says why."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from engine.db.models import HumanTask
from engine.services import annotation, undo
from web.deps import Annotator, SessionDep, SettingsDep, UnitOfWorkRoute
from web.errors import ERROR_HEADER
from web.schemas import Id

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/verdicts", tags=["queue"])

NOT_UNDOABLE = "not_undoable"


class UndoIn(BaseModel):
    verdict_id: Id | None = Field(None, description="undo only if this is your last verdict (default: whichever is)")


class UndoableOut(BaseModel):
    undoable: bool
    verdict_id: int | None = None
    task_id: int | None = None
    label: str | None = None
    until: dt.datetime | None = Field(None, description="the undo is refused after this")
    reason: str | None = Field(None, description="why nothing can be undone, for the person")


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(409, str(exc), headers={ERROR_HEADER: NOT_UNDOABLE})


@router.get("/undo", response_model=UndoableOut)
def undoable(principal: Annotator, session: SessionDep, settings: SettingsDep) -> UndoableOut:
    """Your verdict that may be undone now, and until when (``undoable: false`` and why when none)."""
    try:
        found = undo.undoable(session, principal.user_id, settings.queue)
    except undo.NotUndoable as exc:
        return UndoableOut(undoable=False, reason=str(exc))
    return UndoableOut(undoable=True, verdict_id=found.verdict_id, task_id=found.task_id, label=found.label,
                       until=found.until)


@router.post("/undo", responses={
    200: {"description": "{verdict_id (the undo's), undone_verdict_id, reopened: [task ids], task: the task "
                         "leased to you again (the object GET /tasks/{id} returns)}"},
    404: {"description": "no verdict with that id"},
    409: {"description": "X-Error-Code: not_undoable — too late, not your last verdict, another person's, a "
                         "gold answer, or its items were decided again since"}})
def undo_last(principal: Annotator, session: SessionDep, settings: SettingsDep, body: UndoIn | None = None) -> Any:
    """Undo your last verdict: it is superseded by an undo, what it changed goes back, and its task is
    leased to you again (answered here, to be judged again)."""
    try:
        done = undo.undo_last(session, principal.user_id, None, settings.queue,
                              verdict_id=body.verdict_id if body else None)
    except undo.NoSuchVerdict as exc:
        raise HTTPException(404, str(exc)) from None
    except undo.NotUndoable as exc:
        raise _refused(exc) from None
    task = session.get_one(HumanTask, done.task_id)
    return Response(orjson.dumps({"verdict_id": done.verdict_id, "undone_verdict_id": done.undone_id,
                                  "reopened": list(done.reopened), "task": annotation.describe(session, task)}),
                    media_type="application/json")
