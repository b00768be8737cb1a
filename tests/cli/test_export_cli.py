"""``dataengine export`` and ``dataengine snapshots`` as an operator runs them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from dataengine.cli.main import cli
from engine.db.session import session_scope
from tests.factories import seed_labelled


@pytest.fixture
def env(cli_database, tmp_path):
    database_url = cli_database
    with session_scope(database_url) as s:
        return seed_labelled(s, tmp_path / "media")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_export_coco_then_refuse_then_force(env, tmp_path):
    out = tmp_path / "coco"
    first = invoke("export", "coco", "--out", out, "--val-percent", "0", "--label-source", "human")
    assert first.exit_code == 0, first.output
    assert "snapshot 1 coco-" in first.output
    coco = COCO(str(out / "instances_train.json"))
    assert len(coco.getAnnIds()) == 4
    again = invoke("export", "coco", "--out", out)
    assert again.exit_code == 1 and "not empty" in again.output and "--force" in again.output
    forced = invoke("export", "coco", "--out", out, "--force", "--val-percent", "0", "--label-source", "human")
    assert forced.exit_code == 0 and "unchanged data: existing snapshot 1" in forced.output
    listing = json.loads(invoke("snapshots", "--json").output)
    assert [(s["id"], s["format"]) for s in listing] == [(1, "coco")]
    assert listing[0]["filters"]["label_source"] == "human"
    assert listing[0]["counts"]["train"]["annotations"] == 4


def test_export_verifier_and_bad_filters(env, tmp_path):
    ok = invoke("export", "verifier", "--out", tmp_path / "v", "--concept", "dog", "--min-agreement", "0.5")
    assert ok.exit_code == 0, ok.output
    names = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert names == ["ev.train.jsonl", "ev.val.jsonl", "manifest.json", "mv.train.jsonl", "mv.val.jsonl"]
    phrases = {json.loads(line)["phrase"] for name in names if name.endswith(".jsonl")
               for line in (tmp_path / "v" / name).read_text().splitlines()}
    assert phrases == {"dog"}
    unknown = invoke("export", "saco", "--out", tmp_path / "s", "--concept", "unicorn")
    assert unknown.exit_code == 1 and "unknown concept(s): unicorn" in unknown.output
    job = invoke("export", "saco", "--out", tmp_path / "s", "--job", "nope")
    assert job.exit_code == 1 and "no mining job 'nope'" in job.output
    dates = invoke("export", "saco", "--out", tmp_path / "s", "--since", "2030-01-01", "--until", "2020-01-01")
    assert dates.exit_code == 1 and "since must come before until" in dates.output
    assert not (tmp_path / "s").exists()
