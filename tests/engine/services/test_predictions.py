import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import func, select

from engine.db.models import Image, ImageConcept, Mask, ModelKind, ModelVersion, PairOrigin
from engine.db.session import session_scope
from engine.services import predictions
from tests.engine.services.test_mine import mine_all
from tests.factories import jpeg_bytes, photo


def rle(h, w, box):
    arr = np.zeros((h, w), dtype=np.uint8, order="F")
    y0, y1, x0, x1 = box
    arr[y0:y1, x0:x1] = 1
    encoded = mask_utils.encode(arr)
    return {"size": [h, w], "counts": encoded["counts"].decode()}


@pytest.fixture
def image_id(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(photo(1, (40, 30))))
    mine_all(settings, src)
    with session_scope(settings.db_url) as s:
        return s.scalars(select(Image.id)).one()


def rows_for(image_id):
    return [
        {"image_id": image_id, "phrase": "Red Balls", "score": 0.8, "segmentation": rle(30, 40, (2, 10, 3, 12))},
        {"image_id": image_id, "category_id": 7, "score": 0.4, "segmentation": [[1, 1, 20, 1, 20, 20]]},
        {"image_id": 999999, "phrase": "cat", "segmentation": rle(30, 40, (0, 5, 0, 5))},
        {"image_id": image_id, "phrase": "cat", "segmentation": rle(31, 40, (0, 5, 0, 5))},
        {"image_id": image_id, "phrase": "it", "segmentation": rle(30, 40, (0, 5, 0, 5))},
        {"image_id": image_id, "phrase": "cat", "score": 7, "segmentation": rle(30, 40, (0, 5, 0, 5))},
        {"image_id": image_id, "category_id": 3, "segmentation": rle(30, 40, (0, 5, 0, 5))},
        {"image_id": image_id, "phrase": "cat", "segmentation": rle(30, 40, (0, 0, 0, 0))},
        "not a row",
    ]


def test_import_reports_each_bad_row_and_imports_the_rest(settings, image_id):
    with session_scope(settings.db_url) as s:
        report = predictions.import_predictions(s, rows_for(image_id), model_name="detector-x", version="v1",
                                                categories={7: "wooden table"})
    assert (report.rows, report.masks, report.pairs) == (9, 2, 2)
    reasons = dict(report.errors)
    assert reasons[2] == "unknown image_id 999999"
    assert "does not match the image size" in reasons[3]
    assert reasons[4].startswith("phrase 'it' dropped: ungroundable")
    assert reasons[5] == "score 7 is not a number in 0..1"
    assert reasons[6] == "category_id 3 is not in the categories given"
    assert reasons[7] == "empty mask"
    assert reasons[8] == "not an object"
    with session_scope(settings.db_url) as s:
        version = s.scalars(select(ModelVersion).where(ModelVersion.kind == ModelKind.EXTERNAL)).one()
        assert (version.name, version.version) == ("detector-x", "v1")
        masks = s.scalars(select(Mask).where(Mask.model_version_id == version.id)).all()
        assert sorted(m.score for m in masks) == [0.4, 0.8]
        assert {p.origin for p in s.scalars(select(ImageConcept))} == {PairOrigin.EXTERNAL}
    with session_scope(settings.db_url) as s:  # the same file again adds nothing
        again = predictions.import_predictions(s, rows_for(image_id), model_name="detector-x", version="v1",
                                               categories={7: "wooden table"})
    assert again.masks == 0 and again.skipped_existing == 2


def test_strict_imports_nothing_on_a_bad_row(settings, image_id):
    with session_scope(settings.db_url) as s:
        report = predictions.import_predictions(s, rows_for(image_id), model_name="m", version="1", strict=True)
    assert report.masks == 0 and report.errors
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Mask)) == 0


def test_file_level_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(predictions.PredictionFileError, match="cannot read"):
        predictions.load_rows(bad)
    bad.write_text(json.dumps({"x": 1}))
    with pytest.raises(predictions.PredictionFileError, match="expected a JSON list"):
        predictions.load_rows(bad)


def test_malformed_masks_fail_alone_with_their_reason(settings, image_id):
    """Issue #15: each malformed mask is its own row's error, before pycocotools sees it; the good
    row is imported."""
    good = {"image_id": image_id, "phrase": "cat", "segmentation": rle(30, 40, (0, 5, 0, 5))}
    bad = [
        {"size": [30, 40], "counts": "95"},  # counts summing to 14, not 1200
        {"size": [30, 40], "counts": "1o"},  # ends inside a number
        {"size": [30, 40], "counts": "0@" + "0" * 5},  # a negative count
        {"size": [30, 40], "counts": "garbage!"},
        {"size": [30, 40], "counts": [1000, 100]},
        {"size": [30, 40], "counts": "1" * 20_000},  # too long for 1200 pixels
        [[0, 0, 1e12, 0, 1e12, 1e12]],  # a polygon far outside the image
    ]
    rows = [good] + [{"image_id": image_id, "phrase": "dog", "segmentation": seg} for seg in bad]
    with session_scope(settings.db_url) as s:
        report = predictions.import_predictions(s, rows, model_name="hostile", version="1")
    assert report.masks == 1 and [i for i, _ in report.errors] == list(range(1, len(rows)))
    reasons = dict(report.errors)
    assert "sum to 14, not height × width = 1200" in reasons[1]
    assert "ends inside a number" in reasons[2] and "negative" in reasons[3] and "alphabet" in reasons[4]
    assert "sum to 1100" in reasons[5] and "too long" in reasons[6] and "outside" in reasons[7]
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Mask)) == 1
