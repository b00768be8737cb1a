"""Sign-in for people and scripts: browser sessions with CSRF tokens, API tokens, rate-limited log-in.

Tokens are 32 random bytes (url-safe base64); the database keeps only their sha256, so a leaked
database does not hand out sessions. A session's CSRF token is returned at log-in and must be echoed
in the ``X-CSRF-Token`` header of every state-changing request made with the cookie."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import ApiToken, AuthSession, LoginAttempt, User
from engine.db.rowcount import rowcount
from engine.domain.vocabulary import Role
from engine.services.users import authenticate

TOKEN_PREFIX = "de_"


class AuthError(Exception):
    """Wrong credentials, an expired or unknown token: the caller is not signed in."""


class RateLimited(AuthError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed log-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, and how they proved it."""

    user_id: int
    username: str
    role: Role
    task_kinds: tuple[str, ...] | None
    via: str  # "session" or "token"
    csrf_token: str | None = None
    session_id: int | None = None
    expires_at: dt.datetime | None = None  # when the log-in session ends (tokens: not given)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(user: User, via: str, csrf: str | None = None, session_id: int | None = None,
               expires_at: dt.datetime | None = None) -> Principal:
    return Principal(user.id, user.username, Role(user.role),
                     tuple(user.task_kinds) if user.task_kinds is not None else None, via, csrf, session_id,
                     expires_at)


# ------------------------------------------------------------------------------------ log-in
def _lock_attempts(session: Session, username: str, ip: str) -> None:
    """PostgreSQL: serialise reservations per user name, then per address (transaction-scoped
    advisory locks, two key spaces, always taken in this order: no deadlock). SQLite has one
    writer: the reservation's INSERT, the first statement of its transaction, waits for it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7301, hashtext(:u))"), {"u": username})
        session.execute(text("SELECT pg_advisory_xact_lock(7302, hashtext(:ip))"), {"ip": ip})


def reserve_attempt(session: Session, username: str, ip: str, *, max_failures: int, window_s: int,
                    now: dt.datetime | None = None) -> int:
    """Reserve one log-in attempt for the user name and the address, atomically; its row id.

    The attempt's row is written first (as failed) and then the window's failed attempts are counted,
    itself included, under a lock per user name and per address; over ``max_failures`` for either,
    the reservation is rolled back and RateLimited raised (refused attempts do not count, so a
    flood cannot lock an account out past the window). The reservation is committed before the
    password is checked (so the lock is not held during scrypt); :func:`attempt_succeeded` marks it.
    So at most ``max_failures`` passwords are evaluated per window per user name and per address,
    however many requests arrive at once. Commits (or rolls back) ``session``'s transaction."""
    now = now or utcnow()
    since = now - dt.timedelta(seconds=window_s)
    ip = ip[:64]
    session.commit()  # whatever the request did before: the reservation is a transaction of its own
    try:
        _lock_attempts(session, username, ip)
        row = LoginAttempt(username=username, ip=ip, succeeded=False, created_at=now)
        session.add(row)
        session.flush()
        for column, value in ((LoginAttempt.username, username), (LoginAttempt.ip, ip)):
            failures, oldest = session.execute(
                select(func.count(), func.min(LoginAttempt.created_at))
                .where(column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at >= since)).one()
            if failures > max_failures:
                oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
                raise RateLimited(max(1, int((oldest - since).total_seconds()) + 1))
    except BaseException:
        session.rollback()
        raise
    attempt_id = row.id
    session.commit()
    return attempt_id


def attempt_succeeded(session: Session, attempt_id: int) -> None:
    session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=True))


def check_credentials(session: Session, username: str, password: str, ip: str, *, max_failures: int,
                      window_s: int, now: dt.datetime | None = None) -> User:
    """The user, when the rate limit allows an attempt and the password is right (AuthError otherwise)."""
    username = username.strip().lower()[:64]
    attempt_id = reserve_attempt(session, username, ip, max_failures=max_failures, window_s=window_s, now=now)
    user = authenticate(session, username, password)
    if user is None:
        raise AuthError("wrong user name or password")
    attempt_succeeded(session, attempt_id)
    return user


