"""``dataengine config show``: the effective settings."""

from __future__ import annotations

import json

import click
from rich.table import Table

from dataengine.cli.context import Context, console, pass_ctx


@click.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the effective settings (passwords masked)."""
    data = ctx.settings.masked()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("setting", "value", title="effective settings")
    for key, value in _flatten(data):
        table.add_row(key, "" if value is None else str(value))
    table.add_row("execution", "in-process (no broker)" if ctx.settings.embedded else "Celery workers")
    console.print(table)


def _flatten(data: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows
