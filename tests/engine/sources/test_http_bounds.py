"""Downloads stay bounded in memory and time against a hostile HTTP server on 127.0.0.1: compression
bombs (also chained), unknown encodings, bodies and headers dripping a byte at a time, slow redirect
chains; a URL-list job goes on past every such URL."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import pytest
from sqlalchemy import select

from engine.db.models import ItemStatus, JobItem
from engine.db.session import session_scope
from engine.settings import FetchSettings
from engine.sources.base import FetchError
from engine.sources.http import HttpFetcher
from pipelines.runner import run_mine
from tests.conftest import LOCAL_FETCH, make_settings
from tests.factories import jpeg_bytes, photo
from tests.hostile import (
    MiB,
    deflate_bytes,
    drip_body,
    drip_headers,
    encoded,
    gzip_bytes,
    slow_redirect,
    zeros_bomb,
)
from tests.httpserver import send, slow

IMAGE = jpeg_bytes(photo(7, (64, 48)))
CAP = MiB
BOMB_MIB = 16  # each bomb decodes to 16 times the cap
TOTAL_S, READ_S = 1.0, 0.5


def bounded(**overrides: object) -> FetchSettings:
    values: dict[str, object] = dict(connect_timeout_s=1, read_timeout_s=READ_S, total_timeout_s=TOTAL_S,
                                     retries=1, backoff_s=0.01, max_bytes=CAP, **LOCAL_FETCH)
    values.update(overrides)
    return FetchSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def fetcher():
    f = HttpFetcher(bounded())
    yield f
    f.close()


def measured(call: Callable[[], bytes]) -> tuple[str, int, float]:
    """(the FetchError's text, or "ok", peak traced memory in bytes, seconds) of ``call``."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        call()
        outcome = "ok"
    except FetchError as exc:
        outcome = str(exc)
    finally:
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak, seconds


def header_bomb(mib: int) -> bytes:
    """A gzip stream whose header's file name never ends: it decodes to nothing, however long it is."""
    return b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"a" * (mib * MiB)


BOMBS = {
    "gzip": (lambda: zeros_bomb(BOMB_MIB), "gzip"),
    "gzip, gzip": (lambda: gzip_bytes(zeros_bomb(BOMB_MIB)), "gzip, gzip"),
    "deflate": (lambda: zeros_bomb(BOMB_MIB, 15), "deflate"),
    # the outer layer's output is the bomb: the inner one consumes it, growing nothing
    "gzip, gzip (header)": (lambda: gzip_bytes(header_bomb(BOMB_MIB)), "gzip, gzip"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_stop_at_the_cap_in_little_memory(fetcher, http_server, name):
    build, encoding = BOMBS[name]
    body = build()
    assert len(body) < 100_000  # a few KB claiming BOMB_MIB MiB
    http_server.routes["/bomb.jpg"] = encoded(body, encoding)
    outcome, peak, seconds = measured(lambda: fetcher.fetch(http_server.url("/bomb.jpg")))
    assert outcome == f"too large: more than the cap of {CAP:,} bytes once decoded"
    assert peak < 4 * CAP, f"peak {peak / MiB:.1f} MiB"
    assert seconds < 2
    assert http_server.hits["/bomb.jpg"] == 1  # too large is not worth another try


@pytest.mark.parametrize("encoding, body", [
    ("gzip", gzip_bytes(IMAGE)),
    ("x-gzip", gzip_bytes(IMAGE)),
    ("deflate", deflate_bytes(IMAGE)),
    ("deflate", deflate_bytes(IMAGE, raw=True)),
    ("deflate, gzip", gzip_bytes(deflate_bytes(IMAGE))),  # the last applied is undone first
    ("gzip,gzip", gzip_bytes(gzip_bytes(IMAGE))),
    ("identity", IMAGE),
])
def test_encoded_images_are_decoded(fetcher, http_server, encoding, body):
    seen: dict[str, str] = {}
    http_server.routes["/a.jpg"] = encoded(body, encoding, seen)
    assert fetcher.fetch(http_server.url("/a.jpg")) == IMAGE
    assert seen["accept-encoding"] == "gzip, deflate"  # nothing it could not decode within bounds


def test_the_cap_counts_decoded_bytes(http_server):
    """An image of exactly the cap passes gzipped; one byte more fails, although its gzip is small."""
    http_server.routes["/fits.jpg"] = encoded(gzip_bytes(IMAGE), "gzip")
    http_server.routes["/over.jpg"] = encoded(gzip_bytes(IMAGE + b"\0"), "gzip")
    f = HttpFetcher(bounded(max_bytes=len(IMAGE)))
    try:
        assert f.fetch(http_server.url("/fits.jpg")) == IMAGE
        with pytest.raises(FetchError, match="too large: more than the cap of .* bytes once decoded"):
            f.fetch(http_server.url("/over.jpg"))
    finally:
        f.close()


@pytest.mark.parametrize("encoding, body, reason", [
    ("br", b"\x0b\x02\x80hello\x03", "unsupported content encoding 'br' (only gzip and deflate are decoded)"),
    ("zstd", b"\x28\xb5\x2f\xfd", "unsupported content encoding 'zstd' (only gzip and deflate are decoded)"),
    ("gzip, compress", gzip_bytes(IMAGE), "unsupported content encoding 'compress'"),
    ("gzip, gzip, gzip, gzip", IMAGE, "too many content encodings (4; at most 3 are decoded)"),
    ("gzip", b"GIF89a not gzip at all", "corrupt gzip content encoding"),
    ("gzip", gzip_bytes(IMAGE)[:-30], "corrupt gzip content encoding: the body ends before its stream does"),
    ("deflate", b"\x78\x9c\xff\xff\xff", "corrupt deflate content encoding"),
])
def test_bad_encodings_fail_with_a_reason(fetcher, http_server, encoding, body, reason):
    http_server.routes["/e.jpg"] = encoded(body, encoding)
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(http_server.url("/e.jpg"))
    assert str(caught.value).startswith(reason)
    assert "GIF89a" not in str(caught.value)


TIMED_OUT = f"timed out: the download took longer than {TOTAL_S:g} s"


@pytest.mark.parametrize("route", [drip_body(0.1), drip_headers(0.1)], ids=["body", "headers"])
def test_a_dripping_server_is_cut_off_at_the_deadline(fetcher, http_server, route):
    http_server.routes["/drip.jpg"] = route
    outcome, _, seconds = measured(lambda: fetcher.fetch(http_server.url("/drip.jpg")))
    assert outcome == TIMED_OUT
    assert TOTAL_S - 0.1 < seconds < TOTAL_S + 0.4  # the read time-out never fires: bytes keep coming


def test_a_slow_redirect_chain_is_cut_off_at_the_deadline(fetcher, http_server):
    for hop in range(5):
        http_server.routes[f"/hop{hop}"] = slow_redirect(0.3, f"/hop{hop + 1}")
    http_server.routes["/hop5"] = lambda h, n: send(h, 200, IMAGE)
    outcome, _, seconds = measured(lambda: fetcher.fetch(http_server.url("/hop0")))
    assert outcome == TIMED_OUT  # 6 hops of 0.3 s each: every one alone is quick
    assert seconds < TOTAL_S + 0.4
    assert http_server.hits["/hop4"] == 0


def test_the_deadline_covers_retries(http_server):
    """Each try times out reading (0.5 s) and is worth another; the deadline ends them all."""
    http_server.routes["/slow.jpg"] = slow(5.0)
    f = HttpFetcher(bounded(retries=10, total_timeout_s=1.3))
    try:
        outcome, _, seconds = measured(lambda: f.fetch(http_server.url("/slow.jpg")))
    finally:
        f.close()
    assert outcome == "timed out: the download took longer than 1.3 s"  # the third try is cut short
    assert seconds < 1.3 + 0.4
    assert http_server.hits["/slow.jpg"] == 3


def test_a_url_list_job_goes_on_past_hostile_urls(database_url, tmp_path, http_server):
    """In-process mining of a list mixing good and hostile URLs: each hostile one fails alone, with
    its reason; the good ones (also one gzipped) are stored."""
    good = {f"/good{n}.jpg": jpeg_bytes(photo(900 + n, (64, 48))) for n in range(3)}
    for path, data in good.items():
        http_server.routes[path] = lambda h, a, d=data: send(h, 200, d)
    http_server.routes["/zipped.jpg"] = encoded(gzip_bytes(jpeg_bytes(photo(950, (64, 48)))), "gzip")
    hostile = {
        "/bomb.jpg": (encoded(gzip_bytes(zeros_bomb(BOMB_MIB)), "gzip, gzip"), "too large: more than the cap"),
        "/br.jpg": (encoded(b"\x0b\x02\x80", "br"), "unsupported content encoding 'br'"),
        "/drip.jpg": (drip_body(0.1), TIMED_OUT),
        "/headers.jpg": (drip_headers(0.1), TIMED_OUT),
    }
    for path, (route, _) in hostile.items():
        http_server.routes[path] = route
    paths = ["/good0.jpg", "/bomb.jpg", "/good1.jpg", "/br.jpg", "/drip.jpg", "/zipped.jpg", "/headers.jpg",
             "/good2.jpg"]
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(http_server.url(p) + "\n" for p in paths))
    settings = make_settings(database_url, tmp_path, fetch=bounded())
    started = time.monotonic()
    result = run_mine(settings, str(listing), job_name="hostile", until="mine")
    assert time.monotonic() - started < 10  # the hostile URLs of a batch are fetched side by side
    with session_scope(settings.db_url) as s:
        items = {i.key.removeprefix(http_server.base): i for i in
                 s.scalars(select(JobItem).where(JobItem.job_id == result.plan.job_id))}
    assert set(items) == set(paths)
    for path in [*good, "/zipped.jpg"]:
        assert items[path].status == ItemStatus.DONE, (path, items[path].error)
    for path, (_, reason) in hostile.items():
        assert items[path].status == ItemStatus.FAILED
        assert items[path].error.startswith(reason), (path, items[path].error)


def test_a_resolver_that_never_answers_holds_a_fetch_only_until_its_deadline():
    """getaddrinfo has no time-out of its own: the look-up is waited for at most the connect time-out
    (then "could not resolve", retried) and never past the fetch's deadline."""
    def hung(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["127.0.0.1"]

    f = HttpFetcher(bounded(connect_timeout_s=0.3, retries=10), resolver=hung)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        f.fetch("http://images.example/a.jpg")
    f.close()
    assert time.monotonic() - started < TOTAL_S + 0.5
    assert str(caught.value) == TIMED_OUT
    quick = HttpFetcher(bounded(connect_timeout_s=0.2, total_timeout_s=30, retries=1), resolver=hung)
    started = time.monotonic()
    with pytest.raises(FetchError, match="could not resolve the host name"):
        quick.fetch("http://images.example/a.jpg")
    quick.close()
    assert time.monotonic() - started < 2
