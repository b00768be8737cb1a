"""End-to-end fixtures: the real app served by uvicorn on 127.0.0.1, and a real Chromium page.

Use them from any test module::

    from tests.web.live import live_server, browser_page  # noqa: F401 (fixtures)

- ``live_server`` serves ``create_app(settings)`` (the ``settings`` fixture in scope: override it in
  the module) in a background thread on a free port and yields the base URL ("http://127.0.0.1:PORT").
- ``browser_page`` is a fresh Playwright page (its own context: cookies, storage) in Debian's Chromium,
  one browser per test session. JavaScript errors on the page (``pageerror``) and console errors other
  than failed resource loads fail the test; :func:`page_errors` lists them so far.
- :func:`save_screenshot` writes ``test-artifacts/screenshots/<name>.png``.

Chromium is never downloaded (no ``playwright install``) and its absence is a failure, not a skip:
``scripts/test.sh`` installs Debian's package.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from dataengine.serve import create_app
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}

__all__ = ["CHROMIUM_ARGS", "LiveServer", "browser_page", "live_server", "page_errors", "save_screenshot"]


# ------------------------------------------------------------------------------ the server
class LiveServer:
    """uvicorn in a daemon thread, on a socket bound here (port 0: the system picks a free one)."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"live-server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the live server exited while starting (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the live server did not start within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():  # connections that would not close: cut them
            self.server.force_exit = True
            self.thread.join(timeout_s)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError("the live server did not stop")


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The app for ``settings`` served on 127.0.0.1; yields its base URL."""
    server = LiveServer(create_app(settings)).start()
    try:
        yield server.url
    finally:
        server.stop()


# ------------------------------------------------------------------------------ the browser
class _Chromium:
    """One Playwright driver and Chromium per test session, started on first use."""

    def __init__(self) -> None:
        self.playwright: Any = None
        self.browser: Any = None

    def get(self, config: pytest.Config) -> Any:
        if self.browser is None:
            executable = shutil.which("chromium") or shutil.which("chromium-browser")
            if executable is None:
                pytest.fail("Chromium is not installed, and the browser tests never skip. Install Debian's package "
                            "(`apt-get install -y chromium`, which scripts/test.sh does when run as root).",
                            pytrace=False)
            from playwright.sync_api import sync_playwright

            self.playwright = sync_playwright().start()
            try:
                self.browser = self.playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                                               headless=True)
            except Exception:
                self.playwright.stop()
                self.playwright = None
                raise
            config.add_cleanup(self.close)
        return self.browser

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
            self.browser = None
        if self.playwright is not None:
            self.playwright.stop()
            self.playwright = None


_CHROMIUM = _Chromium()
_ERRORS: dict[int, list[str]] = {}
IGNORED_CONSOLE = re.compile(r"^Failed to load resource: ")  # an HTTP status the page handles (401, 204 …)


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new Chromium page in its own context (1280×800). Fails the test on JavaScript errors."""
    context = _CHROMIUM.get(request.config).new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    _ERRORS[id(page)] = errors
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and not IGNORED_CONSOLE.match(msg.text) else None)
    try:
        yield page
    finally:
        _ERRORS.pop(id(page), None)
        context.close()
    if errors:
        pytest.fail("JavaScript errors on the page:\n" + "\n".join(errors), pytrace=False)


def page_errors(page: Any) -> list[str]:
    """The JavaScript errors seen so far on a page made by ``browser_page``."""
    return list(_ERRORS.get(id(page), []))


def save_screenshot(page: Any, name: str) -> Path:
    """Write a PNG of the page's viewport to test-artifacts/screenshots/<name>.png; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") + ".png")
    page.screenshot(path=str(path))
    return path
