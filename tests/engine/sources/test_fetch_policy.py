"""The outbound-fetch policy (SSRF): engine/domain/netpolicy.py and its enforcement in engine/sources/http.py.

Traffic goes to the tests' own 127.0.0.1 server only. Private, link-local, multicast and public
addresses come from an injected resolver and are refused (or, for a public one, stopped by the
recording connector) before any connection is made.
"""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler

import httpcore
import pytest
from pydantic import ValidationError

from annotators.label_studio import LabelStudioClient, LabelStudioError
from engine.domain.netpolicy import NetPolicy, PolicyRefused
from engine.settings import FetchSettings, Settings
from engine.sources import open_source
from engine.sources.base import FetchError
from engine.sources.http import HttpFetcher, PolicyBackend
from tests.conftest import LOCAL_FETCH
from tests.factories import jpeg_bytes, photo
from tests.httpserver import send

IMAGE = jpeg_bytes(photo(7))
FAST = {"connect_timeout_s": 1, "read_timeout_s": 1, "retries": 0, "backoff_s": 0}


class Recorder(httpcore.NetworkBackend):
    """The plain connector under the policy, recording every address it is asked to connect to; it
    connects to loopback only (anything else would leave this machine) and refuses the rest."""

    def __init__(self) -> None:
        self.real = httpcore.SyncBackend()
        self.connects: list[tuple[str, int]] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        if not host.startswith("127."):
            raise httpcore.ConnectError("[Errno 111] Connection refused")
        return self.real.connect_tcp(host, port, timeout, local_address, socket_options)

    def sleep(self, seconds: float) -> None:
        self.real.sleep(seconds)


class Resolver:
    """Answers from a table; a list of answers per name is used one call after the other."""

    def __init__(self, table: dict[str, list[list[str]] | list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answers = self.table.get(host)
        if answers is None:
            raise OSError("name or service not known")
        if answers and isinstance(answers[0], list):
            return answers[min(self.calls.count(host), len(answers)) - 1]  # type: ignore[return-value]
        return answers  # type: ignore[return-value]


def fetcher(resolver=None, recorder=None, **fetch) -> HttpFetcher:
    return HttpFetcher(FetchSettings(**{**FAST, **fetch}), resolver, recorder)


def redirect(location: str):
    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route


# --------------------------------------------------------------------------- loopback, allow-list
def test_loopback_is_refused_by_default_and_nothing_connects(http_server):
    url = http_server.image("/a.jpg", IMAGE)
    recorder = Recorder()
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: port not allowed$"):
        fetcher(recorder=recorder).fetch(url)  # the defaults: ports 80 and 443 only
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: loopback address$"):
        fetcher(recorder=recorder, allow_ports=["1-65535"]).fetch(url)
    assert recorder.connects == [] and http_server.hits["/a.jpg"] == 0


def test_localhost_by_name_is_refused(http_server):
    url = http_server.image("/a.jpg", IMAGE).replace("127.0.0.1", "localhost")
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: loopback address$"):
        fetcher(allow_ports=["1-65535"]).fetch(url)
    assert http_server.hits["/a.jpg"] == 0


def test_allowed_through_the_setting(http_server):
    url = http_server.image("/a.jpg", IMAGE)
    f = fetcher(**LOCAL_FETCH)
    assert f.fetch(url) == IMAGE
    narrow = fetcher(allow_networks=["127.0.0.1/32"], allow_ports=[int(url.split(":")[2].split("/")[0])])
    assert narrow.fetch(url) == IMAGE
    f.close()
    narrow.close()


def test_a_coco_url_is_under_the_policy(http_server, tmp_path):
    url = http_server.image("/c.jpg", IMAGE)
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "coco_url": url}]}))
    source = open_source(str(coco), fetch=FetchSettings(**FAST, allow_ports=["1-65535"]))
    (item,) = source.iter_items()
    with pytest.raises(FetchError, match="loopback address"):
        source.read(item.locator)
    source.close()
    allowed = open_source(str(coco), fetch=FetchSettings(**FAST, **LOCAL_FETCH))
    assert allowed.read(item.locator) == IMAGE
    allowed.close()
    assert http_server.hits["/c.jpg"] == 1


