"""`dataengine users create/passwd` use the web app's password policy; passwd ends every session and token."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from dataengine.cli.main import cli
from engine.db.models import ApiToken, AuthSession, Role
from engine.db.session import session_scope
from engine.services import auth
from engine.services.users import authenticate, create_user


def _run(*args: str, stdin: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.output


def test_create_refuses_what_the_policy_refuses(cli_database):
    for password, message in (("password1234", "too common"), ("carol-the-admin", "user name"),
                              ("x" * 300, "at most 256")):
        code, output = _run("users", "create", "carol", "--role", "admin", "--password-stdin", stdin=password + "\n")
        assert code == 1 and message in output and password not in output


def test_passwd_sets_the_password_and_ends_sessions_and_tokens(cli_database):
    with session_scope(cli_database) as s:
        user = create_user(s, "dora", "correct horse battery", Role.ANNOTATOR)
        auth.open_session(s, user, "127.0.0.1", ttl_s=3600)
        auth.create_token(s, user.id, "script")

    code, output = _run("users", "passwd", "dora", "--password-stdin", stdin="qwerty123\n")
    assert code == 1 and "at least 10 characters" in output
    code, output = _run("users", "passwd", "dora", "--password-stdin", stdin="qwertyuiop123\n")
    assert code == 1 and "too common" in output
    with session_scope(cli_database) as s:  # refused: nothing changed
        assert s.scalar(select(func.count()).select_from(AuthSession)) == 1
        assert authenticate(s, "dora", "correct horse battery") is not None

    code, output = _run("users", "passwd", "Dora", "--password-stdin", stdin="a new long passphrase\n")
    assert code == 0 and "new password for dora" in output and "passphrase" not in output
    with session_scope(cli_database) as s:
        assert authenticate(s, "dora", "correct horse battery") is None
        assert authenticate(s, "dora", "a new long passphrase") is not None
        assert s.scalar(select(func.count()).select_from(AuthSession)) == 0
        assert s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))) == 0

    code, output = _run("users", "passwd", "zed", "--password-stdin", stdin="a new long passphrase\n")
    assert code == 1 and "no user 'zed'" in output
