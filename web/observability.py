"""Request ids, one access log line per request and the request latency histogram.

:class:`RequestContext` is the outermost ASGI middleware: it takes the caller's ``X-Request-ID`` when
it is safe (1–64 characters of ``A-Z a-z 0-9 . _ : -``), else makes a fresh one, binds it to the
logging context (engine/logs.py: every record logged while the request runs carries it, in worker
threads too, since the thread pool copies contextvars), answers it in ``X-Request-ID``, and records
the request's duration under its route *template* (``/api/v1/tasks/{task_id}``, never the raw path:
a bounded set of label values) in a Prometheus histogram of the app's own registry. Headers are
never logged."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.logs import log_context

access_log = logging.getLogger("dataengine.access")
REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: seconds; the click-to-segment and exports sit in the upper buckets
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: paths logged at DEBUG, not INFO: the scrapes and probes that would drown the log
QUIET_ROUTES = frozenset({"/metrics", "/api/v1/health"})


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id when it is safe to log and echo, else a fresh one (32 hex digits)."""
    for key, value in headers:
        if key.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _SAFE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/v1/tasks/{task_id}``); a mount's prefix for
    its files (``/static``); ``unmatched`` when no route did (a 404 for any path: one label value).
    A route of an included router knows only its own part (``/tasks/{task_id}``): the literal prefix
    it was included under is the part of the path before the suffix the route's pattern matches."""
    route = scope.get("route")
    path, pattern = getattr(route, "path", None), getattr(route, "path_regex", None)
    if not isinstance(path, str) or not path:
        return "unmatched"
    raw = str(scope.get("path", ""))
    if pattern is not None and not pattern.match(raw):
        for cut in (i for i, char in enumerate(raw) if char == "/" and i > 0):
            if pattern.match(raw[cut:]):
                return raw[:cut] + path
    return path


class HttpMetrics:
    """The app's request metrics, in its own registry (so that apps built side by side do not clash)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "dataengine_http_request_duration_seconds", "Time to answer an HTTP request, by route template",
            ["method", "route", "status"], registry=registry, buckets=LATENCY_BUCKETS)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, f"{status // 100}xx").observe(seconds)


class RequestContext:
    """ASGI middleware: the request id (validated or fresh) in the logging context and the response's
    ``X-Request-ID``; an access log line and a latency observation per request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None = None) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route, method = route_template(scope), scope.get("method", "")
                if self.metrics is not None:
                    self.metrics.observe(method, route, status, seconds)
                access_log.log(logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                               "%s %s %s %.1f ms", method, route, status, seconds * 1000,
                               extra={"method": method, "route": route, "status": status,
                                      "duration_ms": round(seconds * 1000, 1)})
