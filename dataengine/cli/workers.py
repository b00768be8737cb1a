"""``dataengine worker`` and ``dataengine beat``: the Celery processes, on the configured broker."""

from __future__ import annotations

import click

from dataengine.cli.context import Context, pass_ctx


@click.command()
@click.option("--queues", "-Q", default="io,cpu,gpu", show_default=True, help="Comma-separated queues.")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: cores).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--loglevel", default=None, help="Log level (default: the log_level setting).")
@click.option("--hostname", "-n", default=None, help="Worker node name.")
@pass_ctx
def worker(ctx: Context, queues: str, concurrency: int | None, pool: str, loglevel: str,
           hostname: str | None) -> None:
    """Start a Celery worker consuming QUEUES from the configured broker."""
    if ctx.settings.embedded:
        raise click.ClickException("no broker configured: set DATAENGINE_BROKER_URL (redis:// or amqp://)")
    from pipelines.celery_app import QUEUES, app

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown:
        raise click.ClickException(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    argv = ["worker", f"--queues={','.join(wanted)}", f"--pool={pool}",
            f"--loglevel={loglevel or ctx.settings.log_level}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


@click.command()
@click.option("--loglevel", default=None, help="Log level (default: the log_level setting).")
@pass_ctx
def beat(ctx: Context, loglevel: str | None) -> None:
    """Start the Celery beat scheduler (periodic maintenance tasks)."""
    if ctx.settings.embedded:
        raise click.ClickException("no broker configured: set DATAENGINE_BROKER_URL")
    from pipelines.celery_app import app

    app.start(["beat", f"--loglevel={loglevel or ctx.settings.log_level}"])
