"""``dataengine serve``: the web server (the app of the composition root, dataengine/serve.py)."""

from __future__ import annotations

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx


@click.command()
@click.option("--host", help="Address to bind (default: settings serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: settings serve.port, 8000).")
@click.option("--workers", type=click.IntRange(1, 64), help="Server processes (default: settings serve.workers).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the web server: the annotators' queue, dashboards, operators' pages and the REST API
    under /api/v1 (OpenAPI at /docs). With several workers each process reads the same settings
    (environment and --config)."""
    import uvicorn

    from dataengine.serve import create_app

    s = ctx.settings.serve
    host, port, workers = host or s.host, port or s.port, workers or s.workers
    ensure_schema(ctx.settings)
    click.echo(f"serving on http://{host}:{port}/ ({workers} worker{'s' if workers > 1 else ''}); "
               f"create a user first: dataengine users create NAME --role admin")
    if workers == 1:
        uvicorn.run(create_app(ctx.settings), host=host, port=port, log_level="warning", access_log=False)
    else:
        uvicorn.run("dataengine.serve:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
