"""``import-predictions --images/--job`` (which images an import ran on) and ``report
--label-source/--predictions-out`` as an operator runs them, on tests.factories.seed_labelled."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dataengine.cli.main import cli
from engine.db.models import ItemStatus, JobItem, JobStatus, Mask, MiningJob
from engine.db.session import session_scope
from tests.factories import seed_labelled
from tests.saco_oracle import official_scores


@pytest.fixture
def env(cli_database, tmp_path, monkeypatch):
    database_url = cli_database
    monkeypatch.delenv("DATAENGINE_BROKER_URL", raising=False)
    with session_scope(database_url) as s:
        ids = seed_labelled(s, tmp_path / "media")
        m0 = s.get(Mask, ids["dog0_m0"])
        ids["dog0_rle"] = {"size": [m0.height, m0.width], "counts": m0.rle_counts}
        job = MiningJob(name="night-run", source_uri="test://", source_kind="folder", status=JobStatus.DONE)
        s.add(job)
        s.flush()
        for image in ("img0", "img1", "img2", "img3"):
            s.add(JobItem(job_id=job.id, key=image, locator={}, status=ItemStatus.DONE, image_id=ids[image]))
    return ids


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_import_names_the_images_it_ran_on_and_report_writes_the_scored_files(env, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": env["img0"], "phrase": "dog", "score": 0.9,
                                    "segmentation": env["dog0_rle"]}]))
    images = tmp_path / "images.txt"
    images.write_text(f"# ran here too, found nothing\n{env['img2']}\n")
    done = invoke("import-predictions", results, "--model", "ext", "--version", "1", "--images", images)
    assert done.exit_code == 0, done.output
    assert "1 masks imported on 1 pairs" in done.output and "ran on 2 images" in done.output

    out = tmp_path / "scored"
    report = invoke("report", "--predictions-out", out)
    assert report.exit_code == 0, report.output
    assert "label source human" in report.output
    folders = {p.name.split("-", 1)[1]: p for p in out.iterdir()}
    assert set(folders) == {"test-proposer-1", "ext-1"}
    for folder in folders.values():
        assert f"wrote {folder}" in report.output
        ours = json.loads((folder / "scores.json").read_text())
        official = official_scores(folder / "ground_truth.json", folder / "predictions.json")
        assert (ours["cgF1"], ours["pmF1"], ours["IL_MCC"]) == pytest.approx(
            (official["cgF1"], official["pmF1"], official["IL_MCC"]), abs=1e-6)
    # ext: img0 dog (found), img0 cat (true negative), img2 dog (its two instances missed)
    ext = json.loads((folders["ext-1"] / "scores.json").read_text())
    assert ext["pairs"] == 3 and ext["il_counts"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 1}

    # under the AI's decisions the ground truth is img1 cat (a negative the EV decided): the import
    # did not run on img1, so only the proposer is scored
    ai_out = tmp_path / "scored-ai"
    by_ai = invoke("report", "--label-source", "ai", "--predictions-out", ai_out)
    assert by_ai.exit_code == 0, by_ai.output
    assert [p.name.split("-", 1)[1] for p in ai_out.iterdir()] == ["test-proposer-1"]
    assert json.loads((next(ai_out.iterdir()) / "scores.json").read_text())["pairs"] == 1


def test_import_ran_on_a_jobs_images(env, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": env["img0"], "phrase": "dog", "segmentation": env["dog0_rle"]}]))
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([env["img0"]]))
    done = invoke("import-predictions", results, "--model", "ext2", "--job", "night-run", "--images", ids)
    assert done.exit_code == 0, done.output
    assert "ran on 4 images" in done.output


def test_import_refuses_unknown_images_and_jobs(env, tmp_path):
    results = tmp_path / "results.json"
    results.write_text("[]")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("999999\n")
    bad = invoke("import-predictions", results, "--model", "x", "--images", unknown)
    assert bad.exit_code == 1 and "1 of the images named are not here (first: 999999)" in bad.output
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("img-7\n")
    bad = invoke("import-predictions", results, "--model", "x", "--images", garbage)
    assert bad.exit_code == 1 and "'img-7' is not an image id" in bad.output
    bad = invoke("import-predictions", results, "--model", "x", "--job", "no-such-job")
    assert bad.exit_code == 1 and "no mining job 'no-such-job'" in bad.output
