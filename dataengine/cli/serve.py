"""``dataengine serve``: the web server (the app of the composition root, dataengine/serve.py)."""

from __future__ import annotations

import logging

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx
from engine.settings import Settings, mask_url


@click.command()
@click.option("--host", help="Address to bind (default: settings serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: settings serve.port, 8000).")
@click.option("--workers", type=click.IntRange(1, 64), help="Server processes (default: settings serve.workers).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the web server: the annotators' queue, dashboards, operators' pages and the REST API
    under /api/v1 (OpenAPI at /docs), Prometheus metrics at /metrics. With several workers each process
    reads the same settings (environment and --config). Logs go to stderr in the format of
    observability.log_format (text or json) at log_level."""
    import uvicorn

    from dataengine.serve import create_app
    from engine.logs import configure_logging

    settings = ctx.settings
    s = settings.serve
    host, port, workers = host or s.host, port or s.port, workers or s.workers
    ensure_schema(settings)
    configure_logging(settings.observability.log_format, settings.log_level)
    for line in banner(settings, host, port, workers):
        click.echo(line)
    level = settings.log_level.lower()
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=level, log_config=None, access_log=False)
    else:
        uvicorn.run("dataengine.serve:serve_app", factory=True, host=host, port=port, workers=workers,
                    log_level=level, log_config=None, access_log=False)


def banner(settings: Settings, host: str, port: int, workers: int) -> list[str]:
    """What the server prints as it starts: where it listens, how work runs, the database (password
    masked), and what to do next."""
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    mode = ("embedded: mining jobs and the pages' model requests run in this process" if settings.embedded
            else f"broker {mask_url(settings.broker_url or '')}: jobs and model requests run on the workers")
    warm = settings.observability.warm_up
    lines = [
        f"dataengine serve: listening on {url} ({workers} process{'es' if workers > 1 else ''})",
        f"  mode:     {mode}",
        f"  database: {mask_url(settings.db_url)}",
        f"  models:   profile {settings.model_profile}; warm-up {warm if isinstance(warm, str) else ', '.join(warm)}",
        f"  logs:     {settings.observability.log_format} at {settings.log_level} on stderr; "
        f"metrics: {url}metrics" + ("" if settings.observability.metrics_enabled else " (off)"),
        "next steps:",
    ]
    if not _has_users(settings):
        lines.append("  - create an admin: dataengine users create NAME --role admin")
    lines.append(f"  - open {url}queue (annotators), {url}jobs and {url}dashboard (operators), {url}docs (API)")
    if not settings.embedded:
        lines.append("  - start the workers: dataengine worker (and dataengine beat once)")
    return lines


def _has_users(settings: Settings) -> bool:
    from sqlalchemy import select

    from engine.db.models import User
    from engine.db.session import session_scope

    try:
        with session_scope(settings.db_url) as session:
            return session.scalar(select(User.id).limit(1)) is not None
    except Exception:  # noqa: BLE001 - the hint is shown; the server reports the database itself
        logging.getLogger(__name__).debug("could not count users", exc_info=True)
        return False
