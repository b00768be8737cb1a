"""A real Label Studio server for the tests and the benchmark: installed once in its own virtual
environment, started from a pre-migrated data directory on 127.0.0.1, stopped at the end.

- The install lives in ``$DATAENGINE_TEST_LS_DIR`` (default
  ``~/.cache/dataengine-tests/label-studio-1.23.2``): ``venv/`` (``pip install label-studio==1.23.2``,
  about 80 s and 1 GB, once) and ``template/`` (a data directory after the first start's migrations,
  with the fixed user and token; about 50 s, once). Both are made under a file lock, so parallel
  sessions wait for each other instead of installing twice; the venv counts as installed only once
  its marker file is written after a complete install, the template only once renamed into place.
- Each :func:`start` copies the template into a fresh folder and starts ``label-studio start`` on a
  free port (about 7 s), with error reporting and version checks turned off (nothing leaves the machine).

A failed install or start raises :class:`LabelStudioSetupError` with the log's tail: the tests that
need the server fail with that message, they are never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VERSION = "1.23.2"
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # the legacy API token of the fixed user (40 hex)
USERNAME = "ci@example.com"
PASSWORD = "ci-password-not-secret"
INSTALL_TIMEOUT_S = 1800
FIRST_START_TIMEOUT_S = 300
START_TIMEOUT_S = 120


class LabelStudioSetupError(RuntimeError):
    """Label Studio could not be installed or started here (the message says what to do)."""


@dataclass
class LabelStudioServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)


def home() -> Path:
    default = Path.home() / ".cache" / "dataengine-tests" / f"label-studio-{VERSION}"
    return Path(os.environ.get("DATAENGINE_TEST_LS_DIR") or default)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed(venv: Path) -> bool:
    """True when ``venv`` holds a working label-studio of our version (the marker is written only
    after a complete install; a venv without it is probed once, then marked)."""
    if (venv / ".installed").is_file():
        return True
    if not (venv / "bin" / "label-studio").exists():
        return False
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.metadata as m, label_studio, django; print(m.version('label-studio'))"],
                           capture_output=True, text=True, check=False)
    if probe.returncode == 0 and probe.stdout.strip() == VERSION:
        (venv / ".installed").write_text(VERSION)
        return True
    return False


def ensure_installed(root: Path | None = None) -> Path:
    """The virtual environment with label-studio installed (made on first use); its folder. A
    half-made one (an interrupted install: no marker, no working label-studio) is made again."""
    root = root or home()
    venv = root / "venv"
    with _locked(root):
        if _installed(venv):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        log = root / "install.log"
        base_python = getattr(sys, "_base_executable", sys.executable)
        with open(log, "wb") as out:
            steps = [[base_python, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check",
                      f"label-studio=={VERSION}"]]
            for step in steps:
                try:
                    done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S,
                                          check=False)
                except subprocess.TimeoutExpired:
                    raise LabelStudioSetupError(f"installing Label Studio took over {INSTALL_TIMEOUT_S} s; "
                                                f"log: {log}") from None
                if done.returncode != 0:
                    raise LabelStudioSetupError(
                        f"could not install label-studio=={VERSION} into {venv} ({' '.join(step[:3])} … exited "
                        f"{done.returncode}). Is the package index reachable? Log {log}:\n{_tail(log)}")
        if not _installed(venv):
            raise LabelStudioSetupError(f"label-studio {VERSION} does not import in {venv} after installing; "
                                        f"log {log}:\n{_tail(log)}")
        return venv


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LABEL_STUDIO_"))}
    env.update(LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), DJANGO_DB="sqlite", LABEL_STUDIO_USERNAME=USERNAME,
               LABEL_STUDIO_PASSWORD=PASSWORD, LABEL_STUDIO_USER_TOKEN=TOKEN,
               LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true", LATEST_VERSION_CHECK="false",
               COLLECT_ANALYTICS="false", SENTRY_DSN="", FRONTEND_SENTRY_DSN="",
               # images are served by our API on another 127.0.0.1 port
               SSRF_PROTECTION_ENABLED="false")
    return env


def _launch(venv: Path, data_dir: Path, log_path: Path, timeout_s: float) -> LabelStudioServer:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port)],
            env=_environment(data_dir), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=data_dir, start_new_session=True)
    server = LabelStudioServer(url, TOKEN, process, data_dir, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabelStudioSetupError(f"label-studio exited with {process.returncode} while starting; "
                                        f"log {log_path}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    stop(server)
    raise LabelStudioSetupError(f"label-studio did not answer /health within {timeout_s} s; "
                                f"log {log_path}:\n{_tail(log_path)}")


def ensure_template(venv: Path, root: Path | None = None) -> Path:
    """A data directory that has been through the first start (migrations, the fixed user and token)."""
    root = root or home()
    template = root / "template"
    with _locked(root):
        if (template / ".ready").is_file():
            return template
        staging = root / "template.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        server = _launch(venv, staging, root / "first-start.log", FIRST_START_TIMEOUT_S)
        stop(server)
        shutil.rmtree(template, ignore_errors=True)
        staging.rename(template)
        (template / ".ready").write_text(VERSION)
        return template


def start(workdir: Path | None = None) -> LabelStudioServer:
    """Install if needed, copy the template data directory, start a server; call :func:`stop` after."""
    venv = ensure_installed()
    template = ensure_template(venv)
    workdir = Path(tempfile.mkdtemp(prefix="label-studio-", dir=workdir))
    data_dir = workdir / "data"
    shutil.copytree(template, data_dir)
    return _launch(venv, data_dir, workdir / "label-studio.log", START_TIMEOUT_S)


def stop(server: LabelStudioServer, timeout_s: float = 20) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout_s)
