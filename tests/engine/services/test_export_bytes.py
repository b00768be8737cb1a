"""The COCO export's bytes, pinned: against a plain reference encoder (the export's own two queries
read whole, grouped with ``itertools.groupby``, one sorted-keys ``orjson.dumps`` per annotation and
image — the straightforward form of the format) under several filters and splits, on both
databases; and a tiny hand-made database against its literal expected file. The export's writer is
tuned for speed (engine/services/export_formats.py); these tests say that tuning never changes
one byte of what it writes."""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection

from engine.db.models import Concept, Image, ImageConcept, Mask, ModelKind
from engine.db.session import get_engine, session_scope
from engine.domain.exports import SPLITS, split_of
from engine.services.export import ExportFilters, commit_or_discard, export_dataset
from engine.services.export_formats import _image_rows, _label_rows
from tests.factories import seed_labelled

SORTED = orjson.OPT_SORT_KEYS
INFO = {"description": "Data Engine export", "format": "coco"}


def reference_coco(conn: Connection, filters: ExportFilters) -> tuple[dict[str, bytes], dict[str, dict[str, int]]]:
    """Each split's expected ``instances_<split>.json`` and counts, built the plain way."""
    images = {r[0]: r for r in conn.execute(_image_rows(filters)).all()}
    labels = conn.execute(_label_rows(filters)).all()
    annotations: dict[str, list[bytes]] = {s: [] for s in SPLITS}
    entries: dict[str, list[bytes]] = {s: [] for s in SPLITS}
    counts = {s: Counter[str]() for s in SPLITS}
    concepts: dict[int, str] = {}
    for image_id, image_rows in groupby(labels, key=itemgetter(0)):
        image = images[image_id]
        split = split_of(image[1], filters.val_percent)
        negatives, partial, anns = [], [], []
        for _, pair_rows in groupby(image_rows, key=itemgetter(1)):
            rows = list(pair_rows)
            pair = rows[0]
            concepts[pair[2]] = pair[3]
            if pair[5]:
                negatives.append(pair[2])
                continue
            if not pair[6]:
                partial.append(pair[2])
            for m in rows:
                if m[7] is None:
                    continue
                anns.append(orjson.dumps({
                    "area": m[15], "bbox": [m[11], m[12], m[13], m[14]], "category_id": m[2], "id": m[7],
                    "image_id": m[0], "iscrowd": 1 if m[16] else 0,
                    "segmentation": {"counts": m[8], "size": [m[9], m[10]]}}, option=SORTED))
            counts[split]["positive_pairs"] += 1
            counts[split]["exhaustive_pairs"] += 1 if pair[6] else 0
        annotations[split].extend(anns)
        entries[split].append(orjson.dumps({
            "file_name": image[2], "height": image[4], "id": image[0], "neg_category_ids": sorted(negatives),
            "not_exhaustive_category_ids": sorted(partial), "sha256": image[1], "width": image[3]}, option=SORTED))
        counts[split]["images"] += 1
        counts[split]["annotations"] += len(anns)
        counts[split]["negative_pairs"] += len(negatives)
    categories = orjson.dumps([{"id": k, "name": concepts[k]} for k in sorted(concepts)], option=SORTED)
    files = {split: (b'{"annotations":[' + b",".join(annotations[split]) + b'],"categories":' + categories
                     + b',"images":[' + b",".join(entries[split]) + b'],"info":' + orjson.dumps(INFO, option=SORTED)
                     + b"}") for split in SPLITS}
    return files, {s: dict(c) for s, c in counts.items()}


def export(settings: Any, out: Path, filters: ExportFilters) -> dict[str, Any]:
    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, "coco", out, filters, force=True)
        commit_or_discard(s, result)
    return result.manifest


def tricky_values(settings: Any, ids: dict[str, int]) -> None:
    """Exported masks with values a hand-written encoder gets wrong: a crowd mask, fractional and
    tiny boxes, RLE counts with a backslash and a quote (JSON escapes), a non-ASCII concept."""
    with session_scope(settings.db_url) as s:
        m = s.get(Mask, ids["dog0_m0"])
        assert m is not None
        m.is_crowd, m.bbox_x, m.bbox_y, m.bbox_w, m.bbox_h = True, 10.25, 1e-05, 1 / 3, 1e16
        m.rle_counts = m.rle_counts + '\\"\\'
        dog = s.get(Concept, ids["dog"])
        assert dog is not None
        dog.text = "chien à \"poils\" longs\u2028"
        s.commit()


