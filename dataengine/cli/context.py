"""What every ``dataengine`` command shares: the settings (read once, on first use), the console
tables are printed on, and the schema check commands run before they touch the database."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from engine.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 120)


class Context:
    """The click context object: the settings, read when a command first asks for them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, missing config file
                raise click.ClickException(f"invalid settings: {exc}") from None
        return self._settings


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def ensure_schema(settings: Settings) -> None:
    """The embedded SQLite database is created on first use; anything else must be migrated."""
    import migrations

    url = settings.db_url
    try:
        cur = migrations.current(url)
    except Exception as exc:  # noqa: BLE001 - show the connection problem plainly
        where = settings.masked()["database_url"]
        raise click.ClickException(f"cannot connect to the database {where}: {exc}") from None
    head = migrations.head()
    if cur == head:
        return
    if cur is None and url.startswith("sqlite"):
        migrations.upgrade(url)
        return
    raise click.ClickException(
        f"the database is at revision {cur or 'none'} but this code needs {head}: "
        "run `dataengine db upgrade`"
    )
