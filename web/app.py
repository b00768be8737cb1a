"""Application factory: the REST API under /api/v1, the pages (plain HTML + JS from web/static, no
build step), security headers and a request size limit on every response, the error contract's
handlers (web/errors.py). What the app needs from job running — starting jobs, the click-to-segment
model — comes in as ports (engine/ports.py); the composition root that builds the real ones is
dataengine/serve.py."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.ports import ExemplarRunner, JobRunner, ModelProvider, TrackRunner
from engine.settings import Settings
from web import errors, observability
from web.deps import PrincipalCache
from web.errors import BodyTooLarge, error_response
from web.routers import (
    admin,
    api_docs,
    auth,
    dashboard,
    exemplars,
    exports,
    health,
    images,
    labelstudio,
    model_state,
    similar,
    tasks,
    video,
)
from web.routers import jobs as jobs_router
from web.routers import metrics as metrics_router
from web.routers import undo as undo_router
from web.schemas import ERROR_RESPONSES

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
#: page path → file in web/static
PAGES = {"/login": "login.html", "/queue": "queue.html", "/dashboard": "dashboard.html",
         "/jobs": "jobs.html", "/admin": "admin.html"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
                                 b"style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                 b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class Guard:
    """ASGI middleware: adds the security headers and refuses bodies over ``max_body`` bytes
    (413), whether the size is announced in Content-Length or only seen while streaming."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                # a response with a policy of its own keeps it (/redoc: a style nonce, web/routers/api_docs.py)
                own_csp = any(k.lower() == b"content-security-policy" for k, _ in headers)
                headers += [(k, v) for k, v in SECURITY_HEADERS if not (own_csp and k == b"content-security-policy")]
                if scope["path"].startswith("/api/") and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(send_with_headers)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, limited_receive, send_tracked)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(send_with_headers)
        except Exception:
            # never a traceback (or a reset connection) for the client: log it, answer 500 in the contract's shape
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _send(error_response(500, "internal error"), send_with_headers)

    async def _too_large(self, send: Send) -> None:
        await _send(error_response(413, f"request body over {self.max_body} bytes"), send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(response: Response, send: Send) -> None:
    await response({"type": "http", "method": "POST", "path": "/", "headers": []}, _empty_receive, send)


API_DESCRIPTION = """\
**Errors.** Every 4xx and 5xx answer is JSON `{"detail": "<a sentence for a person>", "code": "<stable_snake_case>"}`,
the code also in the `X-Error-Code` header. A 422 adds `"errors": [{"loc": [...], "msg": "..."}]`, one per invalid
value (where and why; the value sent is never echoed). Codes: the status's (`bad_request` 400, `unauthorized` 401,
`forbidden` 403, `not_found` 404, `method_not_allowed` 405, `conflict` 409, `gone` 410, `too_large` 413 — a body over
`serve.max_body_bytes`, `invalid` 422, `rate_limited` 429, `unavailable` 503, `internal_error` 500) or the endpoint's
own (409 `lease_lost`, `client_id_conflict`, `decision_conflict` — with `verdict_id` and `task_state` —,
`too_many_leases`). A 500 says only "internal error"; the cause is logged.

**Bounds** (422 `invalid` otherwise). Ids: 1 .. 2^31−1 (the id columns are INTEGER); counts, offsets and milliseconds:
0 .. 2^31−1; numbers: finite (no NaN or Infinity); dates: 2000-01-01 .. 100 years from now; strings: no NUL
character, lengths as each field says (labels 64, names 255, comments and concept texts 2000).
"""


def _lifespan(settings: Settings, startup: Sequence[Callable[[], object]] = ()
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the pool sync endpoints and dependencies run in: as many threads as the work can use
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.serve.threads
        for start in startup:  # e.g. the model warm-up (dataengine/serve.py): returns at once
            start()
        yield

    return lifespan


def create_app(settings: Settings | None = None, *, jobs: JobRunner | None = None,
               models: ModelProvider | None = None, tracking: TrackRunner | None = None,
               exemplar_runner: ExemplarRunner | None = None, installed_ports: bool = True,
               startup: Sequence[Callable[[], object]] = ()) -> FastAPI:
    """The app on ``settings`` (default: read from the environment). ``jobs`` starts mining jobs and
    ``models`` gives the click-to-segment model, ``tracking`` runs the video page's tracker requests
    off this process. A port not given is taken from the installed
    composition root (:func:`installed_ports`) unless ``installed_ports`` is false; without one, its
    endpoints answer 503. ``startup``: callables run when the server starts (its lifespan), before
    the first request."""
    settings = settings or Settings()
    if installed_ports and (jobs is None or models is None or tracking is None or exemplar_runner is None):
        found_jobs, found_models, found_tracking, found_exemplars = _installed_ports(settings)
        jobs, models, tracking = jobs or found_jobs, models or found_models, tracking or found_tracking
        exemplar_runner = exemplar_runner or found_exemplars
    # /docs and /redoc are web.routers.api_docs (assets served from the package), not FastAPI's CDN pages
    app = FastAPI(title="Data Engine", version="0.1.0", docs_url=None, openapi_url="/openapi.json",
                  redoc_url=None, lifespan=_lifespan(settings, startup), description=API_DESCRIPTION,
                  responses=ERROR_RESPONSES)
    app.state.settings = settings
    app.state.principals = PrincipalCache(settings.serve.auth_cache_s)  # see web.deps
    app.state.jobs = jobs  # web.deps.JobsDep
    app.state.models = models  # web.deps.ModelsDep
    app.state.tracking = tracking  # web.routers.video.TrackingDep
    app.state.exemplars = exemplar_runner  # web.routers.exemplars.ExemplarRunnerDep
    app.state.metrics_registry = registry = CollectorRegistry(auto_describe=True)  # GET /metrics
    metrics_router.install(registry, settings)
    app.include_router(metrics_router.router)
    app.include_router(model_state.router, prefix="/api/v1")
    for module in (health, auth, tasks, images, admin, labelstudio, jobs_router, dashboard, exports, video,
                   similar, exemplars):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(undo_router.router, prefix="/api/v1")  # undo of the last verdict
    app.include_router(api_docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    for path, filename in PAGES.items():
        app.add_api_route(path, _page(filename), include_in_schema=False, methods=["GET"])
    # the log-in page sends a signed-in visitor on to their role's page (an admin to the dashboard: the
    # queue page leases a task as it opens)
    app.add_api_route("/", lambda: RedirectResponse("/login"), include_in_schema=False, methods=["GET"])
    errors.install(app)
    app.add_middleware(Guard, max_body=settings.serve.max_body_bytes)
    # outermost: the request id is bound before anything logs, and the latency includes the 413s and 500s
    app.add_middleware(observability.RequestContext, metrics=observability.HttpMetrics(registry))
    return app


#: the entry-point group where a distribution declares the ports the web app runs with
PORTS_GROUP = "dataengine.web"


def _installed_ports(settings: Settings) -> tuple[JobRunner | None, ModelProvider | None, TrackRunner | None,
                                                  ExemplarRunner | None]:
    """The ports the installed distribution declares: the entry point ``ports`` of the group
    ``dataengine.web`` (this project's pyproject.toml names ``dataengine.serve:ports``), a function of
    the settings, giving (jobs, models), (jobs, models, tracking) or (jobs, models, tracking, exemplars).
    The web layer names no module of
    pipelines/: the composition is declared, not imported."""
    from importlib.metadata import entry_points

    for point in entry_points(group=PORTS_GROUP, name="ports"):
        factory: Callable[[Settings], tuple[Any, ...]] = point.load()
        found = factory(settings)
        return found[0], found[1], found[2] if len(found) > 2 else None, found[3] if len(found) > 3 else None
    return None, None, None, None


def _page(filename: str) -> Callable[[], Response]:
    def page() -> Response:
        return FileResponse(STATIC / filename, media_type="text/html", headers={"cache-control": "no-cache"})

    return page
