"""``dataengine db upgrade|downgrade|current``: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from dataengine.cli.context import Context, pass_ctx


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    import migrations

    migrations.upgrade(ctx.settings.db_url, revision)
    click.echo(f"database at revision {migrations.current(ctx.settings.db_url)}")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(ctx: Context, revision: str) -> None:
    """Migrate the database down to REVISION ('base' drops everything)."""
    import migrations

    migrations.downgrade(ctx.settings.db_url, revision)
    click.echo(f"database at revision {migrations.current(ctx.settings.db_url) or 'base (empty)'}")


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Print the database's revision and the code's head revision."""
    import migrations

    cur = migrations.current(ctx.settings.db_url)
    head = migrations.head()
    click.echo(f"current: {cur or 'none (empty database)'}\nhead:    {head}")
    if cur != head:
        click.echo("run `dataengine db upgrade` to migrate", err=True)
