"""Application factory: the REST API under /api/v1, the pages (plain HTML + JS from web/static, no
build step), security headers and a request size limit on every response."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.settings import Settings
from pipelines.models import ModelCache
from web.deps import PrincipalCache
from web.routers import admin, auth, health, images, labelstudio, tasks
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
DOCS_CSP = (b"default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
            b"script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; frame-ancestors 'none'")


class Guard:
    """ASGI middleware: adds the security headers and refuses bodies over ``max_body`` bytes
    (413), whether the size is announced in Content-Length or only seen while streaming."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/redoc")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                for key, value in SECURITY_HEADERS:
                    headers.append((key, DOCS_CSP if docs and key == b"content-security-policy" else value))
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
                    raise _TooLarge()
            return message

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, limited_receive, send_tracked)
        except _TooLarge:
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


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(response: Response, send: Send) -> None:
    await response({"type": "http", "method": "POST", "path": "/", "headers": []},  # type: ignore[arg-type]
                   _empty_receive, send)


# The error contract: every 4xx/5xx answer is JSON {"detail": "<a sentence for a person>", "code":
# "<stable_snake_case>"} (+ "errors": [{"loc": [...], "msg": "..."}] on 422), the code also in the
# X-Error-Code header. A router's own code (lease_lost, client_id_conflict, decision_conflict, ...) comes
# in that header on its HTTPException and is kept; otherwise the code follows from the status.
ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid", 429: "rate_limited", 500: "internal_error",
               503: "unavailable"}
ERROR_HEADER = "X-Error-Code"
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


def error_code(status: int) -> str:
    return ERROR_CODES.get(status, "client_error" if status < 500 else "server_error")


def error_response(status: int, detail: str, code: str | None = None, errors: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    code = code or error_code(status)
    body: dict[str, Any] = {"detail": detail, "code": code}
    if status == 422:
        body["errors"] = errors if errors is not None else [{"loc": [], "msg": detail}]
    return JSONResponse(body, status_code=status, headers={**(headers or {}), ERROR_HEADER: code})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, _TooLarge):  # FastAPI turns a failed body read into 400
        raise exc.__cause__
    headers = dict(exc.headers or {})
    code = headers.pop(ERROR_HEADER, None) or headers.pop(ERROR_HEADER.lower(), None)
    if exc.status_code < 400 or exc.status_code == 304:
        return Response(status_code=exc.status_code, headers=headers)
    detail = exc.detail if isinstance(exc.detail, str) else error_code(exc.status_code).replace("_", " ")
    return error_response(exc.status_code, detail, code, headers=headers)


def _loc(loc: Any) -> list[Any]:
    return [part if isinstance(part, int | str) else str(part) for part in loc]


async def _invalid(request: Request, exc: Exception) -> Response:
    """422 for a request that does not fit the schema: where and why, never the value sent (it may be a secret)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "invalid value"))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid value"}
    where = ".".join(str(p) for p in first["loc"][1:] or first["loc"]) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, f"invalid request: {where}: {first['msg']}{more}", errors=errors)


def _lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the pool sync endpoints and dependencies run in: as many threads as the work can use
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.serve.threads
        yield

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Data Engine", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json",
                  redoc_url=None, lifespan=_lifespan(settings), description=API_DESCRIPTION,
                  responses=ERROR_RESPONSES)
    app.state.settings = settings
    app.state.principals = PrincipalCache(settings.serve.auth_cache_s)  # see web.deps
    app.state.models = ModelCache(settings)  # the click-to-segment model, loaded on first use
    for router in (health.router, auth.router, tasks.router, images.router, admin.router, labelstudio.router):
        app.include_router(router, prefix="/api/v1")
    _optional_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    for path, filename in PAGES.items():
        app.add_api_route(path, _page(filename), include_in_schema=False, methods=["GET"])
    app.add_api_route("/", lambda: RedirectResponse("/queue"), include_in_schema=False, methods=["GET"])
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(Guard, max_body=settings.serve.max_body_bytes)  # type: ignore[arg-type]
    return app


def _page(filename: str):  # type: ignore[no-untyped-def]
    def page() -> Response:
        return FileResponse(STATIC / filename, media_type="text/html", headers={"cache-control": "no-cache"})

    return page


def _optional_routers(app: FastAPI) -> None:
    """Routers that live in their own modules (jobs, dashboard), included when present."""
    import importlib

    for name in ("jobs", "dashboard", "exports"):
        try:
            module = importlib.import_module(f"web.routers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"web.routers.{name}":
                raise
            continue
        app.include_router(module.router, prefix="/api/v1")
