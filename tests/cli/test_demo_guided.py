"""``dataengine demo`` as a first-time user runs it: it ends with the next commands and a password
that signs in, a second run makes nothing twice and shows its own figures, its tables follow the
pipeline, its candidates are capped per phrase, and ``--serve`` serves the queue.

One mining run (a subprocess in a fresh folder, tiny models from the session's cache) is shared by
the assertions; the second run is ``demo --serve`` on a free loopback port, which mines nothing."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataengine.cli.demo import (
    DEMO_MAX_MASKS_PER_PHRASE,
    demo_settings,
    display_present,
    generate_password,
)
from engine.db.models import Mask
from engine.db.session import session_scope
from engine.domain.passwords import password_problem
from engine.domain.stages import STAGE_NAMES
from engine.settings import Settings

CAP = 2  # set explicitly for the mining run: fewer masks to verify, and the demo must keep what is set
PASSWORD = re.compile(r"user demo \(annotator\) created, password: (\S+)")


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    env: dict[str, str]
    stdout: str

    @property
    def database(self) -> str:
        return f"sqlite:///{self.folder / 'dataengine-data' / 'dataengine.db'}"


def demo_env(models_cache_dir: Path) -> dict[str, str]:
    """A first-time user's environment, and no display (a headless machine). Its DATAENGINE_* settings
    only save time: the shared tiny models, the cap, no LLM asked for hard negatives (half the run)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DATAENGINE_") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update({"DATAENGINE_MODELS__CACHE_DIR": str(models_cache_dir),
                "DATAENGINE_MODELS__PROPOSE__MAX_MASKS_PER_PHRASE": str(CAP),
                "DATAENGINE_MODELS__NEGATIVES__USE_LLM": "false", "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, models_cache_dir: Path) -> DemoRun:
    folder = tmp_path_factory.mktemp("demo")
    env = demo_env(models_cache_dir)
    result = subprocess.run([sys.executable, "-m", "dataengine", "demo"], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    return DemoRun(folder, env, result.stdout)


def table_rows(stdout: str, title: str) -> list[list[str]]:
    """The body rows of the rich table printed under ``title``, as cells."""
    lines = stdout.split(title, 1)[1].splitlines()
    rows = []
    for line in lines[4:]:
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_json(url: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.mark.slow
def test_first_run_ends_with_the_next_commands(first_run):
    out = first_run.stdout
    tail = out.rstrip().splitlines()[-7:]
    assert tail[0].startswith("next: judge the ") and tail[0].endswith(" tasks waiting for a human in the queue")
    assert PASSWORD.search(tail[1])
    assert tail[2].strip() == "shown this once; a new one: dataengine users passwd demo"
    assert tail[3:] == ["  1. dataengine serve",
                        "  2. open http://127.0.0.1:8000/login?next=/queue and sign in as demo",
                        "  or both at once: dataengine demo --serve",
                        "  once people have judged some: dataengine calibrate"]
    tasks = int(tail[0].split()[3])
    summary = table_rows(out, "what this job produced")[0]
    assert tasks == int(summary[6]) > 0
    assert f"{tasks} tasks wait for a human" in " ".join(out.split())
    assert " items wait for a human" not in out
    # the threshold the tiny models need is applied; the cap the user set is kept
    assert "proposal score threshold 0 for the demo" in out and "masks per phrase" not in out


@pytest.mark.slow
def test_tables_follow_the_pipeline_with_this_runs_figures(first_run):
    rows = table_rows(first_run.stdout, "job demo ")
    assert [r[0] for r in rows] == list(STAGE_NAMES)
    for stage, *_, total, run_items, run_s, rate in rows:
        assert total == run_items == "4", stage
        assert float(run_s) > 0 and float(rate) == pytest.approx(4 / float(run_s), rel=0.1, abs=0.1), stage
    assert "this run only" in first_run.stdout
    assert "time per stage" not in first_run.stdout


@pytest.mark.slow
def test_no_pair_has_more_masks_than_the_cap(first_run):
    with session_scope(first_run.database) as session:
        per_pair = session.execute(select(Mask.pair_id, func.count()).group_by(Mask.pair_id)).all()
    assert per_pair and max(n for _, n in per_pair) == CAP  # random weights fill every slot


@pytest.mark.slow
def test_second_run_with_serve_signs_the_user_in(first_run):
    password = PASSWORD.search(first_run.stdout)
    assert password is not None
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dataengine", "demo", "--serve", "--port", str(port)],
                            cwd=first_run.folder, env=first_run.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in iter(proc.stdout.readline, "")],
                     daemon=True).start()
    out = []
    try:
        deadline = time.monotonic() + 120
        while not out or not out[-1].startswith("dataengine serve: listening on "):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(out)
            try:
                out.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        text = "".join(out)
        assert "4 items listed, 0 new, 0 to mine" in text
        assert "created, password" not in text  # no second password
        assert "user demo exists (its password was printed when it was made); " \
               "a new one: dataengine users passwd demo" in text
        rows = table_rows(text, "job demo ")
        assert [r[0] for r in rows] == list(STAGE_NAMES)
        assert {tuple(r[-3:]) for r in rows} == {("0", "-", "-")}  # this run did nothing
        assert "  1. dataengine serve" not in text  # it serves instead
        url = f"http://127.0.0.1:{port}"
        assert out[-2].strip() == f"serving now: sign in at {url}/login?next=/queue as demo (Ctrl+C stops)"
        assert out[-1].startswith(f"dataengine serve: listening on {url}/ (1 process)")
        status = None
        while status is None:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(out)
            try:
                with urllib.request.urlopen(f"{url}/login", timeout=2) as page:  # noqa: S310
                    status = page.status
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert status == 200
        code, me = post_json(f"{url}/api/v1/auth/login", {"username": "demo", "password": password.group(1)})
        assert code == 200 and me["username"] == "demo" and me["role"] == "annotator"
        assert "verify_mask" in me["allowed_kinds"]
        assert post_json(f"{url}/api/v1/auth/login", {"username": "demo", "password": "not-the-password"})[0] == 401
    finally:
        proc.terminate()
        proc.wait(30)