@pytest.mark.parametrize("filters", [
    ExportFilters(val_percent=0), ExportFilters(val_percent=50), ExportFilters(val_percent=100),
    ExportFilters(val_percent=30, label_source="human"), ExportFilters(val_percent=30, label_source="ai"),
    ExportFilters(val_percent=50, min_agreement=0.6), ExportFilters(val_percent=50, exhaustive_only=True),
], ids=["train", "half", "val", "human", "ai", "agreement", "exhaustive"])
def test_coco_bytes_equal_the_reference_encoder(settings, tmp_path, filters):
    with session_scope(settings.db_url) as s:
        ids = seed_labelled(s, settings.media_path)
    tricky_values(settings, ids)
    manifest = export(settings, tmp_path / "out", filters)
    with get_engine(settings.db_url).connect() as conn:
        expected, counts = reference_coco(conn, filters)
    for split in SPLITS:
        written = (tmp_path / "out" / f"instances_{split}.json").read_bytes()
        assert written == expected[split], split
        orjson.loads(written)
        assert manifest["files"][f"instances_{split}.json"]["sha256"] == hashlib.sha256(written).hexdigest()
        assert manifest["counts"][split] == counts[split]
    again = export(settings, tmp_path / "again", filters)
    assert again == manifest


GOLDEN_TRAIN = (
    b'{"annotations":[{"area":7,"bbox":[1.5,2.0,3.0,4.25],"category_id":1,"id":1,"image_id":1,"iscrowd":0,'
    b'"segmentation":{"counts":"a\\\\b\\"c","size":[16,32]}},{"area":9,"bbox":[0.0,0.0,32.0,16.0],"category_id":1,'
    b'"id":2,"image_id":1,"iscrowd":1,"segmentation":{"counts":"9","size":[16,32]}}],'
    b'"categories":[{"id":1,"name":"r\xc3\xa9d \\"cup\\""},{"id":2,"name":"plate"}],'
    b'"images":[{"file_name":"aa/one.png",'
    b'"height":16,"id":1,"neg_category_ids":[2],"not_exhaustive_category_ids":[1],"sha256":"' + b"0" * 64
    + b'","width":32}],"info":{"description":"Data Engine export","format":"coco"}}')


def test_a_tiny_export_matches_its_golden_file(settings, tmp_path):
    """One image (train split: its sha256 starts with 0… → bucket 0 ≥ val_percent 0), a partial
    positive pair with a plain and a crowd mask, a negative pair, and an undecided pair left out."""
    from engine.repositories.model_versions import get_or_create

    with session_scope(settings.db_url) as s:
        version = get_or_create(s, ModelKind.PROPOSER, "golden-proposer", "1")
        s.add_all([Concept(id=1, text='réd "cup"'), Concept(id=2, text="plate"), Concept(id=3, text="fork")])
        s.add(Image(id=1, sha256="0" * 64, phash=0, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0, width=32,
                    height=16, format="png", byte_size=10, storage_key="aa/one.png", source_uri="test://one"))
        s.flush()
        s.add_all([ImageConcept(id=1, image_id=1, concept_id=1, polarity="positive", origin="caption",
                                is_exhaustive=False, decided_by="human"),
                   ImageConcept(id=2, image_id=1, concept_id=2, polarity="negative", origin="caption",
                                is_exhaustive=True, decided_by="human"),
                   ImageConcept(id=3, image_id=1, concept_id=3, polarity="unknown", origin="caption")])
        s.flush()
        common = {"pair_id": 1, "model_version_id": version.id, "height": 16, "width": 32, "state": "accepted",
                  "decided_by": "human"}
        s.add_all([Mask(id=1, rle_counts='a\\b"c', bbox_x=1.5, bbox_y=2.0, bbox_w=3.0, bbox_h=4.25, area=7,
                        is_crowd=False, **common),
                   Mask(id=2, rle_counts="9", bbox_x=0.0, bbox_y=0.0, bbox_w=32.0, bbox_h=16.0, area=9,
                        is_crowd=True, **common),
                   Mask(id=3, rle_counts="5", bbox_x=0.0, bbox_y=0.0, bbox_w=1.0, bbox_h=1.0, area=1,
                        is_crowd=False, **{**common, "pair_id": 3, "state": "candidate", "decided_by": None})])
        s.commit()
    manifest = export(settings, tmp_path / "out", ExportFilters(val_percent=0))
    assert (tmp_path / "out" / "instances_train.json").read_bytes() == GOLDEN_TRAIN
    assert (tmp_path / "out" / "instances_val.json").read_bytes() == (
        b'{"annotations":[],"categories":[{"id":1,"name":"r\xc3\xa9d \\"cup\\""},{"id":2,"name":"plate"}],'
        b'"images":[],"info":{"description":"Data Engine export","format":"coco"}}')
    assert manifest["counts"] == {"train": {"images": 1, "annotations": 2, "positive_pairs": 1,
                                            "exhaustive_pairs": 0, "negative_pairs": 1}, "val": {}}
