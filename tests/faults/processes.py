"""Real ``dataengine`` processes (worker, beat, mine) for fault injection, and an HTTP gate that holds
a download open until the test lets it go (so a batch is provably in progress when the fault hits)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psutil

from tests.httpserver import send


def wait_until(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


class Proc:
    """One ``python -m dataengine ...`` in a session of its own, its output in ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.args = args
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "dataengine", *args], env=env, cwd=cwd,
                                     stdout=self._handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited ({self.proc.returncode}):\n{self.output()[-4000:]}")
            return text in self.output()

        wait_until(seen, timeout, f"{text!r} in {self.log.name}")

    def children(self) -> list[psutil.Process]:
        """The pool processes of a worker (children of its main process that are alive)."""
        try:
            return [c for c in psutil.Process(self.pid).children() if c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return []

    def kill_main(self) -> None:
        """SIGKILL the main process only: its children are left to notice."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL every process of the group (what a lost machine looks like)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.close()

    def close(self) -> None:
        self._handle.close()


class Gate:
    """An HTTP route that answers only once opened (or after ``limit_s``); counts who waited."""

    def __init__(self, data: bytes, limit_s: float = 60) -> None:
        self.data = data
        self.limit_s = limit_s
        self.opened = threading.Event()
        self.waiting = 0
        self.hits = 0

    def __call__(self, handler: BaseHTTPRequestHandler, attempt: int) -> None:
        self.hits += 1
        self.waiting += 1
        try:
            self.opened.wait(self.limit_s)
        finally:
            self.waiting -= 1
        send(handler, 200, self.data)

    def open(self) -> None:
        self.opened.set()
