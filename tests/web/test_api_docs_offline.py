"""The API docs work offline (issue 20: /docs was blank without the internet, its Swagger UI came from a
CDN): /docs (Swagger UI) and /redoc (ReDoc) in a real browser whose every request to another host is
aborted and recorded, on the pages' own Content-Security-Policy (no inline script). Swagger UI must list
the operations by tag, ReDoc must render its reference, no page may ask anything of another host, and
no JavaScript or CSP error may show (browser_page fails the test on console errors). The vendored files
must still be the pinned ones (web/static/vendor/SHA256SUMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from dataengine.serve import create_app
from engine.settings import Settings
from tests.conftest import make_settings
from tests.web.live import browser_page, live_server  # noqa: F401 (fixtures)

VENDOR = Path(__file__).resolve().parents[2] / "web" / "static" / "vendor"


@pytest.fixture
def settings(fresh_sqlite_url: str, tmp_path: Path) -> Settings:
    """The pages read no data: one database (SQLite) is enough."""
    return make_settings(fresh_sqlite_url, tmp_path)


def offline(page: Any) -> list[str]:
    """Abort every request to a host other than 127.0.0.1; returns the list the aborted URLs go to."""
    attempted: list[str] = []

    def handle(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    page.context.route("**/*", handle)
    return attempted


def test_swagger_ui_renders_offline(live_server: str, browser_page: Any) -> None:
    attempted = offline(browser_page)
    response = browser_page.goto(f"{live_server}/docs")
    assert "script-src 'self';" in response.headers["content-security-policy"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    jobs = browser_page.locator(".opblock-tag-section", has=browser_page.locator("#operations-tag-jobs"))
    jobs.wait_for()
    assert browser_page.locator(".opblock-tag-section").count() >= 10  # one section per tag
    jobs.locator(".opblock-summary-path", has_text="/api/v1/jobs").first.wait_for()  # its operations, listed
    assert attempted == []


def test_redoc_renders_offline(live_server: str, browser_page: Any) -> None:
    attempted = offline(browser_page)
    response = browser_page.goto(f"{live_server}/redoc")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    browser_page.locator(".api-info h1", has_text="Data Engine").wait_for()
    browser_page.locator("[role=menuitem]", has_text="jobs").first.wait_for()  # the sidebar's tags
    browser_page.locator(".api-content h2").nth(10).wait_for()  # the operations' headings
    # styled-components' styles applied (the nonce works): the sidebar is laid out, not a bare list
    width = browser_page.evaluate("() => document.querySelector('.menu-content').getBoundingClientRect().width")
    assert 150 < width < 600
    assert attempted == []


def test_docs_pages_are_open_and_name_only_local_assets(settings: Settings) -> None:
    """Anyone may read the docs (as the schema): no sign-in; every asset the pages name is served here."""
    client = TestClient(create_app(settings))
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text and "https://" not in page.text and "<script>" not in page.text
        for asset in ("/static/vendor/", "/static/api-docs-"):
            assert asset in page.text
    assert client.get("/openapi.json").json()["info"]["title"] == "Data Engine"
    for asset in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "redoc/redoc.standalone.js"):
        assert client.get(f"/static/vendor/{asset}").status_code == 200
    nonces = {client.get("/redoc").headers["content-security-policy"] for _ in range(2)}
    assert len(nonces) == 2  # a fresh style nonce per response


def test_vendored_files_are_the_pinned_ones() -> None:
    """What scripts/vendor-api-docs.sh --check does, without a shell: every file listed, each sha256 as pinned."""
    listed = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for license_file in ("swagger-ui/LICENSE", "redoc/LICENSE"):
        assert license_file in listed
