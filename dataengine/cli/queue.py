"""``dataengine queue expire|stats``: the human task queue."""

from __future__ import annotations

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.vocabulary import TaskState


@click.group("queue")
def queue_group() -> None:
    """The human task queue."""


@queue_group.command("expire")
@pass_ctx
def queue_expire(ctx: Context) -> None:
    """Return every task whose lease ran out to the queue now (the beat task does it every minute)."""
    from engine.db.session import session_scope
    from engine.services.queue import expire_leases

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        click.echo(f"{expire_leases(session)} expired lease(s) returned to the queue")


@queue_group.command("stats")
@pass_ctx
def queue_stats(ctx: Context) -> None:
    """Open and leased tasks per kind."""
    from sqlalchemy import func, select

    from engine.db.models import HumanTask
    from engine.db.session import session_scope

    ensure_schema(ctx.settings)
    table = Table("kind", "open", "leased", "done", title="human tasks")
    with session_scope(ctx.settings.db_url) as session:
        counts: dict[str, dict[str, int]] = {}
        for kind, state, n in session.execute(
                select(HumanTask.kind, HumanTask.state, func.count()).where(HumanTask.is_gold.is_(False))
                .group_by(HumanTask.kind, HumanTask.state)):
            counts.setdefault(kind.value, {})[state.value] = n
    for kind_name, c in sorted(counts.items()):
        table.add_row(kind_name, str(c.get(TaskState.OPEN.value, 0)), str(c.get(TaskState.LEASED.value, 0)),
                      str(c.get(TaskState.DONE.value, 0)))
    console.print(table)
