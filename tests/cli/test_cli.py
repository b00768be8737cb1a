"""The ``dataengine`` program, driven as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from dataengine.cli.main import cli
from engine.db.models import Image, ItemStatus, JobItem
from engine.db.session import session_scope
from tests.conftest import LOCAL_FETCH_ENV
from tests.factories import bad_corpus, jpeg_bytes, photo
from tests.httpserver import send, slow

ROOT = Path(__file__).resolve().parents[2]


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


@pytest.mark.parametrize("path", [()] + list(all_commands(cli)), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and "--help" in result.output


@pytest.fixture
def env(cli_database):
    return cli_database


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_config_show_masks_secrets(monkeypatch):
    monkeypatch.setenv("DATAENGINE_DATABASE_URL", "postgresql+psycopg://de:topsecret@db/de")
    monkeypatch.setenv("DATAENGINE_BATCH_SIZES__MINE", "17")
    result = invoke("config", "show", "--json")
    data = json.loads(result.output)
    assert data["database_url"] == "postgresql+psycopg://de:***@db/de"
    assert data["batch_sizes"]["mine"] == 17
    table = invoke("config", "show").output
    assert "topsecret" not in table and "in-process" in table


def test_config_file_option(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAENGINE_CONFIG_FILE", raising=False)
    path = tmp_path / "de.toml"
    path.write_text("[dedup]\nphash_distance = 2\n")
    try:
        data = json.loads(invoke("--config", str(path), "config", "show", "--json").output)
    finally:
        os.environ.pop("DATAENGINE_CONFIG_FILE", None)
    assert data["dedup"]["phash_distance"] == 2


def test_invalid_settings_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("DATAENGINE_BATCH_SIZES__MINE", "-1")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 1 and "invalid settings" in result.output


def test_db_current_and_upgrade(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAENGINE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert "current: none (empty database)" in invoke("db", "current").output
    assert "database at revision" in invoke("db", "upgrade").output
    out = invoke("db", "current").output
    head = out.split("head:")[1].strip()
    assert f"current: {head}" in out


def test_mine_and_status(env, tmp_path):
    bad_corpus(tmp_path / "src")
    result = invoke("mine", str(tmp_path / "src"), "--job", "cli-job", "--until", "mine")
    assert "job 'cli-job'" in result.output and "8 items listed" in result.output
    assert "failed items by reason" in result.output and "empty file (0 bytes)" in result.output
    data = json.loads(invoke("status", "cli-job", "--json").output)
    assert data[0]["stages"][0]["counts"] == {
        "pending": 0, "done": 2, "duplicate": 1, "near_duplicate": 1, "failed": 4}
    assert data[0]["status"] == "done"
    assert "cli-job" in invoke("status").output


def test_mine_reports_bad_sources_clearly(env, tmp_path):
    result = CliRunner().invoke(cli, ["mine", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "source not found" in result.output
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    invoke("mine", str(tmp_path / "a"), "--job", "same", "--until", "mine")
    result = CliRunner().invoke(cli, ["mine", str(tmp_path / "b"), "--job", "same"])
    assert result.exit_code == 1 and "already mines" in result.output
    result = CliRunner().invoke(cli, ["status", "nope"])
    assert result.exit_code == 1 and "no job named 'nope'" in result.output


def test_postgres_schema_must_be_migrated_explicitly(fresh_pg_url, monkeypatch, tmp_path):
    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database(f"de_empty_{os.getpid()}")
    try:
        monkeypatch.setenv("DATAENGINE_DATABASE_URL", url)
        result = CliRunner().invoke(cli, ["mine", str(tmp_path)])
        assert result.exit_code == 1 and "run `dataengine db upgrade`" in result.output
    finally:
        drop_pg_database(f"de_empty_{os.getpid()}")


def test_worker_needs_a_broker():
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code == 1 and "no broker configured" in result.output


def _subprocess_env(tmp_path, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
    env.update(DATAENGINE_DATABASE_URL=database_url, DATAENGINE_MEDIA_ROOT=str(tmp_path / "media"),
               DATAENGINE_BATCH_SIZES__MINE="2", DATAENGINE_FETCH__CONCURRENCY="1", **LOCAL_FETCH_ENV)
    return env


def test_in_process_job_resumes_after_a_crash(database_url, tmp_path, http_server):
    """SIGKILL `dataengine mine` mid-job; running it again finishes the job, nothing twice."""
    urls = []
    for n in range(24):
        data = jpeg_bytes(photo(400 + n, (64, 48)))
        http_server.routes[f"/{n}.jpg"] = slow(0.1, lambda h, a, d=data: send(h, 200, d))
        urls.append(http_server.url(f"/{n}.jpg"))
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    env = _subprocess_env(tmp_path, database_url)
    cmd = [sys.executable, "-m", "dataengine", "mine", str(listing), "--job", "resume-me", "--until", "mine"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 6:
        time.sleep(0.1)
        try:
            with session_scope(database_url) as s:
                done = s.scalar(select(func.count()).where(JobItem.status != ItemStatus.PENDING)) or 0
        except Exception:  # noqa: BLE001 - the schema may not exist yet
            done = 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 6 <= done < 24
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 new" in again.stdout
    with session_scope(database_url) as s:
        items = s.scalars(select(JobItem)).all()
        assert len(items) == 24 and {i.status for i in items} == {ItemStatus.DONE}
        assert {i.attempts for i in items} == {1}
        assert s.scalar(select(func.count()).select_from(Image)) == 24


@pytest.mark.slow
@pytest.mark.models
def test_demo_command_in_a_fresh_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
    result = subprocess.run([sys.executable, "-m", "dataengine", "demo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "job 'demo' (id 1): 4 items listed, 4 new" in result.stdout
    assert "RANDOM-WEIGHT tiny models (tiny-mllama, tiny-sam3)" in " ".join(result.stdout.split())
    summary = result.stdout.split("what this job produced")[1].splitlines()
    row = next(line for line in summary if line.count("│") >= 9)
    images, duplicates, captions, concepts, pairs, masks, tasks, failures = (
        int(c) for c in row.strip("│ ").split("│"))
    assert images == 4 and duplicates == 0 and failures == 0
    assert captions == 8  # the alt-text beside each image + one caption of the tiny captioner
    assert concepts >= 10 and pairs >= concepts and masks > 0
    # no calibration yet: every mask and every pair waits for a human
    assert tasks == masks + pairs
    assert (tmp_path / "dataengine-data" / "dataengine.db").is_file()
    assert len(list((tmp_path / "dataengine-data" / "media").rglob("*.jpg"))) == 4
    again = subprocess.run([sys.executable, "-m", "dataengine", "demo"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 items listed, 0 new, 0 to mine" in again.stdout


def test_import_predictions_command(env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(photo(3, (40, 30))))
    invoke("mine", str(src), "--until", "mine")
    with session_scope(env) as s:
        image_id = s.scalars(select(Image.id)).one()
    results = tmp_path / "results.json"
    results.write_text(json.dumps([
        {"image_id": image_id, "category_id": 1, "score": 0.9, "segmentation": [[1, 1, 20, 1, 20, 20]]},
        {"image_id": image_id + 100, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20]]},
    ]))
    cats = tmp_path / "cats.json"
    cats.write_text(json.dumps({"categories": [{"id": 1, "name": "bowl"}]}))
    result = CliRunner().invoke(cli, ["import-predictions", str(results), "--model", "det",
                                      "--categories", str(cats)])
    assert result.exit_code == 0, result.output
    assert "2 rows: 1 masks imported on 1 pairs, 0 already there, 1 bad rows" in result.output
    assert f"row 1: unknown image_id {image_id + 100}" in result.output
    strict = CliRunner().invoke(cli, ["import-predictions", str(results), "--model", "det2",
                                      "--categories", str(cats), "--strict"])
    assert strict.exit_code == 1 and "nothing imported (--strict)" in strict.output
    listing = invoke("models", "list").output
    assert "det" in listing and "external" in listing


def test_calibrate_command_says_what_it_needs(env, tmp_path):
    result = invoke("calibrate")
    assert "no verifier has judged anything yet" in result.output
    bad = CliRunner().invoke(cli, ["calibrate", "--target", "0.3"])
    assert bad.exit_code == 1 and "--target must lie between 0.5 and 1" in bad.output


def test_users_commands(env):
    created = CliRunner().invoke(cli, ["users", "create", "Ann", "--role", "annotator", "--password-stdin"],
                                 input="a long enough secret\n")
    assert created.exit_code == 0 and "created ann (annotator)" in created.output
    weak = CliRunner().invoke(cli, ["users", "create", "bob", "--role", "admin", "--password-stdin"], input="short\n")
    assert weak.exit_code == 1 and "at least 10 characters" in weak.output
    again = CliRunner().invoke(cli, ["users", "create", "ann", "--role", "admin", "--password-stdin"],
                               input="a long enough secret\n")
    assert again.exit_code == 1 and "exists" in again.output
    assert "disabled ann" in invoke("users", "disable", "ann").output
    listing = invoke("users", "list").output
    assert "ann" in listing and "annotator" in listing and "no" in listing
    missing = CliRunner().invoke(cli, ["users", "disable", "zed"])
    assert missing.exit_code == 1 and "no user 'zed'" in missing.output


def test_users_with_task_kinds_and_queue_commands(env, tmp_path):
    import datetime as dt

    from sqlalchemy import select

    from engine.db.models import HumanTask, User
    from engine.db.session import session_scope
    from tests.factories import seed_review_items

    bad = CliRunner().invoke(cli, ["users", "create", "ann", "--role", "annotator", "--password-stdin",
                                   "--kinds", "verify_mask,paint"], input="correct horse battery\n")
    assert bad.exit_code != 0 and "unknown task kind(s) paint" in bad.output
    ok = CliRunner().invoke(cli, ["users", "create", "ann", "--role", "annotator", "--password-stdin",
                                  "--kinds", "verify_mask"], input="correct horse battery\n")
    assert ok.exit_code == 0 and "task kinds verify_mask" in ok.output
    with session_scope(env) as s:
        assert s.scalars(select(User.task_kinds).where(User.username == "ann")).one() == ["verify_mask"]
        made = seed_review_items(s, tmp_path / "media", n_images=1, phrases=("dog",), kinds=("verify_mask",))
        task = s.get(HumanTask, made["tasks"][0])
        task.state, task.lease_expires_at = "leased", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert "1 expired lease(s) returned" in invoke("queue", "expire").output
    stats = invoke("queue", "stats").output
    assert "verify_mask" in stats and "2" in stats
