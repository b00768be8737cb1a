"""A minimal HTTP/1.1 keep-alive client over asyncio streams, for load generation.

httpx is general and correct but costs a few hundred microseconds of CPU per request in the client;
a load generator that shares two cores with the server it measures must cost as little as possible.
This client speaks exactly what the benchmarks need: one request at a time per connection,
``Content-Length`` or chunked responses, cookies set by the server kept per connection, and a
reconnect when the server closed an idle keep-alive connection (uvicorn does after 5 s).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class HttpError(Exception):
    """The connection failed or the server's answer could not be read."""


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    set_cookies: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection (one request in flight at a time)."""

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.headers: dict[str, str] = dict(headers or {})
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0
        self.retries = 0  # requests sent again because the server had closed an idle connection
        self._host_line = f"Host: {host}:{port}\r\n".encode()

    async def connect(self) -> None:
        await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    def _encode(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_line]
        merged = {**self.headers, **(headers or {})}
        if self.cookies:
            merged["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            merged.setdefault("Content-Type", "application/json")
            merged["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT", "PATCH"):
            merged["Content-Length"] = "0"
        for key, value in merged.items():
            lines.append(f"{key}: {value}\r\n".encode())
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> Response:
        payload = self._encode(method, path, body, headers)
        for attempt in (0, 1):
            if self.reader is None or self.reader.at_eof():
                await self.connect()
            assert self.reader is not None and self.writer is not None
            got_bytes = False
            try:
                self.writer.write(payload)
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
                got_bytes = True
                return await self._read_rest(head)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError) as exc:
                await self.close()
                # the server closed an idle connection before reading the request: send it again once
                if attempt == 0 and not got_bytes and (not isinstance(exc, asyncio.IncompleteReadError)
                                                       or not exc.partial):
                    self.retries += 1
                    continue
                raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        raise HttpError(f"{method} {path}: no answer")  # pragma: no cover

    async def _read_rest(self, head: bytes) -> Response:
        assert self.reader is not None
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        cookies: list[bytes] = []
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            key, value = key.strip().lower(), value.strip()
            if key == b"set-cookie":
                cookies.append(value)
            headers[key] = value
        length = headers.get(b"content-length")
        if length is not None:
            body = await self.reader.readexactly(int(length)) if int(length) else b""
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await self.reader.read()
            await self.close()
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        for raw in cookies:
            name, _, rest = raw.partition(b"=")
            value = rest.split(b";", 1)[0]
            self.cookies[name.decode()] = value.decode()
        return Response(status, headers, body, cookies)


# ----------------------------------------------------------------------------- statistics
def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(latencies_s: Sequence[float]) -> dict[str, Any]:
    """n, mean, p50, p90, p99, p99.9 and max in milliseconds."""
    vals = sorted(latencies_s)
    if not vals:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 3)

    return {"n": len(vals), "mean": ms(sum(vals) / len(vals)), "p50": ms(percentile(vals, 50)),
            "p90": ms(percentile(vals, 90)), "p99": ms(percentile(vals, 99)), "p999": ms(percentile(vals, 99.9)),
            "max": ms(vals[-1])}


class LoopLag:
    """How late the load generator's event loop wakes up: a task sleeping ``interval_s`` records
    the overshoot. Large values mean the client itself is starved of CPU and inflates latencies."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, time.perf_counter() - start - self.interval_s))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return summary_ms(self.samples)
