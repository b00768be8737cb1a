"""Exemplar prompts in correction: boxes drawn on an image correction task (label 1 around a good
instance, 0 around a wrong detection) are queued here and run by SAM 3 off the web process (the app's
exemplar runner: the gpu queue, or a thread in embedded mode); the page polls the request for the
candidate masks and keeps or deletes them in its working set. The web process never runs the model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from engine.ports import ExemplarRunner, JobNotEnqueued
from engine.services import exemplars
from web.deps import Annotator, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Id

router = APIRouter(route_class=UnitOfWorkRoute, tags=["exemplars"])


class ExemplarIn(BaseModel):
    boxes: list[list[float]] = Field(min_length=1, max_length=64,
                                     description="[x0, y0, x1, y1] in the image's pixels (at most exemplars.max_boxes)")
    labels: list[Literal[0, 1]] = Field(min_length=1, max_length=64,
                                        description="one per box: 1 an instance like it, 0 not one")


class ExemplarAccepted(BaseModel):
    request_id: int
    state: str = Field(description="queued: a worker (or this server's exemplar thread) will run it")


async def get_exemplar_runner(request: Request) -> ExemplarRunner:
    """The app's exemplar runner (a port wired by the composition root), or 503."""
    runner: ExemplarRunner | None = getattr(request.app.state, "exemplars", None)
    if runner is None:
        raise HTTPException(503, "this server runs no exemplar model (no exemplar runner is wired in)")
    return runner


ExemplarRunnerDep = Annotated[ExemplarRunner, Depends(get_exemplar_runner)]


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except exemplars.ExemplarRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except exemplars.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/tasks/{task_id}/exemplars", response_model=ExemplarAccepted, status_code=202, responses={
    409: {"description": "lease_lost, or the task is not an image correction"},
    503: {"description": "no exemplar runner, or the request could not be handed to the workers"}})
def request_exemplars(task_id: Id, body: ExemplarIn, principal: Annotator, session: SessionDep,
                      settings: SettingsDep, runner: ExemplarRunnerDep) -> ExemplarAccepted:
    """Boxes on an image correction you hold: every instance of the phrase like the positive boxes, as
    candidate masks, from a worker. Read them from ``/exemplars/{request_id}``."""
    with _mapped():
        row = exemplars.request_exemplars(session, task_id, principal.user_id, body.boxes, body.labels,
                                          max_boxes=settings.exemplars.max_boxes)
    accepted = ExemplarAccepted(request_id=row.id, state=row.state.value)
    session.commit()  # the runner reads the request: it must be there first
    try:
        runner.submit(row.id)
    except JobNotEnqueued as exc:
        exemplars.fail_request(session, row.id, str(exc))
        session.commit()
        raise
    return accepted


@router.get("/exemplars/{request_id}")
def read_exemplars(request_id: Id, principal: Annotator, session: SessionDep) -> dict[str, Any]:
    """Your exemplar request: its state, error, and candidate masks once done
    ([{rle: {size: [h, w], counts}, bbox: [x, y, w, h], score}])."""
    with _mapped():
        return exemplars.read_request(session, request_id, principal.user_id)
