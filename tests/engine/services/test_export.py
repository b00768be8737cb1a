"""Exports on both databases: COCO read by pycocotools (loadRes, COCOeval), SA-Co fields and
negatives, the verifier records, filters, determinism, refusal of a non-empty folder, and a crash
mid-export leaving nothing behind."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sqlalchemy import func, select

from engine.db.models import DatasetSnapshot, Image, ItemStatus, JobItem, JobStatus, MiningJob
from engine.db.session import session_scope
from engine.domain.exports import ExportSpecError, split_of
from engine.services.export import (
    ExportError,
    ExportFilters,
    commit_or_discard,
    export_dataset,
    export_verifier,
    resolve_jobs,
    verify_files,
)
from tests.factories import seed_labelled

VERIFIER_KEYS = {"task", "split", "pair_id", "mask_id", "phrase", "image", "masks", "answer", "target", "label",
                 "label_source", "verdict_id", "model_version_id"}


@pytest.fixture
def ids(settings):
    with session_scope(settings.db_url) as s:
        return seed_labelled(s, settings.media_path)


def run(settings, fmt, out, filters=None, **kwargs):
    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, fmt, out, filters or ExportFilters(val_percent=0), **kwargs)
        commit_or_discard(s, result)
    return result


def snapshots(settings):
    with session_scope(settings.db_url) as s:
        return s.scalar(select(func.count()).select_from(DatasetSnapshot))


def coco_of(path: Path) -> COCO:
    return COCO(str(path))


def test_coco_reads_in_pycocotools_and_evaluates(settings, ids, tmp_path):
    result = run(settings, "coco", tmp_path / "out")
    coco = coco_of(tmp_path / "out" / "instances_train.json")
    assert sorted(coco.getCatIds()) == sorted([ids["dog"], ids["cat"]])  # bird: never labelled
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"dog", "cat"}
    expected = {ids[k] for k in ("dog0_m0", "dog1_m0", "dog1_m1", "dog2_m0", "dog2_drawn", "dog3_m0")}
    assert set(coco.getAnnIds()) == expected
    images = {img["id"]: img for img in coco.dataset["images"]}
    assert images[ids["img0"]]["neg_category_ids"] == [ids["cat"]]
    assert images[ids["img1"]]["neg_category_ids"] == [ids["cat"]]
    assert images[ids["img1"]]["not_exhaustive_category_ids"] == [ids["dog"]]  # AI-accepted masks only
    assert images[ids["img0"]]["not_exhaustive_category_ids"] == []
    assert images[ids["img3"]]["not_exhaustive_category_ids"] == [ids["dog"]]
    for ann in coco.dataset["annotations"]:
        img = images[ann["image_id"]]
        decoded = mask_utils.decode(coco.annToRLE(ann))
        assert decoded.shape == (img["height"], img["width"])
        assert int(decoded.sum()) == ann["area"] > 0
        ys, xs = np.nonzero(decoded)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["category_id"] == ids["dog"]
    # predictions equal to the ground truth: loadRes takes them and COCOeval gives AP 1
    predictions = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
                    "score": 0.9} for a in coco.dataset["annotations"]]
    evaluation = COCOeval(coco, coco.loadRes(predictions), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    assert result.manifest["counts"]["train"] == {"images": 4, "annotations": 6, "positive_pairs": 4,
                                                  "exhaustive_pairs": 2, "negative_pairs": 2}
    assert verify_files(tmp_path / "out", result.manifest) == []
    names = {v["name"] for v in result.manifest["model_versions"]}
    assert {"test-proposer", "source:human-annotation"} <= names


def test_saco_fields_and_negatives(settings, ids, tmp_path):
    run(settings, "saco", tmp_path / "out")
    coco = coco_of(tmp_path / "out" / "saco_train.json")
    entries = {img["id"]: img for img in coco.dataset["images"]}
    assert set(entries) == {ids[k] for k in ("dog0", "cat0", "dog1", "cat1", "dog2", "dog3")}
    for negative in ("cat0", "cat1"):
        entry = entries[ids[negative]]
        assert coco.getAnnIds(imgIds=[entry["id"]]) == []
        assert (entry["text_input"], entry["is_instance_exhaustive"], entry["is_pixel_exhaustive"]) == ("cat", 1, 1)
    assert (entries[ids["dog0"]]["is_instance_exhaustive"], entries[ids["dog0"]]["is_pixel_exhaustive"]) == (1, 1)
    assert (entries[ids["dog1"]]["is_instance_exhaustive"], entries[ids["dog1"]]["is_pixel_exhaustive"]) == (0, 0)
    assert entries[ids["dog2"]]["text_input"] == "dog"
    assert entries[ids["dog2"]]["original_image_id"] == ids["img2"]
    assert entries[ids["dog2"]]["queried_category"] == str(ids["dog"])
    assert sorted(coco.getAnnIds(imgIds=[ids["dog2"]])) == sorted([ids["dog2_m0"], ids["dog2_drawn"]])
    assert coco.getCatIds() == [1]
    for ann in coco.dataset["annotations"]:
        entry = entries[ann["image_id"]]
        w, h = entry["width"], entry["height"]
        rle = coco.annToRLE(ann)
        assert mask_utils.decode(rle).shape == (h, w)
        x, y, bw, bh = mask_utils.toBbox(rle).tolist()
        assert ann["bbox"] == pytest.approx([x / w, y / h, bw / w, bh / h])
        assert all(0.0 <= v <= 1.0 for v in ann["bbox"])
        assert ann["area"] == pytest.approx(mask_utils.area(rle) / (w * h))
        assert ann["source"] == ("ai" if ann["image_id"] == ids["dog1"] else "human")


def records(folder: Path) -> list[dict]:
    out = []
    for name in ("mv.train.jsonl", "mv.val.jsonl", "ev.train.jsonl", "ev.val.jsonl"):
        out += [json.loads(line) for line in (folder / name).read_text().splitlines()]
    return out


def test_verifier_records(settings, ids, tmp_path):
    with session_scope(settings.db_url) as s:
        result = export_verifier(s, settings, tmp_path / "out", ExportFilters(val_percent=0))
        commit_or_discard(s, result)
    rows = records(tmp_path / "out")
    assert all(set(r) == VERIFIER_KEYS and r["split"] == "train" for r in rows)
    mv = {r["mask_id"]: r for r in rows if r["task"] == "mv"}
    ev = {r["pair_id"]: r for r in rows if r["task"] == "ev"}
    assert (mv[ids["dog0_m0"]]["answer"], mv[ids["dog0_m0"]]["target"]) == ("accept", 1)
    assert (mv[ids["dog0_m1"]]["answer"], mv[ids["dog0_m1"]]["target"], mv[ids["dog0_m1"]]["label"]) == (
        "reject", 0, "reject")
    ai = mv[ids["dog1_m0"]]
    assert (ai["label_source"], ai["answer"], ai["model_version_id"]) == ("ai", "accept", ids["mv_version"])
    assert mv[ids["dog3_m0"]]["label_source"] == "human"  # a person's word beats the MV's
    assert (mv[ids["dog2_drawn"]]["answer"], mv[ids["dog2_drawn"]]["label"]) == ("accept", "corrected")
    assert ev[ids["dog0"]]["answer"] == "accept" and ev[ids["dog0"]]["label"] == "complete"
    assert len(ev[ids["dog0"]]["masks"]) == 1  # the rejected mask is not among the boxes
    absent = ev[ids["cat0"]]
    assert (absent["label"], absent["masks"], absent["answer"], absent["target"]) == ("not_present", [], "accept", 1)
    assert ev[ids["cat1"]]["label_source"] == "ai" and ev[ids["cat1"]]["model_version_id"] == ids["ev_version"]
    corrected = ev[ids["dog2"]]
    assert (corrected["label"], corrected["answer"], len(corrected["masks"])) == ("corrected", "accept", 2)
    for r in rows:
        for m in r["masks"]:
            h, w = m["size"]
            assert (h, w) == (r["image"]["height"], r["image"]["width"])
            assert mask_utils.decode({"size": m["size"], "counts": m["counts"].encode()}).sum() > 0
    assert result.manifest["counts"]["train"]["mv"] == len(mv)


def test_split_is_stable_by_image_hash(settings, ids, tmp_path):
    result = run(settings, "coco", tmp_path / "out", ExportFilters(val_percent=50))
    with session_scope(settings.db_url) as s:
        shas = dict(s.execute(select(Image.id, Image.sha256)).all())
    for split in ("train", "val"):
        data = json.loads((tmp_path / "out" / f"instances_{split}.json").read_text())
        assert all(split_of(shas[img["id"]], 50) == split for img in data["images"])
        assert {a["image_id"] for a in data["annotations"]} <= {img["id"] for img in data["images"]}
    assert sum(c["images"] for c in result.manifest["counts"].values()) == 4


@pytest.mark.parametrize("fmt", ["coco", "saco", "verifier"])
def test_same_filters_give_identical_files_and_one_snapshot(settings, ids, tmp_path, fmt):
    first = run(settings, fmt, tmp_path / "a", ExportFilters(val_percent=30))
    second = run(settings, fmt, tmp_path / "b", ExportFilters(val_percent=30))
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (second.snapshot_id, second.reused, first.reused) == (first.snapshot_id, True, False)
    assert snapshots(settings) == 1
    other = run(settings, fmt, tmp_path / "c", ExportFilters(val_percent=30, label_source="human"))
    assert other.snapshot_id != first.snapshot_id and snapshots(settings) == 2


def test_refuses_a_non_empty_folder_unless_forced(settings, ids, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        run(settings, "coco", out)
    assert (out / "keep.txt").read_text() == "mine" and snapshots(settings) == 0
    run(settings, "coco", out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["instances_train.json", "instances_val.json", "manifest.json"]


@pytest.mark.parametrize("fmt", ["coco", "saco", "verifier"])
def test_a_crash_mid_export_leaves_nothing(settings, ids, tmp_path, fmt):
    def crash(n):
        if n >= 3:
            raise OSError("disk full (injected)")

    with pytest.raises(OSError, match="injected"):
        run(settings, fmt, tmp_path / "out", progress=crash)
    assert list(tmp_path.glob("*out*")) == [] and list(tmp_path.glob(".*")) == []
    assert snapshots(settings) == 0
    # replacing an earlier export: a crash keeps the earlier one as it was
    good = run(settings, fmt, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(OSError, match="injected"):
        run(settings, fmt, tmp_path / "out", ExportFilters(val_percent=50), force=True, progress=crash)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert snapshots(settings) == 1 and verify_files(tmp_path / "out", good.manifest) == []


def counts(result):
    return result.manifest["counts"]["train"]


def test_filters(settings, ids, tmp_path):
    human = run(settings, "coco", tmp_path / "h", ExportFilters(val_percent=0, label_source="human"))
    data = json.loads((tmp_path / "h" / "instances_train.json").read_text())
    assert {a["id"] for a in data["annotations"]} == {ids[k] for k in ("dog0_m0", "dog2_m0", "dog2_drawn",
                                                                          "dog3_m0")}
    assert counts(human)["negative_pairs"] == 1  # the EV's negative is left out
    run(settings, "coco", tmp_path / "a", ExportFilters(val_percent=0, label_source="ai"))
    data = json.loads((tmp_path / "a" / "instances_train.json").read_text())
    assert {a["id"] for a in data["annotations"]} == {ids["dog1_m0"], ids["dog1_m1"]}
    assert [img["neg_category_ids"] for img in data["images"]] == [[ids["cat"]]]
    exhaustive = run(settings, "saco", tmp_path / "e", ExportFilters(val_percent=0, exhaustive_only=True))
    data = json.loads((tmp_path / "e" / "saco_train.json").read_text())
    assert {img["id"] for img in data["images"]} == {ids[k] for k in ("dog0", "cat0", "cat1", "dog2")}
    assert counts(exhaustive)["annotations"] == 3
    agreed = run(settings, "coco", tmp_path / "g", ExportFilters(val_percent=0, min_agreement=0.6))
    data = json.loads((tmp_path / "g" / "instances_train.json").read_text())
    assert ids["dog3_m0"] not in {a["id"] for a in data["annotations"]}  # MV reject vs a person's accept
    assert counts(agreed)["annotations"] == 5
    cats = run(settings, "coco", tmp_path / "c", ExportFilters(val_percent=0, concepts=("cat",)))
    assert (counts(cats)["negative_pairs"], counts(cats).get("annotations", 0)) == (2, 0)
    with pytest.raises(ExportSpecError, match="unknown concept"):
        run(settings, "coco", tmp_path / "x", ExportFilters(concepts=("unicorn",)))


def test_job_and_date_filters(settings, ids, tmp_path):
    with session_scope(settings.db_url) as s:
        job = MiningJob(name="first", source_uri="/x", source_kind="folder", status=JobStatus.DONE)
        s.add(job)
        s.flush()
        s.add(JobItem(job_id=job.id, key="a", locator={}, status=ItemStatus.DONE, image_id=ids["img0"]))
        s.get(Image, ids["img2"]).created_at = dt.datetime(2020, 1, 1)
        job_ids = resolve_jobs(s, ["first"])
        assert resolve_jobs(s, [str(job.id)]) == job_ids
        with pytest.raises(ExportSpecError, match="no mining job"):
            resolve_jobs(s, ["nope"])
    by_job = run(settings, "coco", tmp_path / "j", ExportFilters(val_percent=0, jobs=job_ids))
    assert counts(by_job)["images"] == 1 and counts(by_job)["annotations"] == 1
    old = run(settings, "coco", tmp_path / "d", ExportFilters(val_percent=0, until=dt.datetime(2021, 1, 1)))
    assert counts(old)["images"] == 1 and counts(old)["annotations"] == 2
    new = run(settings, "coco", tmp_path / "n", ExportFilters(val_percent=0, since=dt.datetime(2021, 1, 1)))
    assert counts(new)["images"] == 3
    assert by_job.manifest["filters"]["jobs"] == list(job_ids)


def test_bad_filters_are_refused():
    with pytest.raises(ExportSpecError):
        ExportFilters(label_source="robots")
    with pytest.raises(ExportSpecError):
        ExportFilters(min_agreement=1.5)
    with pytest.raises(ExportSpecError):
        ExportFilters(val_percent=101)
    with pytest.raises(ExportSpecError):
        ExportFilters(since=dt.datetime(2022, 1, 1), until=dt.datetime(2021, 1, 1))


def test_a_name_used_for_other_contents_is_refused(settings, ids, tmp_path):
    run(settings, "coco", tmp_path / "a", name="v1")
    with pytest.raises(ExportError, match="other contents"):
        run(settings, "coco", tmp_path / "b", ExportFilters(label_source="human"), name="v1")
    assert not (tmp_path / "b").exists() and snapshots(settings) == 1


def test_the_database_refuses_to_change_a_snapshot(settings, ids, tmp_path):
    from sqlalchemy import update
    from sqlalchemy.exc import DatabaseError

    from engine.db.models import User

    result = run(settings, "coco", tmp_path / "out")
    for values in ({"manifest_sha256": "0" * 64}, {"name": "renamed"}, {"manifest": {}}):
        with pytest.raises(DatabaseError, match="immutable"):
            with session_scope(settings.db_url) as s:
                s.execute(update(DatasetSnapshot).where(DatasetSnapshot.id == result.snapshot_id).values(**values))
    with session_scope(settings.db_url) as s:  # forgetting who made it (the user is gone) is allowed
        s.execute(update(DatasetSnapshot).values(created_by_id=ids["user"]))
        s.execute(update(DatasetSnapshot).values(created_by_id=None))
        row = s.get(DatasetSnapshot, result.snapshot_id)
        assert row.manifest_sha256 == result.manifest_sha256 and row.name == result.name
        assert s.get(User, ids["user"]) is not None


def test_an_export_never_writes_into_the_media_store(settings, ids):
    for where in (settings.media_path / "exports", settings.media_path, settings.media_path.parent):
        with pytest.raises(ExportError, match="media store"):
            run(settings, "coco", where, force=True)
    assert any(settings.media_path.rglob("*.png")) and snapshots(settings) == 0


def test_a_label_no_verifier_answers_is_counted_not_fatal(settings, ids, tmp_path):
    from engine.db.models import ImageConcept, Mask, Verdict, VerdictKind, VerdictSource

    with session_scope(settings.db_url) as s:  # an AI verdict from a verifier with another choice list
        mask = s.get(Mask, ids["dog1_m0"])
        s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=mask.pair_id, mask_id=mask.id,
                      model_version_id=ids["mv_version"], label="maybe"))
        assert s.get(ImageConcept, mask.pair_id) is not None
    result = run(settings, "verifier", tmp_path / "out")
    assert result.manifest["counts"]["skipped"] == {"mv: ai label 'maybe' is no verifier answer": 1}
    mv = {r["mask_id"] for r in records(tmp_path / "out") if r["task"] == "mv"}
    assert ids["dog1_m0"] not in mv and ids["dog1_m1"] in mv


CHILD = """
import resource, signal, sys
from pathlib import Path
from engine.db.session import session_scope
from engine.services.export import ExportFilters, commit_or_discard, export_dataset
from engine.settings import Settings