def test_demo_settings_cap_and_threshold_only_where_unset(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("DATAENGINE_")]:
        monkeypatch.delenv(key)
    settings = Settings(data_dir=tmp_path, model_profile="tiny")
    mining = demo_settings(settings)
    assert mining.models.propose.max_masks_per_phrase == DEMO_MAX_MASKS_PER_PHRASE == 8
    assert mining.models.propose.score_threshold == 0.0
    assert settings.models.propose.max_masks_per_phrase == 32  # the server's settings stay as they are
    assert settings.models.propose.score_threshold == 0.5
    monkeypatch.setenv("DATAENGINE_MODELS__PROPOSE__MAX_MASKS_PER_PHRASE", "3")
    kept = demo_settings(Settings(data_dir=tmp_path, model_profile="tiny"))
    assert kept.models.propose.max_masks_per_phrase == 3 and kept.models.propose.score_threshold == 0.0
    real = demo_settings(Settings(data_dir=tmp_path, model_profile="sam3"))
    assert real.models.propose.max_masks_per_phrase == 3 and real.models.propose.score_threshold == 0.5


def test_generated_passwords_meet_the_policy():
    passwords = {generate_password("demo") for _ in range(20)}
    assert len(passwords) == 20 and all(password_problem(p, "demo") is None for p in passwords)


@pytest.mark.parametrize(("environ", "platform", "present"), [
    ({}, "linux", False),
    ({"DISPLAY": ":0"}, "linux", True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({"DISPLAY": ""}, "linux", False),
    ({}, "darwin", True),
    ({}, "win32", True),
])
def test_a_browser_opens_only_where_there_is_a_display(environ, platform, present):
    assert display_present(environ, platform) is present
