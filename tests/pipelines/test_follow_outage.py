"""The foreground follow loop (``dataengine mine`` with workers) outlives a database restart: a private
PostgreSQL server (never the shared one) is restarted under it; it prints one line naming the error's
kind, keeps following and returns when the job is done; its timeout still holds while the database is down."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from engine.db.models import ItemStatus, JobItem
from engine.db.session import dispose_engines, session_scope
from engine.services.mine import plan_job
from pipelines.context import TaskContext
from pipelines.runner import wait_for_job
from tests.conftest import make_settings
from tests.factories import photo, png_bytes
from tests.services_private import start_private_postgres


@pytest.fixture
def private_pg(tmp_path):
    server = start_private_postgres(tmp_path / "pg")
    yield server
    dispose_engines()
    server.close()


def planned_job(settings, folder: Path, n: int = 3) -> int:
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.png").write_bytes(png_bytes(photo(i, (64, 48))))
    with session_scope(settings.db_url) as s:
        plan = plan_job(s, settings, str(folder))
        s.commit()
    return plan.job_id


def finish(settings, job_id: int) -> None:
    with session_scope(settings.db_url) as s:
        s.execute(update(JobItem).where(JobItem.job_id == job_id).values(status=ItemStatus.FAILED, error="test"))
        s.commit()


def test_follow_loop_survives_a_database_restart(private_pg, tmp_path):
    settings = make_settings(private_pg.url, tmp_path)
    job_id = planned_job(settings, tmp_path / "src")
    ctx = TaskContext.from_settings(settings)
    lines: list[str] = []
    progress: list[tuple[int, int]] = []
    polls: list[float] = []
    outcome: dict[str, object] = {}

    def follow() -> None:
        try:
            outcome["finished"] = wait_for_job(ctx, job_id, 3, 120, lambda d, t: progress.append((d, t)),
                                               poll_s=0.1, on_poll=lambda: polls.append(time.monotonic()),
                                               on_notice=lines.append, max_backoff_s=0.5)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive() and progress and progress[-1] == (0, 3)
    private_pg.restart()  # a clean stop (AdminShutdown for the connections it had) and a start
    deadline = time.monotonic() + 30
    while not any("reachable again" in line for line in lines) and time.monotonic() < deadline:
        assert thread.is_alive(), f"the follow loop ended during the restart: {outcome}"
        time.sleep(0.1)
    assert thread.is_alive() and "error" not in outcome
    finish(settings, job_id)
    thread.join(30)

    assert outcome == {"finished": True}
    assert progress[-1] == (3, 3)
    assert len(polls) > 3  # on_poll ran once per poll
    down = [line for line in lines if "unavailable" in line]
    assert len(down) == 1, lines  # one line per outage, not one per poll
    assert down[0].startswith("database unavailable (") and down[0].endswith(
        f"still following job {job_id}, retrying")
    assert "SELECT" not in down[0] and str(private_pg.port) not in down[0]  # the kind, never the text
    assert lines[-1] == f"database reachable again; following job {job_id}"


def test_the_timeout_holds_while_the_database_is_down(private_pg, tmp_path):
    settings = make_settings(private_pg.url, tmp_path)
    job_id = planned_job(settings, tmp_path / "src", n=1)
    private_pg.stop()
    lines: list[str] = []
    started = time.monotonic()
    finished = wait_for_job(TaskContext.from_settings(settings), job_id, 1, 2.0, None, poll_s=0.1,
                            on_notice=lines.append, max_backoff_s=0.5)
    assert finished is False
    assert time.monotonic() - started < 15
    assert lines and all(line.startswith("database unavailable (") for line in lines)


def test_dataengine_mine_follows_through_a_database_restart(private_pg, tmp_path):
    """The command of the issue: ``dataengine mine`` with a broker, in its own process, while its
    database restarts — one line, no traceback, exit 0 once the job is done (the items are settled
    by hand here: no worker runs, so the follow loop alone is under test)."""
    import os
    import subprocess
    import sys

    import psycopg

    from tests.conftest import LOCAL_FETCH_ENV
    from tests.services_private import start_private_redis

    redis_server = start_private_redis(tmp_path / "redis")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.png").write_bytes(png_bytes(photo(i, (64, 48))))
    env = {**os.environ, **LOCAL_FETCH_ENV, "DATAENGINE_DATABASE_URL": private_pg.url,
           "DATAENGINE_BROKER_URL": redis_server.url, "DATAENGINE_MEDIA_ROOT": str(tmp_path / "media"),
           "DATAENGINE_DATA_DIR": str(tmp_path / "data")}
    out, err = (tmp_path / "out.txt").open("wb"), (tmp_path / "err.txt").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dataengine", "mine", str(src), "--job", "outage",
                             "--until", "mine", "--timeout", "120"], env=env, stdout=out, stderr=err,
                            cwd=Path(__file__).resolve().parents[2])
    dsn = private_pg.url.replace("postgresql+psycopg://", "postgresql://")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline, "the job was never planned"
            try:
                with psycopg.connect(dsn, connect_timeout=1) as conn:
                    if conn.execute("SELECT count(*) FROM job_items").fetchone()[0] == 3:
                        break
            except psycopg.Error:
                pass
            time.sleep(0.2)
        time.sleep(1.5)  # enqueued; following
        private_pg.restart()
        time.sleep(2)
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE job_items SET status = 'failed', error = 'settled by the test'")
        assert proc.wait(60) == 0, (tmp_path / "err.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()
        err.close()
        redis_server.close()
    stderr = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in stderr
    assert stderr.count("database unavailable (") == 1, stderr
    assert "still following job" in stderr and "database reachable again" in stderr
    assert "job 'outage'" in (tmp_path / "out.txt").read_text()
