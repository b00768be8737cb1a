"""Bounded, retrying HTTP downloads of single images."""

from __future__ import annotations

import time

import httpx

from engine.settings import FetchSettings
from engine.sources.base import FetchError

BINARY_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/binary"})


class TransientFetchError(FetchError):
    """Worth another try: time-outs, dropped connections, 429 and 5xx answers."""


class HttpFetcher:
    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": settings.user_agent, "Accept": "image/*,*/*;q=0.5"},
            limits=httpx.Limits(max_connections=settings.concurrency,
                                max_keepalive_connections=settings.concurrency),
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str) -> bytes:
        check_url(url)
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                return self._fetch_once(url)
            except TransientFetchError as exc:
                if attempt + 1 == attempts:
                    raise FetchError(f"{exc} (gave up after {attempts} attempts)") from None
                time.sleep(self.settings.backoff_s * (2**attempt))
        raise AssertionError("unreachable")

    def _fetch_once(self, url: str) -> bytes:
        cap = self.settings.max_bytes
        try:
            with self.client.stream("GET", url) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    raise TransientFetchError(f"HTTP {status} {response.reason_phrase}")
                if status >= 400:
                    raise FetchError(f"HTTP {status} {response.reason_phrase}")
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype and not ctype.startswith("image/") and ctype not in BINARY_TYPES:
                    raise FetchError(f"not an image: the server sent content type {ctype}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise FetchError(f"too large: {int(declared):,} bytes exceeds the cap of {cap:,}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise FetchError(f"too large: more than the cap of {cap:,} bytes")
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise TransientFetchError(f"timed out ({type(exc).__name__})") from None
        except httpx.TooManyRedirects:
            raise FetchError("too many redirects") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        except httpx.TransportError as exc:
            raise TransientFetchError(f"network error: {type(exc).__name__}: {exc}") from None


def check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError(f"invalid URL (only http and https are fetched): {url[:200]}")
