"""Hostile routes for tests/httpserver.py's TestServer: compression bombs, bodies and headers that
drip a byte at a time, slow redirect chains. Bodies are built here, before a test measures memory."""

from __future__ import annotations

import functools
import time
import zlib
from http.server import BaseHTTPRequestHandler

from tests.httpserver import Route

MiB = 1024 * 1024


def gzip_bytes(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def deflate_bytes(data: bytes, raw: bool = False) -> bytes:
    """HTTP ``deflate``: zlib-wrapped (RFC 1950), or the raw stream some servers send."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@functools.lru_cache(maxsize=4)
def zeros_bomb(mib: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    """``mib`` MiB of zeros compressed (gzip by default; zlib.MAX_WBITS for deflate), built a MiB at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(MiB)
    return b"".join([c.compress(block) for _ in range(mib)] + [c.flush()])


def encoded(body: bytes, encoding: str, seen: dict[str, str] | None = None) -> Route:
    """``body`` as is, labelled with ``Content-Encoding: encoding``; the request's headers go to ``seen``."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        if seen is not None:
            seen.update({k.lower(): v for k, v in handler.headers.items()})
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return route


def drip_body(interval_s: float, length: int = 100_000) -> Route:
    """Headers at once, then one byte of the promised ``length`` every ``interval_s``."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(length):
            time.sleep(interval_s)
            handler.wfile.write(b"\xff")
            handler.wfile.flush()
    return route


def drip_headers(interval_s: float, lines: int = 10_000) -> Route:
    """A status line, then one more header line every ``interval_s``: the headers never end."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.close_connection = True
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for n in range(lines):
            time.sleep(interval_s)
            handler.wfile.write(b"X-Drip-%d: 1\r\n" % n)
            handler.wfile.flush()
    return route


def slow_redirect(delay_s: float, to: str) -> Route:
    """Waits ``delay_s``, then redirects (302) to ``to``."""
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        time.sleep(delay_s)
        handler.send_response(302)
        handler.send_header("Location", to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route
