"""Bounded, retrying HTTP downloads of single images, under the outbound-fetch policy.

Every server-side fetch a user can point somewhere (mined URLs, COCO ``coco_url``, Label Studio) goes
through :class:`PolicyTransport`: each request's scheme and port are checked, and the connection is
made by :class:`PolicyBackend`, which resolves the host name itself (through an injectable resolver),
checks every address the name resolved to (engine/domain/netpolicy.py) and connects to a checked
address only: there is no second look-up a rebinding DNS server could answer differently. The image
fetcher follows at most ``fetch.max_redirects`` redirects by hand (never reading their bodies); every
hop is a new request through the same transport, so it is checked again (clients made by
:func:`policy_client` let httpx follow them, through the same checks). Environment proxies are not
used: the policy checks the target, not a proxy.

Downloads are bounded in memory and time. The raw body is read (``iter_raw``) and its content
encodings (gzip, deflate, a chain such as ``gzip, gzip``) are undone here, incrementally: no stage,
raw or decoded, ever holds more than ``fetch.max_bytes`` (+ one step), so a few KB of gzip bomb stop at
the cap. Only what can be decoded so is asked for (``Accept-Encoding``); anything else fails the item.
``fetch.total_timeout_s`` is a deadline per fetch (redirects, retries and back-off included): every
socket operation waits at most until it (:class:`DeadlineStream`), so a server dripping bytes holds a
download for about that long and no longer.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import socket
import time
import typing
import zlib
from collections.abc import Callable, Iterator, Sequence

import httpcore
import httpx

from engine.domain.netpolicy import NetPolicy, PolicyRefused
from engine.settings import FetchSettings
from engine.sources.base import FetchError

BINARY_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/binary"})
# (host, port) -> the IP addresses the name resolves to
Resolver = Callable[[str, int], Sequence[str]]
COULD_NOT_CONNECT = "could not connect"
COULD_NOT_RESOLVE = "could not resolve the host name"
ACCEPT_ENCODING = "gzip, deflate"  # what ContentDecoder undoes with bounded memory (no brotli/zstd here)
MAX_ENCODINGS = 3  # a longer chain of content encodings is refused (each layer holds a zlib window)
DECODE_STEP = 64 * 1024  # the most bytes one decoding call may produce
DEADLINE_SLACK_S = 0.05  # a time-out this close to the deadline is the deadline's
# the current fetch's deadline (time.monotonic()), read by DeadlineStream in the fetching thread
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("fetch_deadline", default=None)


def _until_deadline(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to the time left before the current fetch's deadline (if any)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake waits at most until the deadline of the
    fetch using it (headers included: a server dripping its header lines is cut off as well)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _until_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _until_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self.stream.start_tls(ssl_context, server_hostname,
                                                    _until_deadline(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (socket.getaddrinfo, TCP)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


# name look-ups run here so that a resolver that never answers holds a fetch only until its connect
# time-out or deadline (getaddrinfo itself cannot be interrupted; its thread ends when the OS gives up)
_LOOKUPS = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="dataengine-resolve")


def resolve_within(resolver: Resolver, host: str, port: int, wait: float | None) -> list[str]:
    """``resolver(host, port)`` waited for at most ``wait`` seconds (None: as long as it takes);
    httpcore.ConnectError(COULD_NOT_RESOLVE) when it fails or does not answer in time."""
    future = _LOOKUPS.submit(lambda: list(resolver(host, port)))
    try:
        return future.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise httpcore.ConnectError(COULD_NOT_RESOLVE) from None
    except (OSError, UnicodeError):
        raise httpcore.ConnectError(COULD_NOT_RESOLVE) from None


class PolicyBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy allows: resolve once, check every answer, connect to a
    checked address (the name's TLS server name and Host header are kept by httpcore)."""

    def __init__(self, policy: NetPolicy, resolver: Resolver | None = None,
                 backend: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self.backend = backend or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        answers = resolve_within(self.resolver, host, port, _until_deadline(timeout, httpcore.ConnectTimeout))
        addresses = self.policy.check_addresses(answers)  # PolicyRefused passes through httpx as is
        for address in addresses:
            try:
                stream = self.backend.connect_tcp(
                    address, port, timeout=_until_deadline(timeout, httpcore.ConnectTimeout),
                    local_address=local_address, socket_options=socket_options)
                return DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        raise httpcore.ConnectError(COULD_NOT_CONNECT)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        raise PolicyRefused("only http and https URLs are fetched")

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


#: httpx's own connection-pool limits (its Limits() defaults)
DEFAULT_LIMITS = httpx.Limits()


class PolicyTransport(httpx.HTTPTransport):
    """httpx's transport with every request's URL checked and connections made by PolicyBackend."""

    def __init__(self, policy: NetPolicy, resolver: Resolver | None = None, *,
                 limits: httpx.Limits = DEFAULT_LIMITS, verify: bool = True,
                 backend: httpcore.NetworkBackend | None = None) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self.policy = policy
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PolicyBackend(policy, resolver, backend),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.policy.check_url(url.scheme, url.host, url.port)
        return super().handle_request(request)


def fetch_policy(settings: FetchSettings) -> NetPolicy:
    return NetPolicy.from_settings(settings.allow_networks, settings.allow_ports)


def policy_client(settings: FetchSettings, resolver: Resolver | None = None, *,
                  limits: httpx.Limits = DEFAULT_LIMITS, backend: httpcore.NetworkBackend | None = None,
                  **client_options: typing.Any) -> httpx.Client:
    """An httpx client whose every request (redirects included) obeys the outbound-fetch policy.
    ``resolver`` and ``backend`` (the plain connector under the policy) default to the system's."""
    client_options.setdefault("follow_redirects", True)
    transport = PolicyTransport(fetch_policy(settings), resolver, limits=limits, backend=backend)
    return httpx.Client(transport=transport,
                        max_redirects=settings.max_redirects, trust_env=False, **client_options)


class TransientFetchError(FetchError):
    """Worth another try: time-outs, dropped connections, 429 and 5xx answers."""


class _Inflater:
    """One content-encoding layer (gzip or deflate), undone a bounded step at a time."""

    def __init__(self, name: str) -> None:
        self.obj: zlib._Decompress | None
        if name in ("gzip", "x-gzip"):
            self.name, self.obj = "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif name == "deflate":
            self.name, self.obj = "deflate", None  # zlib-wrapped or raw: told by its first two bytes
        else:
            raise FetchError(f"unsupported content encoding {name[:40]!r} (only gzip and deflate are decoded)")
        self.head = b""
        self.fed = False

    def _start(self, data: bytes) -> bytes:
        """For deflate: pick zlib-wrapped (RFC 1950 header) or raw once two bytes are known."""
        data = self.head + data
        if len(data) < 2:
            self.head = data
            return b""
        zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        self.obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        self.head = b""
        return data

    def decode(self, data: bytes, room: Callable[[], int]) -> Iterator[bytes]:
        """The output of ``data``, in pieces of at most ``min(DECODE_STEP, room())`` bytes."""
        self.fed = self.fed or bool(data)
        if self.obj is None:
            data = self._start(data)
            if self.obj is None:
                return
        obj = self.obj
        try:
            while not obj.eof:  # data after the end of the stream is ignored
                step = max(1, min(DECODE_STEP, room()))
                out = obj.decompress(data, step)
                data = obj.unconsumed_tail
                if out:
                    yield out
                if not data and len(out) < step:
                    return
        except zlib.error:
            raise FetchError(f"corrupt {self.name} content encoding") from None

    def finish(self) -> None:
        if self.fed and (self.obj is None or not self.obj.eof):
            raise FetchError(f"corrupt {self.name} content encoding: the body ends before its stream does")


class ContentDecoder:
    """Undoes a response's content encodings (the last applied first) incrementally: no layer's output
    grows past ``cap`` + 1 bytes before the download fails as too large."""

    def __init__(self, header: str, cap: int) -> None:
        names = [n for n in (part.strip().lower() for part in header.split(",")) if n and n != "identity"]
        if len(names) > MAX_ENCODINGS:
            raise FetchError(f"too many content encodings ({len(names)}; at most {MAX_ENCODINGS} are decoded)")
        self.layers = [_Inflater(name) for name in reversed(names)]
        self.sizes = [0] * len(self.layers)
        self.cap = cap

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes ``data`` (the next raw bytes) yields."""
        return self._through(0, data)

    def finish(self) -> None:
        """The raw body has ended: FetchError if a stream was cut short (feed drained every layer)."""
        for layer in self.layers:
            layer.finish()

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self.layers):
            if data:
                yield data
            return
        for piece in self.layers[index].decode(data, lambda: self.cap + 1 - self.sizes[index]):
            self.sizes[index] += len(piece)
            if self.sizes[index] > self.cap:
                raise FetchError(f"too large: more than the cap of {self.cap:,} bytes once decoded")
            yield from self._through(index + 1, piece)


class HttpFetcher:
    def __init__(self, settings: FetchSettings, resolver: Resolver | None = None,
                 backend: httpcore.NetworkBackend | None = None, *, media_type: str = "image") -> None:
        self.settings = settings
        self.media_type = media_type  # the content types taken: image/* (or video/*) and plain binary
        self.policy = fetch_policy(settings)
        self.client = policy_client(
            settings, resolver, backend=backend,
            limits=httpx.Limits(max_connections=settings.concurrency,
                                max_keepalive_connections=settings.concurrency),
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            headers={"User-Agent": settings.user_agent, "Accept": f"{media_type}/*,*/*;q=0.5",
                     "Accept-Encoding": ACCEPT_ENCODING},
            follow_redirects=False,  # followed by hand in _fetch_once
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str) -> bytes:
        """The body at ``url``, within ``fetch.total_timeout_s`` for everything (redirects, retries and
        back-off included) and ``fetch.max_bytes`` for every stage of decoding; FetchError otherwise."""
        check_url(url, self.policy)
        deadline = time.monotonic() + self.settings.total_timeout_s
        token = _deadline.set(deadline)
        try:
            attempts = self.settings.retries + 1
            for attempt in range(attempts):
                try:
                    return self._fetch_once(url, deadline)
                except TransientFetchError as exc:
                    pause = self.settings.backoff_s * (2**attempt)
                    if attempt + 1 == attempts or time.monotonic() + pause >= deadline:
                        raise FetchError(f"{exc} (gave up after {attempt + 1} attempts)") from None
                    time.sleep(pause)
            raise AssertionError("unreachable")
        finally:
            _deadline.reset(token)

    def _timed_out(self) -> FetchError:
        return FetchError(f"timed out: the download took longer than {self.settings.total_timeout_s:g} s")

    def _fetch_once(self, url: str, deadline: float) -> bytes:
        """One try: follow up to ``max_redirects`` redirects by hand (each hop's URL checked, its body
        never read), then read the image under the size cap."""
        try:
            for _ in range(self.settings.max_redirects + 1):
                with self.client.stream("GET", url) as response:
                    location = response.headers.get("location") if response.is_redirect else None
                    if location is None:
                        return self._read(response, deadline)
                    try:
                        url = str(response.url.join(location))
                    except httpx.InvalidURL as exc:
                        raise FetchError(f"invalid redirect URL: {exc}") from None
                    check_url(url, self.policy)
            raise FetchError(f"too many redirects (more than {self.settings.max_redirects})")
        except PolicyRefused as exc:
            raise FetchError(str(exc)) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        except httpx.TransportError as exc:
            if time.monotonic() >= deadline - DEADLINE_SLACK_S:  # the deadline cut the socket's wait short
                raise self._timed_out() from None
            raise _transient(exc) from None

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        cap = self.settings.max_bytes
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientFetchError(f"HTTP {status} {response.reason_phrase}")
        if status >= 400:
            raise FetchError(f"HTTP {status} {response.reason_phrase}")
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(f"{self.media_type}/") and ctype not in BINARY_TYPES:
            raise FetchError(f"not an {self.media_type}: the server sent content type {ctype}"
                             if self.media_type == "image" else
                             f"not a {self.media_type}: the server sent content type {ctype}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FetchError(f"too large: {int(declared):,} bytes exceeds the cap of {cap:,}")
        decoder = ContentDecoder(",".join(response.headers.get_list("content-encoding")), cap)
        body = bytearray()
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > cap:
                raise FetchError(f"too large: more than the cap of {cap:,} bytes")
            for piece in decoder.feed(chunk):
                body += piece
            if time.monotonic() >= deadline:
                raise self._timed_out()
        decoder.finish()
        return bytes(body)


def _transient(exc: httpx.TransportError) -> TransientFetchError:
    """The words for a failed connection or a time-out (never the server's; nothing about open ports)."""
    if isinstance(exc, httpx.ConnectError):
        reason = COULD_NOT_RESOLVE if str(exc) == COULD_NOT_RESOLVE else COULD_NOT_CONNECT
        return TransientFetchError(f"network error: {reason}")
    if isinstance(exc, httpx.ConnectTimeout):  # the same words as a refused connection
        return TransientFetchError(f"network error: {COULD_NOT_CONNECT}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientFetchError(f"timed out ({type(exc).__name__})")
    return TransientFetchError("network error: the connection failed")


def check_url(url: str, policy: NetPolicy | None = None) -> None:
    """A well-formed URL whose scheme and port the policy allows (its addresses are checked on connecting)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    if not parsed.scheme or (not parsed.host and parsed.scheme in ("http", "https")):
        raise FetchError(f"invalid URL (only http and https are fetched): {url[:200]}")
    try:
        (policy or NetPolicy()).check_url(parsed.scheme, parsed.host, parsed.port)
    except PolicyRefused as exc:
        raise FetchError(str(exc)) from None
