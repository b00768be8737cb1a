"""People (admins) and gold items (reviewers and admins)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.db.models import User
from engine.domain.vocabulary import Role, TaskKind
from engine.services import gold as gold_service
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
    return [GoldOut.model_validate(g.item, from_attributes=True).model_copy(
        update={"answered": g.answered, "correct": g.correct}) for g in gold_service.list_gold(session)]


@router.post("/gold", response_model=GoldOut, status_code=201)
def create_gold(body: GoldIn, principal: GoldManager, session: SessionDep) -> GoldOut:
    item = gold_service.create_gold(session, body.task_id, body.answer, principal.user_id)
    return GoldOut.model_validate(item, from_attributes=True)


@router.delete("/gold/{gold_id}", status_code=204)
def retire_gold(gold_id: Id, _: GoldManager, session: SessionDep) -> Response:
    gold_service.retire_gold(session, gold_id)
    return Response(status_code=204)
