"""Request dependencies: settings, a database session whose transaction the request owns, and the
caller (session cookie or bearer token) with the permission each endpoint needs.

Every endpoint but log-in and health depends on :func:`require`, which answers 401 when nobody is
signed in, 403 when the role lacks the permission, and 403 when a cookie-authenticated request that
changes state does not echo the session's CSRF token in ``X-CSRF-Token``."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from engine.db.session import session_scope
from engine.domain.permissions import Permission, allowed
from engine.services.auth import AuthError, Principal, from_session, from_token
from engine.settings import Settings

SESSION_COOKIE = "de_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.db_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_principal(request: Request, session: SessionDep) -> Principal:
    """The caller, or 401. A bearer token wins over a cookie."""
    header = request.headers.get("authorization", "")
    try:
        if header.lower().startswith("bearer "):
            return from_token(session, header[7:].strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthError("not signed in")
        principal = from_session(session, cookie)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not (principal.csrf_token and hmac.compare_digest(sent, principal.csrf_token)):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency: the caller, who must have ``permission`` (403 otherwise)."""

    def check(principal: PrincipalDep) -> Principal:
        if not allowed(principal.role, permission):
            raise HTTPException(403, f"the {principal.role.value} role may not do this ({permission.value})")
        return principal

    return check


Annotator = Annotated[Principal, Depends(require(Permission.QUEUE))]
ImageReader = Annotated[Principal, Depends(require(Permission.IMAGES))]
GoldManager = Annotated[Principal, Depends(require(Permission.GOLD))]
DashboardViewer = Annotated[Principal, Depends(require(Permission.DASHBOARD))]
JobReader = Annotated[Principal, Depends(require(Permission.JOBS_READ))]
JobWriter = Annotated[Principal, Depends(require(Permission.JOBS_WRITE))]
Admin = Annotated[Principal, Depends(require(Permission.USERS))]
Exporter = Annotated[Principal, Depends(require(Permission.EXPORTS))]