# -------------------------------------------------------------------------------------- redirects
def test_redirects_are_checked_hop_by_hop(http_server):
    http_server.image("/real.jpg", IMAGE)
    http_server.routes["/ok"] = redirect("/real.jpg")
    http_server.routes["/to-private"] = redirect("http://intranet.test/secret.jpg")
    http_server.routes["/to-metadata"] = redirect("http://169.254.169.254/latest/meta-data/")
    http_server.routes["/to-file"] = redirect("file:///etc/passwd")
    http_server.routes["/to-gopher"] = redirect("gopher://127.0.0.1:70/_x")
    http_server.routes["/to-port"] = redirect("http://127.0.0.1:25/x.jpg")
    resolver = Resolver({"127.0.0.1": ["127.0.0.1"], "intranet.test": ["10.1.2.3"],
                         "169.254.169.254": ["169.254.169.254"]})
    recorder = Recorder()
    f = fetcher(resolver, recorder, allow_networks=["127.0.0.0/8"], allow_ports=[http_server.httpd.server_port])
    assert f.fetch(http_server.url("/ok")) == IMAGE
    for path, reason in [("/to-private", "private address"), ("/to-metadata", "link-local address"),
                         ("/to-file", "only http and https URLs are fetched"),
                         ("/to-gopher", "only http and https URLs are fetched"), ("/to-port", "port not allowed")]:
        with pytest.raises(FetchError) as refused:
            f.fetch(http_server.url(path))
        assert str(refused.value) == f"refused by the outbound-fetch policy: {reason}", path
    assert {host for host, _ in recorder.connects} == {"127.0.0.1"}
    f.close()


def test_too_many_redirects(http_server):
    for n in range(5):
        http_server.routes[f"/r{n}"] = redirect(f"/r{n + 1}")
    http_server.image("/r5", IMAGE)
    f = fetcher(max_redirects=3, **LOCAL_FETCH)
    with pytest.raises(FetchError, match=r"^too many redirects \(more than 3\)$"):
        f.fetch(http_server.url("/r0"))
    assert [http_server.hits[f"/r{n}"] for n in range(6)] == [1, 1, 1, 1, 0, 0]
    assert f.fetch(http_server.url("/r2")) == IMAGE  # three redirects: within the limit
    f.close()


# ------------------------------------------------------------------ addresses, through the resolver
@pytest.mark.parametrize(("address", "reason"), [
    ("10.0.0.1", "private address"), ("172.16.5.4", "private address"), ("192.168.1.1", "private address"),
    ("169.254.169.254", "link-local address"), ("224.0.0.1", "multicast address"),
    ("0.0.0.0", "unspecified address"), ("100.64.0.1", "non-public address"),
    ("::1", "loopback address"), ("::", "unspecified address"), ("fe80::1%2", "link-local address"),
    ("fc00::1", "private address"), ("ff02::1", "multicast address"),
    ("::ffff:127.0.0.1", "loopback address"), ("::ffff:10.0.0.1", "private address"),
    ("::ffff:169.254.169.254", "link-local address"), ("2002:7f00:1::", "loopback address"),
    ("64:ff9b::a00:1", "private address"),
])
def test_non_public_addresses_are_refused_before_connecting(address, reason):
    resolver, recorder = Resolver({"images.test": [address]}), Recorder()
    f = fetcher(resolver, recorder, allow_ports=["1-65535"])
    with pytest.raises(FetchError) as refused:
        f.fetch("http://images.test/a.jpg")
    assert str(refused.value) == f"refused by the outbound-fetch policy: {reason}"
    assert recorder.connects == [] and resolver.calls == ["images.test"]


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:127.0.0.1]", "0x7f000001", "2130706433", "127.1"])
def test_loopback_in_other_spellings_is_refused(host):
    """Literal addresses go through the system resolver, which answers them without any network."""
    recorder = Recorder()
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: loopback address$"):
        fetcher(recorder=recorder, allow_ports=["1-65535"]).fetch(f"http://{host}:8/a.jpg")
    assert recorder.connects == []


def test_every_resolved_address_is_checked():
    resolver, recorder = Resolver({"mixed.test": ["127.0.0.1", "10.0.0.1"]}), Recorder()
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: private address$"):
        fetcher(resolver, recorder, **LOCAL_FETCH).fetch("http://mixed.test/a.jpg")
    assert recorder.connects == []


def test_a_public_address_is_connected_to_as_resolved():
    resolver, recorder = Resolver({"public.test": ["93.184.216.34"]}), Recorder()
    with pytest.raises(FetchError) as failed:
        fetcher(resolver, recorder).fetch("http://public.test/a.jpg")
    assert str(failed.value) == "network error: could not connect (gave up after 1 attempts)"
    assert recorder.connects == [("93.184.216.34", 80)]


