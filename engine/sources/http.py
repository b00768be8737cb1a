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
"""

from __future__ import annotations

import socket
import time
import typing
from collections.abc import Callable, Sequence

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


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (socket.getaddrinfo, TCP)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


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
        try:
            answers = list(self.resolver(host, port))
        except (OSError, UnicodeError):
            raise httpcore.ConnectError(COULD_NOT_RESOLVE) from None
        addresses = self.policy.check_addresses(answers)  # PolicyRefused passes through httpx as is
        for address in addresses:
            try:
                return self.backend.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        raise httpcore.ConnectError(COULD_NOT_CONNECT)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        raise PolicyRefused("only http and https URLs are fetched")

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


class PolicyTransport(httpx.HTTPTransport):
    """httpx's transport with every request's URL checked and connections made by PolicyBackend."""

    def __init__(self, policy: NetPolicy, resolver: Resolver | None = None, *,
                 limits: httpx.Limits = httpx.Limits(), verify: bool = True,
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
                  limits: httpx.Limits = httpx.Limits(), backend: httpcore.NetworkBackend | None = None,
                  **client_options: typing.Any) -> httpx.Client:
    """An httpx client whose every request (redirects included) obeys the outbound-fetch policy.
    ``resolver`` and ``backend`` (the plain connector under the policy) default to the system's."""
    client_options.setdefault("follow_redirects", True)
    transport = PolicyTransport(fetch_policy(settings), resolver, limits=limits, backend=backend)
    return httpx.Client(transport=transport,
                        max_redirects=settings.max_redirects, trust_env=False, **client_options)


class TransientFetchError(FetchError):
    """Worth another try: time-outs, dropped connections, 429 and 5xx answers."""


class HttpFetcher:
    def __init__(self, settings: FetchSettings, resolver: Resolver | None = None,
                 backend: httpcore.NetworkBackend | None = None) -> None:
        self.settings = settings
        self.policy = fetch_policy(settings)
        self.client = policy_client(
            settings, resolver, backend=backend,
            limits=httpx.Limits(max_connections=settings.concurrency,
                                max_keepalive_connections=settings.concurrency),
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            headers={"User-Agent": settings.user_agent, "Accept": "image/*,*/*;q=0.5"},
            follow_redirects=False,  # followed by hand in _fetch_once
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str) -> bytes:
        check_url(url, self.policy)
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
        """One try: follow up to ``max_redirects`` redirects by hand (each hop's URL checked, its body
        never read), then read the image under the size cap."""
        try:
            for _ in range(self.settings.max_redirects + 1):
                with self.client.stream("GET", url) as response:
                    location = response.headers.get("location") if response.is_redirect else None
                    if location is None:
                        return self._read(response)
                    try:
                        url = str(response.url.join(location))
                    except httpx.InvalidURL as exc:
                        raise FetchError(f"invalid redirect URL: {exc}") from None
                    check_url(url, self.policy)
            raise FetchError(f"too many redirects (more than {self.settings.max_redirects})")
        except PolicyRefused as exc:
            raise FetchError(str(exc)) from None
        except httpx.ConnectError as exc:
            reason = COULD_NOT_RESOLVE if str(exc) == COULD_NOT_RESOLVE else COULD_NOT_CONNECT
            raise TransientFetchError(f"network error: {reason}") from None
        except httpx.ConnectTimeout:  # the same words as a refused connection: nothing about open ports
            raise TransientFetchError(f"network error: {COULD_NOT_CONNECT}") from None
        except httpx.TimeoutException as exc:
            raise TransientFetchError(f"timed out ({type(exc).__name__})") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        except httpx.TransportError:
            raise TransientFetchError("network error: the connection failed") from None

    def _read(self, response: httpx.Response) -> bytes:
        cap = self.settings.max_bytes
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
