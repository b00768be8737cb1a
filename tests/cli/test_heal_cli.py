"""`dataengine heal`: one healing pass from the command line (without a broker the lost work runs
in this process)."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from sqlalchemy import select, update

from dataengine.cli.main import cli
from engine.db.base import utcnow
from engine.db.models import JobItem
from engine.db.session import session_scope
from tests.factories import jpeg_bytes, photo


def test_heal_sends_lost_work_again_and_says_what_it_did(cli_database, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.jpg").write_bytes(jpeg_bytes(photo(40 + i, (64, 48))))
    monkeypatch.setenv("DATAENGINE_PIPELINE__STALE_AFTER_S", "60")
    from engine.settings import Settings
    from pipelines.runner import plan_mine

    plan = plan_mine(Settings(), str(src), job_name="lost", until="mine")  # listed, never sent
    runner = CliRunner()
    result = runner.invoke(cli, ["heal", "--job", "lost"])
    assert result.exit_code == 0, result.output
    assert "sent again: nothing" in result.output  # listed just now: not lost yet
    with session_scope(cli_database) as s:
        s.execute(update(JobItem).where(JobItem.job_id == plan.job_id)
                  .values(dispatched_at=utcnow() - dt.timedelta(hours=1)))
    result = runner.invoke(cli, ["heal", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resent"] == {"mine": 3}  # log lines go to stderr
    with session_scope(cli_database) as s:
        assert {st.value for st in s.scalars(select(JobItem.status))} == {"done"}
    result = runner.invoke(cli, ["heal", "--job", "nope"])
    assert result.exit_code != 0 and "no job named 'nope'" in result.output
