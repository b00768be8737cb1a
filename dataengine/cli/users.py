"""``dataengine users create|list|disable|passwd``: people who annotate, review and administer."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.vocabulary import Role, TaskKind


@click.group()
def users() -> None:
    """People who annotate, review and administer."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@click.option("--kinds", help="Task kinds they are assigned, comma-separated (default: all): "
                              "verify_mask,check_exhaustivity,correct")
@pass_ctx
def users_create(ctx: Context, username: str, role: str, password_stdin: bool, kinds: str | None) -> None:
    """Create USERNAME with a role; the password is asked for (or read with --password-stdin)."""
    from engine.db.session import session_scope
    from engine.domain.passwords import WeakPassword
    from engine.services.users import UserError, create_user

    task_kinds = _task_kinds(kinds) if kinds else None
    ensure_schema(ctx.settings)
    password = _read_password("password", password_stdin)
    try:
        with session_scope(ctx.settings.db_url) as session:
            user = create_user(session, username, password, Role(role))
            user.task_kinds = task_kinds
            click.echo(f"created {user.username} ({user.role.value})"
                       + (f", task kinds {', '.join(task_kinds)}" if task_kinds else ""))
    except (UserError, WeakPassword) as exc:
        raise click.ClickException(str(exc)) from None


def _task_kinds(kinds: str) -> list[str]:
    """The task kinds of a comma-separated list, each a known one."""
    task_kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(task_kinds) - {k.value for k in TaskKind})
    if unknown:
        raise click.ClickException(f"unknown task kind(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(k.value for k in TaskKind)}")
    return task_kinds


def _read_password(prompt: str, from_stdin: bool) -> str:
    """A password from standard input (scripts) or typed twice, hidden."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users.command("list")
@pass_ctx
def users_list(ctx: Context) -> None:
    """Every user with role and state."""
    from engine.db.session import session_scope
    from engine.services.users import list_users

    ensure_schema(ctx.settings)
    table = Table("username", "role", "active", "created", title="users")
    with session_scope(ctx.settings.db_url) as session:
        for user in list_users(session):
            table.add_row(user.username, user.role.value, "yes" if user.is_active else "no",
                          user.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@users.command("disable")
@click.argument("username")
@pass_ctx
def users_disable(ctx: Context, username: str) -> None:
    """Disable USERNAME (their verdicts stay; they can no longer log in or take tasks)."""
    from engine.db.session import session_scope
    from engine.services.users import UserError, set_active

    ensure_schema(ctx.settings)
    try:
        with session_scope(ctx.settings.db_url) as session:
            set_active(session, username, False)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"disabled {username}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (scripts).")
@pass_ctx
def users_passwd(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (the policy of the web app) and end every session and API token they had."""
    from engine.db.session import session_scope
    from engine.domain.passwords import WeakPassword
    from engine.services.users import UserError, find_user, set_password

    ensure_schema(ctx.settings)
    password = _read_password("new password", password_stdin)
    try:
        with session_scope(ctx.settings.db_url) as session:
            set_password(session, find_user(session, username), password)
    except (UserError, WeakPassword) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new password for {username.strip().lower()}; their sessions and API tokens are ended "
               f"(servers forget them within serve.auth_cache_s)")