def test_dns_rebinding_connects_to_the_vetted_address(http_server):
    """The name answers loopback (allowed) once, then a private address: the connection goes to the
    address that was checked, under the name's Host header; no second look-up is made."""
    seen: list[str] = []

    def route(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        seen.append(handler.headers["Host"])
        send(handler, 200, IMAGE)

    http_server.routes["/r.jpg"] = route
    port = http_server.httpd.server_port
    resolver = Resolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    recorder = Recorder()
    f = fetcher(resolver, recorder, **LOCAL_FETCH)
    assert f.fetch(f"http://rebind.test:{port}/r.jpg") == IMAGE
    assert recorder.connects == [("127.0.0.1", port)]
    assert resolver.calls == ["rebind.test"] and seen == [f"rebind.test:{port}"]
    f.close()
    # the other order: the refused first answer is never connected to
    resolver = Resolver({"rebind.test": [["10.0.0.1"], ["127.0.0.1"]]})
    recorder = Recorder()
    with pytest.raises(FetchError, match="private address"):
        fetcher(resolver, recorder, **LOCAL_FETCH).fetch(f"http://rebind.test:{port}/r.jpg")
    assert recorder.connects == [] and len(seen) == 1


def test_policy_backend_refuses_before_connecting():
    recorder = Recorder()
    backend = PolicyBackend(NetPolicy(), Resolver({"x.test": ["192.168.0.1"]}), recorder)
    with pytest.raises(PolicyRefused, match="private address"):
        backend.connect_tcp("x.test", 80)
    assert recorder.connects == []


# ------------------------------------------------------------------------------- uniform texts
def test_error_texts_tell_nothing_about_ports_or_addresses():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = fetcher(Resolver({"closed.test": ["127.0.0.1"], "nowhere.test": []}), **LOCAL_FETCH)
    with pytest.raises(FetchError) as closed:
        f.fetch(f"http://closed.test:{port}/a.jpg")
    assert str(closed.value) == "network error: could not connect (gave up after 1 attempts)"
    with pytest.raises(FetchError) as unknown:
        f.fetch("http://unknown.test/a.jpg")
    assert str(unknown.value) == "network error: could not resolve the host name (gave up after 1 attempts)"
    with pytest.raises(FetchError, match="^refused by the outbound-fetch policy: the host name has no address$"):
        f.fetch("http://nowhere.test/a.jpg")
    private = fetcher(Resolver({"a.test": ["10.9.8.7"]}))
    with pytest.raises(FetchError) as refused:
        private.fetch("http://a.test/x.jpg")
    assert "10.9.8.7" not in str(refused.value)


# ---------------------------------------------------------------------------- the pure policy
def test_policy_rules():
    policy = NetPolicy.from_settings(["10.0.0.0/8", "fd00::/8"], [8080, "9000-9010"])
    assert policy.address_refusal("10.1.2.3") is None and policy.address_refusal("::ffff:10.1.2.3") is None
    assert policy.address_refusal("fd00::5") is None
    assert policy.address_refusal("192.168.0.1") == "private address"
    assert policy.address_refusal("8.8.8.8") is None
    assert policy.address_refusal("not-an-ip") == "not an IP address"
    assert [policy.port_allowed(p) for p in (80, 443, 8080, 9005, 9011, 22)] == [True] * 4 + [False] * 2
    assert policy.url_refusal("HTTPS", "a.test", None) is None
    assert policy.url_refusal("file", "", None) == "only http and https URLs are fetched"
    assert policy.url_refusal("http", "", None) == "the URL has no host"


def test_settings_validate_networks_and_ports(monkeypatch):
    assert FetchSettings(allow_networks=["10.1.2.3/8"]).allow_networks == ["10.0.0.0/8"]
    for bad in ({"allow_networks": ["ten"]}, {"allow_ports": [0]}, {"allow_ports": ["9-1"]},
                {"allow_ports": ["70000"]}, {"allow_ports": ["a-b"]}):
        with pytest.raises(ValidationError):
            FetchSettings(**bad)
    monkeypatch.setenv("DATAENGINE_FETCH__ALLOW_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("DATAENGINE_FETCH__ALLOW_PORTS", '[8080, "9000-9001"]')
    fetch = Settings().fetch
    assert fetch.allow_networks == ["127.0.0.0/8"] and fetch.allow_ports == ["8080", "9000-9001"]


# ------------------------------------------------------------------------------- Label Studio
def test_label_studio_url_is_under_the_policy(http_server):
    http_server.routes["/api/current-user/whoami"] = lambda h, n: send(h, 200, b"{}", "application/json")
    with pytest.raises(LabelStudioError, match="refused by the outbound-fetch policy: port not allowed"):
        LabelStudioClient(http_server.base, "token")
    client = LabelStudioClient(http_server.base, "token", fetch=FetchSettings(allow_ports=["1-65535"]))
    with pytest.raises(LabelStudioError, match="refused by the outbound-fetch policy: loopback address"):
        client.whoami()
    assert sum(http_server.hits.values()) == 0
