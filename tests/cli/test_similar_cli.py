"""``dataengine index embed|rebuild`` and ``dataengine similar ID|FILE`` with the tiny SAM 3's pooled
vision features on a mined folder holding a planted near-identical twin."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dataengine.cli.main import cli
from engine.db.models import Image as ImageRow
from engine.db.session import session_scope
from engine.services import mine
from engine.settings import DedupSettings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_embed_search_by_id_and_file_and_rebuild(cli_database, tmp_path, models_cache_dir, monkeypatch):
    monkeypatch.setenv("DATAENGINE_MODELS__CACHE_DIR", str(models_cache_dir))
    monkeypatch.setenv("DATAENGINE_MODELS__DEVICE", "cpu")
    settings = make_settings(cli_database, tmp_path, dedup=DedupSettings(near_duplicates=False))
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(60, 66):
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed)))
    (src / "twin.jpg").write_bytes(jpeg_bytes(photo(62).resize((300, 225)), quality=70))
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="cli-sim")
    with session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
    with session_scope(settings.db_url) as s:
        by_size = {(r.width, r.height): r.id for r in s.scalars(select(ImageRow))}
    twin = by_size.pop((300, 225))
    runner = CliRunner()

    embedded = runner.invoke(cli, ["index", "embed"])
    assert embedded.exit_code == 0, embedded.output
    assert "7 images embedded" in embedded.output

    by_id = runner.invoke(cli, ["similar", str(twin), "--k", "2"])
    assert by_id.exit_code == 0, by_id.output
    first = _ids(by_id.output)[0]
    by_file = runner.invoke(cli, ["similar", str(src / "p62.jpg"), "--k", "3"])
    assert by_file.exit_code == 0, by_file.output
    assert set(_ids(by_file.output)[:2]) == {first, twin}

    rebuilt = runner.invoke(cli, ["index", "rebuild"])
    assert rebuilt.exit_code == 0 and "7 vectors indexed" in rebuilt.output
    assert _ids(runner.invoke(cli, ["similar", str(twin), "--k", "2"]).output)[0] == first

    assert runner.invoke(cli, ["similar", str(tmp_path / "missing.jpg")]).exit_code != 0
    assert runner.invoke(cli, ["similar", "999999"]).exit_code != 0
    assert runner.invoke(cli, ["similar", str(twin), "--k", "0"]).exit_code != 0


def _ids(output: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^\W*(\d+)\s+\W*\s*(?:0|1)\.\d{4}", output, re.M)]