def open_session(session: Session, user: User, ip: str, *, ttl_s: int,
                 now: dt.datetime | None = None) -> tuple[str, Principal]:
    """A new log-in session for the user: (cookie token, principal)."""
    now = now or utcnow()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = AuthSession(token_hash=_digest(token), csrf_token=csrf, user_id=user.id, ip=ip[:64],
                      created_at=now, expires_at=now + dt.timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return token, _principal(user, "session", csrf, row.id)


def log_in(session: Session, username: str, password: str, ip: str, *, ttl_s: int, max_failures: int,
           window_s: int, now: dt.datetime | None = None) -> tuple[str, Principal]:
    """Check the rate limit and the credentials, open a session; (cookie token, principal).
    A failed attempt stays counted (its reservation is committed before the password is checked)."""
    user = check_credentials(session, username, password, ip, max_failures=max_failures, window_s=window_s,
                             now=now)
    return open_session(session, user, ip, ttl_s=ttl_s, now=now)


def log_out(session: Session, session_id: int) -> None:
    session.execute(delete(AuthSession).where(AuthSession.id == session_id))


def from_session(session: Session, token: str, now: dt.datetime | None = None) -> Principal:
    now = now or utcnow()
    row = session.execute(
        select(AuthSession, User).join(User, User.id == AuthSession.user_id)
        .where(AuthSession.token_hash == _digest(token))).one_or_none()
    if row is None:
        raise AuthError("not signed in")
    auth, user = row
    expires = auth.expires_at if auth.expires_at.tzinfo else auth.expires_at.replace(tzinfo=dt.UTC)
    if expires < now or not user.is_active:
        raise AuthError("session expired; sign in again")
    return _principal(user, "session", auth.csrf_token, auth.id, expires)


def purge_expired_sessions(session: Session, now: dt.datetime | None = None) -> int:
    """Delete expired sessions and log-in attempts older than a day (far outside any rate window)."""
    now = now or utcnow()
    session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - dt.timedelta(days=1)))
    return rowcount(session.execute(delete(AuthSession).where(AuthSession.expires_at < now)))


# -------------------------------------------------------------------------------- API tokens
def create_token(session: Session, user_id: int, name: str, expires_days: int | None = None,
                 now: dt.datetime | None = None) -> tuple[str, ApiToken]:
    """A new API token for the user: (the token, shown once; its row)."""
    now = now or utcnow()
    name = name.strip()
    if not 1 <= len(name) <= 128:
        raise ValueError("a token name is 1–128 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=_digest(token), prefix=token[:10], name=name, user_id=user_id, created_at=now,
                   expires_at=now + dt.timedelta(days=expires_days) if expires_days else None)
    session.add(row)
    session.flush()
    return token, row


def from_token(session: Session, token: str, now: dt.datetime | None = None) -> Principal:
    now = now or utcnow()
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _digest(token))).one_or_none()
    if row is None:
        raise AuthError("unknown API token")
    api, user = row
    expires = api.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    if api.revoked_at is not None or (expires is not None and expires < now) or not user.is_active:
        raise AuthError("API token revoked or expired")
    # last use with minute resolution: one write per token per minute, not per request
    last = api.last_used_at
    if last is None or (now - (last if last.tzinfo else last.replace(tzinfo=dt.UTC))).total_seconds() > 60:
        session.execute(update(ApiToken).where(ApiToken.id == api.id).values(last_used_at=now))
    return _principal(user, "token")


def list_tokens(session: Session, user_id: int | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, user_id: int | None, now: dt.datetime | None = None) -> bool:
    """Revoke a token (only the owner's when ``user_id`` is given); False when there is none."""
    query = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return bool(rowcount(session.execute(query.values(revoked_at=now or utcnow()))))
