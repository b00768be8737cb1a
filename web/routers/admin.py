"""People (admins) and gold items (reviewers and admins)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select, update

from engine.db.models import GoldItem, HumanTask, User, Verdict
from engine.domain.vocabulary import LABELS, Role, TaskKind, TaskState, VerdictSource
from engine.services import queue
from engine.services import users as users_service
from web.deps import Admin, GoldManager, SessionDep, UnitOfWorkRoute, forget_principals
from web.routers.auth import new_password_field
from web.schemas import Id, NoNulStr, ShortText

router = APIRouter(route_class=UnitOfWorkRoute, tags=["admin"])


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    is_active: bool
    task_kinds: list[TaskKind] | None
    created_at: dt.datetime


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = new_password_field("the policy: engine.domain.passwords.check_password")
    role: Role
    task_kinds: list[TaskKind] | None = None


class UserPatch(BaseModel):
    is_active: bool | None = None
    role: Role | None = None
    task_kinds: list[TaskKind] | None = None
    password: str | None = new_password_field(
        "a new password (the policy as for a new user); ends every session and API token of the user", None)


@router.get("/users", response_model=list[UserOut])
def list_users(_: Admin, session: SessionDep) -> list[UserOut]:
    return [UserOut.model_validate(u, from_attributes=True) for u in users_service.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, _: Admin, session: SessionDep) -> UserOut:
    user = users_service.create_user(session, body.username, body.password, body.role)
    user.task_kinds = [k.value for k in body.task_kinds] if body.task_kinds is not None else None
    session.flush()
    return UserOut.model_validate(user, from_attributes=True)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: NoNulStr, body: UserPatch, request: Request, principal: Admin,
                session: SessionDep) -> UserOut:
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise HTTPException(404, f"no user {username!r}")
    if user.id == principal.user_id and (body.is_active is False or (body.role and body.role != Role.ADMIN)):
        raise HTTPException(422, "you cannot disable or demote yourself")
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.role is not None:
        user.role = body.role
    if "task_kinds" in body.model_fields_set:
        user.task_kinds = [k.value for k in body.task_kinds] if body.task_kinds is not None else None
    if body.password is not None:
        users_service.set_password(session, user, body.password)  # ends their sessions and tokens
    session.flush()
    out = UserOut.model_validate(user, from_attributes=True)
    forget_principals(request, session)  # a disabled user or a new role counts from the next request
    return out


# ------------------------------------------------------------------------------------------ gold
class GoldIn(BaseModel):
    task_id: Id = Field(description="a done task; its item becomes gold")
    answer: ShortText | None = Field(None, description="default: the task's decided human label")


class GoldOut(BaseModel):
    id: int
    kind: TaskKind
    pair_id: int
    mask_id: int | None
    answer: str
    is_active: bool
    created_at: dt.datetime
    answered: int = 0
    correct: int = 0


@router.get("/gold", response_model=list[GoldOut])
def list_gold(_: GoldManager, session: SessionDep) -> list[GoldOut]:
    stats = {row.gold_item_id: (row.n, row.ok or 0) for row in session.execute(
        select(HumanTask.gold_item_id, func.count(Verdict.id).label("n"),
               func.sum(case((Verdict.label == GoldItem.answer, 1), else_=0)).label("ok"))
        .join(Verdict, Verdict.task_id == HumanTask.id).join(GoldItem, GoldItem.id == HumanTask.gold_item_id)
        .group_by(HumanTask.gold_item_id))}
    out = []
    for item in session.scalars(select(GoldItem).order_by(GoldItem.id)):
        n, ok = stats.get(item.id, (0, 0))
        out.append(GoldOut.model_validate(item, from_attributes=True).model_copy(update={"answered": n, "correct": ok}))
    return out


@router.post("/gold", response_model=GoldOut, status_code=201)
def create_gold(body: GoldIn, principal: GoldManager, session: SessionDep) -> GoldOut:
    task = session.get(HumanTask, body.task_id)
    if task is None or task.is_gold:
        raise HTTPException(404, f"no task {body.task_id} (gold tasks cannot be gold items)")
    if task.kind == TaskKind.CORRECT:
        raise HTTPException(422, "correction tasks cannot be gold items (answers are masks, not labels)")
    answer = body.answer
    if answer is None:
        if task.state != TaskState.DONE:
            raise HTTPException(422, f"task {task.id} is not done: give the answer")
        answer = session.scalars(select(Verdict.label).where(
            Verdict.task_id == task.id, Verdict.source == VerdictSource.HUMAN).order_by(Verdict.id.desc())).first()
        if answer is None:
            raise HTTPException(422, f"task {task.id} has no human verdict: give the answer")
    if answer not in LABELS[task.kind]:
        raise HTTPException(422, f"answer must be one of {', '.join(LABELS[task.kind])}")
    item = GoldItem(kind=task.kind, pair_id=task.pair_id, mask_id=task.mask_id, answer=answer, is_active=True,
                    created_by_id=principal.user_id)
    session.add(item)
    session.flush()
    queue.refill_gold(session, item_ids=[item.id])  # its copies now, so their ids sit among ordinary tasks
    return GoldOut.model_validate(item, from_attributes=True)


@router.delete("/gold/{gold_id}", status_code=204)
def retire_gold(gold_id: Id, _: GoldManager, session: SessionDep) -> Response:
    item = session.get(GoldItem, gold_id)
    if item is None:
        raise HTTPException(404, f"no gold item {gold_id}")
    item.is_active = False
    session.execute(update(HumanTask).where(HumanTask.gold_item_id == gold_id, HumanTask.state == TaskState.OPEN)
                    .values(state=TaskState.CANCELLED).execution_options(synchronize_session=False))
    return Response(status_code=204)
