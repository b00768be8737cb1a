"""Request dependencies: settings, the ports the app was built with (job runner, models), a database
session whose transaction the request owns, and the caller (session cookie or bearer token) with the
permission each endpoint needs.

Every endpoint but log-in and health depends on :func:`require`, which answers 401 when nobody is
signed in, 403 when the role lacks the permission, and 403 when a cookie-authenticated request that
changes state does not echo the session's CSRF token in ``X-CSRF-Token``.

Cost per request matters (the queue serves hundreds of requests a second on two cores): everything
here that does no I/O is ``async`` (FastAPI would otherwise hop to a worker thread for each), a sync
endpoint and the end of its transaction run in one worker-thread call, and who a credential belongs to is remembered
per process for ``serve.auth_cache_s`` seconds (:class:`PrincipalCache`). The transaction commits
before the response is sent: a client that saw 2xx has its change stored."""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.session import session_factory, session_scope
from engine.domain.permissions import Permission, allowed
from engine.ports import JobRunner, ModelProvider
from engine.services.auth import AuthError, Principal, from_session, from_token
from engine.settings import Settings

SESSION_COOKIE = "de_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def find_jobs(request: Request) -> JobRunner | None:
    """The app's job runner (a port wired by the composition root, dataengine/serve.py), if any."""
    jobs: JobRunner | None = request.app.state.jobs
    return jobs


async def get_jobs(jobs: Annotated[JobRunner | None, Depends(find_jobs)]) -> JobRunner:
    """The app's job runner, or 503."""
    if jobs is None:
        raise HTTPException(503, "this server runs no mining jobs (no job runner is wired in)")
    return jobs


async def get_models(request: Request) -> ModelProvider:
    """The app's model provider (a port wired by the composition root), or 503."""
    models: ModelProvider | None = request.app.state.models
    if models is None:
        raise HTTPException(503, "this server runs no models (no model provider is wired in)")
    return models


JobsDep = Annotated[JobRunner, Depends(get_jobs)]
MaybeJobsDep = Annotated[JobRunner | None, Depends(find_jobs)]
ModelsDep = Annotated[ModelProvider, Depends(get_models)]


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()  # returns the connection; whatever was not committed is rolled back


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for the request: committed when the endpoint returns (before the response is
    sent), rolled back when it raises. Making the session does no I/O; it connects on first use.

    A sync endpoint of a :class:`UnitOfWorkRoute` has ended the transaction already, in its own
    worker thread; what is left here (closing) does no I/O then. Otherwise (an async endpoint, an
    error raised outside the endpoint) the transaction ends in a worker thread here."""
    session = session_factory(request.app.state.settings.db_url)()
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):  # a client that went away still gets its connection back
                await run_in_threadpool(_finish, session, False)
        session.close()
        raise
    if session.in_transaction():
        await run_in_threadpool(_finish, session, True)
    else:
        session.close()


def _in_one_thread_call(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint, then the commit (or the rollback) of its sessions, in the same worker-thread call.

    A transaction must never wait for a free worker thread while it holds row locks: requests that
    wait for those locks may be holding every thread (a verdict on a mask that a "not present"
    verdict is rejecting, say), and then nothing moves again."""

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [v for v in kwargs.values() if isinstance(v, Session)]
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            for session in sessions:
                session.rollback()
            raise
        for session in sessions:
            session.commit()
        return result

    return run


class UnitOfWorkRoute(APIRoute):
    """The route class of every router here: a sync endpoint's transaction ends in the same
    worker-thread call as the endpoint, so no transaction waits for a thread while it holds locks."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _in_one_thread_call(endpoint)
        super().__init__(path, endpoint, **kwargs)


#: scope="function": the exit code (the commit) runs before the response goes out, not after
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class PrincipalCache:
    """Who a credential belongs to, remembered for ``ttl_s`` seconds (never past a session's own
    expiry). Keys are sha256 digests of the credentials, never the credentials themselves."""

    def __init__(self, ttl_s: float, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            with self._lock:
                self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, principal: Principal, expires_in_s: float | None = None) -> None:
        if self.ttl_s <= 0:
            return
        ttl = self.ttl_s if expires_in_s is None else min(self.ttl_s, expires_in_s)
        if ttl <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + ttl, principal)

    def clear(self) -> None:
        """Forget everyone (after a log-out, a revoked token, a changed or disabled user)."""
        with self._lock:
            self._entries.clear()


def forget_principals(request: Request, session: Session) -> None:
    """Commit the endpoint's change to a credential or a user now, then drop this process's cached
    principals, so that no request can cache the old state again in between."""
    session.commit()
    request.app.state.principals.clear()


def _look_up(settings: Settings, kind: str, credential: str) -> tuple[Principal, float | None]:
    with session_scope(settings.db_url) as session:
        if kind == "token":
            return from_token(session, credential), None
        principal = from_session(session, credential)
    left = None
    if principal.expires_at is not None:
        left = (principal.expires_at - utcnow()).total_seconds()
    return principal, left


async def get_principal(request: Request) -> Principal:
    """The caller, or 401. A bearer token wins over a cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        kind, credential = "token", header[7:].strip()
    else:
        kind, credential = "session", request.cookies.get(SESSION_COOKIE, "")
        if not credential:
            raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
    cache: PrincipalCache = request.app.state.principals
    key = hashlib.sha256(f"{kind}:{credential}".encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        principal = cached
    else:
        try:
            principal, left = await run_in_threadpool(_look_up, request.app.state.settings, kind, credential)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        cache.put(key, principal, left)
    if request.method not in SAFE_METHODS and principal.via == "session":
        sent = request.headers.get(CSRF_HEADER, "")
        if not (principal.csrf_token and hmac.compare_digest(sent, principal.csrf_token)):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency: the caller, who must have ``permission`` (403 otherwise)."""

    async def check(principal: PrincipalDep) -> Principal:
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
