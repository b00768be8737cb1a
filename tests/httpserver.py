"""A local HTTP server on 127.0.0.1 with routes that misbehave on purpose."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler, int], None]  # (handler, attempt number from 1)


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str | None = "image/jpeg",
         length: bool = True) -> None:
    handler.send_response(status)
    if ctype:
        handler.send_header("Content-Type", ctype)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class TestServer:
    """Routes by path; counts hits per path so tests can check retries."""

    __test__ = False

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.hits[self.path] += 1
                route = server.routes.get(self.path)
                if route is None:
                    send(self, 404, b"not found", "text/plain")
                    return
                try:
                    route(self, server.hits[self.path])
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def image(self, path: str, data: bytes, ctype: str = "image/jpeg") -> str:
        self.routes[path] = lambda h, n: send(h, 200, data, ctype)
        return self.url(path)

    def start(self) -> TestServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def slow(seconds: float, then: Route | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        time.sleep(seconds)
        if then:
            then(handler, attempt)
        else:
            send(handler, 200, b"late")
    return route


def flaky(failures: int, data: bytes) -> Route:
    """503 for the first ``failures`` attempts, then the image."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        if attempt <= failures:
            send(handler, 503, b"busy", "text/plain")
        else:
            send(handler, 200, data)
    return route


def streamed(data: bytes) -> Route:
    """No Content-Length: the body is streamed until the connection closes."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.close_connection = True
        send(handler, 200, data, "image/jpeg", length=False)
    return route
