"""``dataengine labelstudio push|pull``: the queue worked from Label Studio (annotators/label_studio.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx
from engine.domain.vocabulary import TaskKind

Command = TypeVar("Command", bound=Callable[..., None])

LS_KINDS = {"verify": TaskKind.VERIFY_MASK, "exhaustivity": TaskKind.CHECK_EXHAUSTIVITY, "correct": TaskKind.CORRECT}


@click.group("labelstudio")
def labelstudio_group() -> None:
    """Work the queue from Label Studio: push tasks to a project, pull annotations back as verdicts."""


def _ls_options(func: Command) -> Command:
    """The options every command that talks to Label Studio takes."""
    func = click.option("--token", help="Label Studio API token (default: labelstudio.token).")(func)
    return click.option("--url", help="Label Studio base URL (default: labelstudio.url).")(func)


@labelstudio_group.command("push")
@_ls_options
@click.option("--kind", type=click.Choice(sorted(LS_KINDS)), required=True, help="Which tasks to push.")
@click.option("--project", help="Project title (default: labelstudio.project, else dataengine-<task kind>); "
                                "made when missing, reused when its labeling config matches.")
@click.option("--limit", type=click.IntRange(min=1), help="Push at most this many tasks (default: every open one).")
@click.option("--webhook-url", help="Also register our webhook on the project, e.g. "
                                    "http://HOST:8000/api/v1/labelstudio/webhook (needs labelstudio.webhook_secret).")
@pass_ctx
def labelstudio_push(ctx: Context, url: str | None, token: str | None, kind: str, project: str | None,
                     limit: int | None, webhook_url: str | None) -> None:
    """Lease open tasks of --kind to the bridge and import them, with their masks as predictions."""
    from annotators.label_studio import LabelStudioError, connect, push

    ensure_schema(ctx.settings)
    try:
        client = connect(ctx.settings, url, token)
        report = push(ctx.settings, client, LS_KINDS[kind], project=project, limit=limit,
                      webhook_url=webhook_url)
    except LabelStudioError as exc:
        raise click.ClickException(str(exc)) from None
    rate = report.pushed / report.seconds if report.seconds else 0.0
    click.echo(f"project {report.project!r} (id {report.project_id}{', created' if report.created else ''}) on "
               f"{client.server}: pushed {report.pushed} task(s) in {report.batches} batch(es), "
               f"{report.seconds:.1f} s ({rate:.0f} tasks/s)" + ("; webhook registered" if report.webhook else ""))


@labelstudio_group.command("pull")
@_ls_options
@click.option("--project", help="Only this project (default: every project we pushed to on the server).")
@pass_ctx
def labelstudio_pull(ctx: Context, url: str | None, token: str | None, project: str | None) -> None:
    """Store new and edited annotations as verdicts (source label_studio); pulling again stores nothing twice."""
    from annotators.label_studio import LabelStudioError, connect, pull

    ensure_schema(ctx.settings)
    try:
        client = connect(ctx.settings, url, token)
        summary = pull(ctx.settings, client, project=project)
    except LabelStudioError as exc:
        raise click.ClickException(str(exc)) from None
    report = summary.report
    click.echo(f"{summary.tasks} annotated task(s) in {len(summary.projects)} project(s), {summary.seconds:.1f} s: "
               f"{report.count('stored')} stored, {report.count('replaced')} replaced an earlier verdict, "
               f"{report.count('unchanged')} already stored, {report.count('skipped')} skipped in Label Studio, "
               f"{report.count('unknown')} not ours, {report.count('conflict')} stored but in conflict with a "
               f"decision made meanwhile (not applied), {len(report.failures)} failed")
    for conflict in [o for o in report.outcomes if o.status == "conflict"][:20]:
        click.echo(f"  task {conflict.ls_task_id} annotation {conflict.annotation_id}: {conflict.error}", err=True)
    for failure in report.failures[:20]:
        click.echo(f"  task {failure.ls_task_id} annotation {failure.annotation_id}: {failure.error}", err=True)
    if len(report.failures) > 20:
        click.echo(f"  … and {len(report.failures) - 20} more (label_studio_annotations.error)", err=True)
