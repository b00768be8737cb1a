"""People: create, list, disable, authenticate. Roles: admin, annotator, reviewer, ml_engineer."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import ApiToken, AuthSession, User
from engine.db.rowcount import rowcount
from engine.domain.passwords import hash_password, verify_password
from engine.domain.vocabulary import Role

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{1,63}$")
#: a well-formed hash no password matches: an unknown user costs the same scrypt time as a wrong password
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class UserError(ValueError):
    pass


class UserExists(UserError):
    """The username belongs to an account already."""


def create_user(session: Session, username: str, password: str, role: Role) -> User:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise UserError("a username is 2–64 characters: lower-case letters, digits, and _ . @ -")
    if session.scalars(select(User).where(User.username == username)).first() is not None:
        raise UserExists(f"user {username!r} exists")
    user = User(username=username, password_hash=hash_password(password, username), role=role, is_active=True)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def set_active(session: Session, username: str, active: bool) -> User:
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise UserError(f"no user {username!r}")
    user.is_active = active
    session.flush()
    return user


def revoke_credentials(session: Session, user_id: int, now: dt.datetime | None = None) -> tuple[int, int]:
    """End every log-in session and revoke every API token of the user; (sessions, tokens)."""
    sessions = rowcount(session.execute(delete(AuthSession).where(AuthSession.user_id == user_id)))
    tokens = rowcount(session.execute(update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                                      .values(revoked_at=now or utcnow())))
    return sessions, tokens


def set_password(session: Session, user: User, password: str) -> None:
    """Give the user a new password (the policy: ``engine.domain.passwords.check_password``) and, in
    the same transaction, end every session and revoke every API token they had: whoever held an old
    credential holds nothing once the change commits. Raises WeakPassword, leaving everything as it was."""
    user.password_hash = hash_password(password, user.username)
    revoke_credentials(session, user.id)
    session.flush()


def find_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same answer for every kind of failure)."""
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or not user.is_active:
        return None
    return user
