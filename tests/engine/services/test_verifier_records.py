"""A verifier export read back as training examples (built on access), bad records skipped or refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.db.session import session_scope
from engine.ports import MaskQuery, PairQuery
from engine.services.export import commit_or_discard, export_dataset
from engine.services.export_rows import ExportFilters
from engine.services.verifier_records import RecordError, load_split, read_records
from engine.storage import LocalMediaStore
from tests.factories import seed_labelled


@pytest.fixture
def export_dir(settings, tmp_path):
    with session_scope(settings.db_url) as s:
        seed_labelled(s, settings.media_path)
    with session_scope(settings.db_url) as s:  # the export reads committed rows on its own connection
        result = export_dataset(s, settings, "verifier", tmp_path / "v", ExportFilters(label_source="human",
                                                                                      val_percent=0))
        commit_or_discard(s, result)
    return result.out_dir, result.manifest


def test_examples_are_the_verifier_questions(settings, export_dir):
    folder, manifest = export_dir
    store = LocalMediaStore(settings.media_path)
    mv = load_split(folder, "mv", "train", store)
    assert len(mv.records) == manifest["counts"]["train"]["mv"] and mv.skipped == []
    first = mv.examples[0]
    assert isinstance(first.query, MaskQuery) and first.answer == mv.records[0]["answer"]
    assert first.query.mask.shape == (first.query.image.height, first.query.image.width)
    assert first.query.mask.sum() > 0 and first.query.mask.dtype == np.bool_
    assert [e.answer for e in mv.examples[0:2]] == [r["answer"] for r in mv.records[:2]]
    assert mv.examples.queries[1].phrase == mv.records[1]["phrase"]
    ev = load_split(folder, "ev", "train", store)
    boxed = [(e.query, r) for e, r in zip(ev.examples, ev.records, strict=True)]
    assert all(isinstance(q, PairQuery) and len(q.boxes) == len(r["masks"]) for q, r in boxed)


def test_unreadable_records_are_skipped_and_malformed_files_refused(settings, export_dir, tmp_path):
    folder, _ = export_dir
    store = LocalMediaStore(settings.media_path)
    lines = (folder / "mv.train.jsonl").read_text().splitlines()
    good = json.loads(lines[0])
    lost = {**good, "pair_id": -1, "image": {**good["image"], "file_name": "ab/gone.png"}}
    bad = {**good, "pair_id": -2, "masks": [{"size": good["masks"][0]["size"], "counts": "\x01\x02"}]}
    other = tmp_path / "edited"
    other.mkdir()
    (other / "mv.train.jsonl").write_text("\n".join([lines[0], json.dumps(lost), json.dumps(bad)]) + "\n")
    split = load_split(other, "mv", "train", store)
    assert [r["pair_id"] for r in split.records] == [good["pair_id"]]
    assert split.skipped[0].startswith("pair -1: cannot read stored image ab/gone.png")
    assert split.skipped[1].startswith("pair -2: bad mask")
    (other / "mv.train.jsonl").write_text(json.dumps({**good, "answer": "reject_missing"}) + "\n")
    with pytest.raises(RecordError, match="not a mv answer"):
        list(read_records(other, "mv", "train"))
    (other / "mv.train.jsonl").write_text("{not json\n")
    with pytest.raises(RecordError, match="line 1: not JSON"):
        list(read_records(other, "mv", "train"))
    with pytest.raises(RecordError, match="is missing"):
        list(read_records(other, "ev", "val"))