url, out, media = sys.argv[1:4]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1500, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    with session_scope(url) as s:
        commit_or_discard(s, export_dataset(s, Settings(database_url=url, media_root=media), "coco", Path(out),
                                            ExportFilters(val_percent=0)))
except OSError as exc:
    print("FAILED", exc.errno)
"""


def test_a_file_system_that_refuses_writes_leaves_nothing(fresh_pg_url, tmp_path):
    """A real write failure: the export runs in a process whose files may not grow past 1,500
    bytes (RLIMIT_FSIZE), so the COCO file's write fails with EFBIG part-way."""
    import errno
    import subprocess
    import sys

    media = tmp_path / "media"
    with session_scope(fresh_pg_url) as s:
        seed_labelled(s, media)
    out = tmp_path / "exports" / "coco"
    done = subprocess.run([sys.executable, "-c", CHILD, fresh_pg_url, str(out), str(media)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert done.stdout.split() == ["FAILED", str(errno.EFBIG)], done.stderr[-2000:]
    assert list((tmp_path / "exports").iterdir()) == []
    with session_scope(fresh_pg_url) as s:
        assert s.scalar(select(func.count()).select_from(DatasetSnapshot)) == 0


def test_min_agreement_on_pairs(settings, ids, tmp_path):
    from engine.db.models import Verdict, VerdictKind, VerdictSource

    with session_scope(settings.db_url) as s:  # the EV thought instances were missing; a person said absent
        s.add(Verdict(kind=VerdictKind.EXHAUSTIVITY, source=VerdictSource.AI, pair_id=ids["cat0"],
                      model_version_id=ids["ev_version"], label="reject_missing"))
    loose = run(settings, "coco", tmp_path / "a", ExportFilters(val_percent=0, min_agreement=0.5))
    strict = run(settings, "coco", tmp_path / "b", ExportFilters(val_percent=0, min_agreement=0.6))
    assert (counts(loose)["negative_pairs"], counts(strict)["negative_pairs"]) == (2, 1)
    images = {i["id"]: i for i in json.loads((tmp_path / "b" / "instances_train.json").read_text())["images"]}
    assert images[ids["img0"]]["neg_category_ids"] == [] and images[ids["img1"]]["neg_category_ids"] == [ids["cat"]]
    # the verifier set drops the disputed EV example the same way
    run(settings, "verifier", tmp_path / "v", ExportFilters(val_percent=0, min_agreement=0.6))
    ev = {r["pair_id"] for r in records(tmp_path / "v") if r["task"] == "ev"}
    assert ids["cat0"] not in ev and ids["cat1"] in ev


@pytest.mark.parametrize("fmt", ["coco", "saco", "verifier"])
def test_an_export_with_nothing_in_it(settings, ids, tmp_path, fmt):
    result = run(settings, fmt, tmp_path / "out", ExportFilters(concepts=("bird",)))  # never labelled
    assert all(not any(per.values()) for per in result.manifest["counts"].values())
    for name in result.manifest["files"]:
        path = tmp_path / "out" / name
        if fmt == "verifier":
            assert path.read_bytes() == b""
        else:
            coco = coco_of(path)
            assert coco.getImgIds() == [] and coco.getAnnIds() == []


def test_an_ev_example_shows_the_boxes_the_ev_saw(settings, ids, tmp_path):
    from engine.db.models import Decider, ImageConcept, Verdict, VerdictKind, VerdictSource

    with session_scope(settings.db_url) as s:  # the EV saw one of the two masks and said some are missing
        s.add(Verdict(kind=VerdictKind.EXHAUSTIVITY, source=VerdictSource.AI, pair_id=ids["dog1"],
                      model_version_id=ids["ev_version"], label="reject_missing",
                      payload={"boxes": 1, "mask_ids": [ids["dog1_m0"]]}))
        pair = s.get(ImageConcept, ids["dog1"])
        pair.is_exhaustive, pair.decided_by = False, Decider.AI
    run(settings, "verifier", tmp_path / "out", ExportFilters(val_percent=0, label_source="ai"))
    ev = {r["pair_id"]: r for r in records(tmp_path / "out") if r["task"] == "ev"}
    example = ev[ids["dog1"]]
    assert (example["answer"], example["target"], example["label_source"]) == ("reject_missing", 0, "ai")
    mv = {r["mask_id"]: r for r in records(tmp_path / "out") if r["task"] == "mv"}
    assert example["masks"] == mv[ids["dog1_m0"]]["masks"]  # the one mask it saw, not both
