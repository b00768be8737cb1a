import pytest

from engine.settings import FetchSettings
from engine.sources.base import FetchError
from engine.sources.http import HttpFetcher
from tests.conftest import LOCAL_FETCH
from tests.factories import jpeg_bytes, photo
from tests.httpserver import flaky, send, slow, streamed

IMAGE = jpeg_bytes(photo(1))


@pytest.fixture
def fetcher():
    f = HttpFetcher(FetchSettings(connect_timeout_s=1, read_timeout_s=0.5, retries=2, backoff_s=0.01,
                                  max_bytes=len(IMAGE) + 100, **LOCAL_FETCH))
    yield f
    f.close()


def test_ok(fetcher, http_server):
    assert fetcher.fetch(http_server.image("/a.jpg", IMAGE)) == IMAGE


def test_404_is_permanent_and_not_retried(fetcher, http_server):
    with pytest.raises(FetchError, match="HTTP 404 Not Found"):
        fetcher.fetch(http_server.url("/missing.jpg"))
    assert http_server.hits["/missing.jpg"] == 1


def test_5xx_is_retried_until_it_works(fetcher, http_server):
    http_server.routes["/busy.jpg"] = flaky(2, IMAGE)
    assert fetcher.fetch(http_server.url("/busy.jpg")) == IMAGE
    assert http_server.hits["/busy.jpg"] == 3


def test_5xx_gives_up_after_bounded_attempts(fetcher, http_server):
    http_server.routes["/down.jpg"] = flaky(99, IMAGE)
    with pytest.raises(FetchError, match=r"HTTP 503 .*gave up after 3 attempts"):
        fetcher.fetch(http_server.url("/down.jpg"))
    assert http_server.hits["/down.jpg"] == 3


def test_timeout(fetcher, http_server):
    http_server.routes["/slow.jpg"] = slow(2.0)
    with pytest.raises(FetchError, match=r"timed out .*gave up after 3 attempts"):
        fetcher.fetch(http_server.url("/slow.jpg"))


def test_non_image_content_type(fetcher, http_server):
    http_server.routes["/page"] = lambda h, n: send(h, 200, b"<html></html>", "text/html; charset=utf-8")
    with pytest.raises(FetchError, match="not an image: the server sent content type text/html"):
        fetcher.fetch(http_server.url("/page"))


def test_oversized_by_content_length(fetcher, http_server):
    url = http_server.image("/big.jpg", IMAGE + b"\0" * 1000)
    with pytest.raises(FetchError, match="too large: .* exceeds the cap"):
        fetcher.fetch(url)


def test_oversized_streamed_without_length(fetcher, http_server):
    http_server.routes["/stream.jpg"] = streamed(IMAGE + b"\0" * 5000)
    with pytest.raises(FetchError, match="too large: more than the cap"):
        fetcher.fetch(http_server.url("/stream.jpg"))


def test_connection_refused_is_a_network_error(fetcher):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="network error"):
        fetcher.fetch(f"http://127.0.0.1:{port}/x.jpg")


@pytest.mark.parametrize("url", ["not a url", "", "http:///a.jpg"])
def test_invalid_urls(fetcher, url):
    with pytest.raises(FetchError, match="invalid URL"):
        fetcher.fetch(url)


@pytest.mark.parametrize("url", ["ftp://example.org/a.jpg", "file:///etc/passwd", "gopher://example.org/"])
def test_only_http_urls(fetcher, url):
    with pytest.raises(FetchError, match="refused by the outbound-fetch policy: only http and https"):
        fetcher.fetch(url)
