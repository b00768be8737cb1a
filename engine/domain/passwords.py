"""Password hashing with scrypt (memory-hard; in the standard library), constant-time checks, and the
one password policy (:func:`check_password`) that every way of setting a password goes through: the
web API (its schemas state the same lengths), the admin pages and the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from functools import lru_cache
from pathlib import Path

N, R, P, DKLEN = 2**14, 8, 1, 32
MIN_LENGTH = 10
MAX_LENGTH = 256
COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")
_TRAILING = re.compile(r"[\d\W_]+$")


class WeakPassword(ValueError):
    """A password the policy refuses; the message never contains the password."""


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, username: str | None = None) -> str | None:
    """What is wrong with ``password`` under the policy, or None. The policy: MIN_LENGTH to
    MAX_LENGTH characters; not a common password (the shipped list, compared in lower case, also
    with trailing digits and symbols dropped: "Password123!" is "password"); not containing the
    user name."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    lowered = password.lower()
    common = common_passwords()
    if lowered in common or _TRAILING.sub("", lowered) in common or lowered.strip() in common:
        return "this password is too common (it is on the list of passwords tried first); choose another"
    if username and len(username.strip()) >= 2 and username.strip().lower() in lowered:
        return "a password must not contain the user name"
    return None


def check_password(password: str, username: str | None = None) -> None:
    """Raise WeakPassword when the policy refuses ``password`` (see :func:`password_problem`)."""
    problem = password_problem(password, username)
    if problem:
        raise WeakPassword(problem)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, username: str | None = None) -> str:
    """The stored form of a new password, which must pass :func:`check_password`."""
    check_password(password, username)
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=DKLEN)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed or missing hash."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
