"""``dataengine retrain``, ``models promote`` and ``report`` as an operator runs them."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dataengine.cli.main import cli
from engine.db.models import ModelKind, ModelVersion
from engine.db.session import session_scope
from tests.factories import seed_labelled


@pytest.fixture
def env(cli_database, tmp_path, monkeypatch, models_cache_dir):
    database_url = cli_database
    monkeypatch.setenv("DATAENGINE_MODELS__CACHE_DIR", str(models_cache_dir))
    monkeypatch.setenv("DATAENGINE_MODELS__DEVICE", "cpu")
    monkeypatch.delenv("DATAENGINE_BROKER_URL", raising=False)
    with session_scope(database_url) as s:
        return seed_labelled(s, tmp_path / "media")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_retrain_verifier_then_promote_and_list(env, database_url):
    result = invoke("retrain", "verifier", "--kind", "mv", "--steps", "3", "--lr", "1e-3", "--val-percent", "0")
    assert result.exit_code == 0, result.output
    version_id = int(re.search(r"registered mv verifier version (\d+)", result.output).group(1))
    assert "loss" in result.output and "calibration (all, 0 human val verdicts)" in result.output
    listing = invoke("models", "list")
    assert listing.exit_code == 0 and "snapshot 1" in listing.output
    promoted = invoke("models", "promote", version_id)
    assert promoted.exit_code == 0, promoted.output
    assert f"promoted mask_verifier version {version_id}" in promoted.output
    with session_scope(database_url) as s:
        assert s.scalars(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.MASK_VERIFIER,
                                                       ModelVersion.is_promoted.is_(True))).all() == [version_id]


def test_bad_requests_are_clear_errors(env, tmp_path):
    missing = invoke("models", "promote", 9999)
    assert missing.exit_code == 1 and "no model version 9999" in missing.output
    failing = invoke("retrain", "sam3", "--command", "echo cannot train; exit 7")
    assert failing.exit_code == 1 and "exited with status 7" in failing.output and "cannot train" in failing.output
    not_an_export = tmp_path / "empty"
    not_an_export.mkdir()
    bad = invoke("retrain", "verifier", "--kind", "ev", "--snapshot", not_an_export)
    assert bad.exit_code == 1 and "not an export folder" in bad.output


def test_report_prints_tables_and_writes_charts(env, tmp_path):
    result = invoke("report", "--out", tmp_path / "charts", "--hours", "6")
    assert result.exit_code == 0, result.output
    assert "test-proposer:1" in result.output and "cgF1" in result.output
    pngs = sorted(p.name for p in (tmp_path / "charts").glob("*.png"))
    assert pngs == ["acceptance.png", "proposer_quality.png", "throughput.png", "verifier_agreement.png"]
