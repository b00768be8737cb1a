"""Log-in, log-out, who am I, and API tokens for scripts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from engine.domain.passwords import MAX_LENGTH, MIN_LENGTH
from engine.services import auth as auth_service
from engine.services import users as users_service
from engine.settings import Settings
from web.deps import (
    SESSION_COOKIE,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
    client_ip,
    forget_principals,
)
from web.routers.tasks import allowed_kinds
from web.schemas import Id, NoNulStr

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: NoNulStr = Field(min_length=1, max_length=64)
    # lengths checked by the endpoint: a validation error would carry the password back
    password: str = Field(json_schema_extra={"minLength": 1, "maxLength": 1024, "format": "password",
                                             "writeOnly": True})


def new_password_field(description: str, default: object = ...) -> Any:
    """A new password in a request body. The policy (``engine.domain.passwords.check_password``:
    length, the common-password list, not the user name) is checked by the endpoint, whose 422 says
    what is wrong without the password; the schema states the same lengths. Not validated here, so
    no validation error can carry the password back."""
    return Field(default, description=description,
                 json_schema_extra={"minLength": MIN_LENGTH, "maxLength": MAX_LENGTH, "format": "password",
                                    "writeOnly": True})


class PasswordChange(BaseModel):
    current_password: str = Field(json_schema_extra={"format": "password", "writeOnly": True})
    new_password: str = new_password_field(
        f"{MIN_LENGTH}–{MAX_LENGTH} characters, not a common password, not containing the user name")


class Me(BaseModel):
    username: str
    role: str
    task_kinds: list[str] | None
    allowed_kinds: list[str] = Field(description="the task kinds the queue may hand you (role and assignment)")
    csrf_token: str | None = Field(None, description="echo in X-CSRF-Token on state-changing requests")
    lease_s: int = Field(description="how long a leased task stays yours without a heartbeat")
    heartbeat_s: int = Field(description="how often a page should renew its leases")


class TokenIn(BaseModel):
    name: NoNulStr = Field(min_length=1, max_length=128)
    expires_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewToken(TokenOut):
    token: str = Field(description="shown once; store it now")


def _me(p: auth_service.Principal, settings: Settings) -> Me:
    return Me(username=p.username, role=p.role.value, task_kinds=list(p.task_kinds) if p.task_kinds else None,
              allowed_kinds=[k.value for k in allowed_kinds(p)], csrf_token=p.csrf_token,
              lease_s=settings.queue.lease_s, heartbeat_s=settings.queue.heartbeat_s)


@router.post("/login", response_model=Me)
def login(body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> Me:
    s = settings.serve
    if not 1 <= len(body.password) <= 1024:
        raise HTTPException(422, "a password is 1–1024 characters")
    try:
        token, principal = auth_service.log_in(session, body.username, body.password, client_ip(request),
                                               ttl_s=s.session_ttl_s, max_failures=s.login_max_failures,
                                               window_s=s.login_window_s)
    except auth_service.AuthError as exc:  # 401 (429 when rate-limited): web/errors.py
        if not isinstance(exc, auth_service.RateLimited):
            session.commit()  # keep the failed attempt: it counts towards the rate limit
        raise
    response.set_cookie(SESSION_COOKIE, token, max_age=s.session_ttl_s, httponly=True, samesite="strict",
                        secure=s.secure_cookies, path="/")
    return _me(principal, settings)


@router.post("/password", response_model=Me)
def change_password(body: PasswordChange, request: Request, response: Response, principal: PrincipalDep,
                    session: SessionDep, settings: SettingsDep) -> Me:
    """Change your own password (the current one is checked like a log-in, rate limit included).
    Every session and API token you had is ended; a browser gets a new session cookie and CSRF token."""
    s = settings.serve
    if len(body.current_password) > 1024:
        raise HTTPException(422, "a password is 1–1024 characters")
    try:
        user = auth_service.check_credentials(session, principal.username, body.current_password, client_ip(request),
                                              max_failures=s.login_max_failures, window_s=s.login_window_s)
    except auth_service.AuthError as exc:
        if isinstance(exc, auth_service.RateLimited):
            raise
        # signed in already: a wrong current password is a refusal (403), not a missing sign-in (401)
        raise HTTPException(403, "the current password is wrong") from None
    users_service.set_password(session, user, body.new_password)
    me = principal
    if principal.via == "session":
        token, me = auth_service.open_session(session, user, client_ip(request), ttl_s=s.session_ttl_s)
        response.set_cookie(SESSION_COOKIE, token, max_age=s.session_ttl_s, httponly=True, samesite="strict",
                            secure=s.secure_cookies, path="/")
    forget_principals(request, session)  # the old credentials are refused from the next request on
    return _me(me, settings)


@router.post("/logout", status_code=204)
def logout(request: Request, principal: PrincipalDep, session: SessionDep, response: Response) -> Response:
    if principal.session_id is not None:
        auth_service.log_out(session, principal.session_id)
        forget_principals(request, session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep, settings: SettingsDep) -> Me:
    return _me(principal, settings)


@router.get("/tokens", response_model=list[TokenOut])
def tokens(principal: PrincipalDep, session: SessionDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t, from_attributes=True)
            for t in auth_service.list_tokens(session, principal.user_id)]


@router.post("/tokens", response_model=NewToken, status_code=201)
def create_token(body: TokenIn, principal: PrincipalDep, session: SessionDep) -> NewToken:
    try:
        token, row = auth_service.create_token(session, principal.user_id, body.name, body.expires_days)
    except ValueError as exc:  # e.g. a name of spaces only: empty once stripped
        raise HTTPException(422, str(exc)) from None
    return NewToken(token=token, **TokenOut.model_validate(row, from_attributes=True).model_dump())


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: Id, request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    if not auth_service.revoke_token(session, token_id, principal.user_id):
        raise HTTPException(404, f"no active token {token_id} of yours")
    forget_principals(request, session)
    return Response(status_code=204)
