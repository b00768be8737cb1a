"""Masks are validated before storage and before pycocotools' native code sees them
(engine/domain/masks.py): malformed RLE strings and lists, wrong sizes, polygons far away."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from engine.domain.masks import (
    MAX_MASK_PIXELS,
    MaskError,
    RleMask,
    decode_counts_string,
    decode_mask,
    encode_mask,
    from_coco_segmentation,
    iou_matrix,
    validate_mask,
    validate_rle,
)


def _encoded(arr: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(arr.astype(np.uint8)))["counts"].decode()


def _runs(arr: np.ndarray) -> list[int]:
    runs, current, count = [], 0, 0
    for v in arr.flatten(order="F"):
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    return runs + [count]


def test_parsing_matches_pycocotools_on_random_masks():
    rng = np.random.default_rng(7)
    for trial in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        arr = rng.random((h, w)) < rng.random()
        if trial % 7 == 0:
            arr[:] = trial % 2
        counts = _encoded(arr)
        assert decode_counts_string(counts).tolist() == _runs(arr)
        validate_rle(counts, h, w)
        validate_rle(_runs(arr), h, w)


def test_large_counts_parse():
    arr = np.zeros((4000, 5000), dtype=bool)
    arr[1000:, 3000:] = True
    validate_rle(_encoded(arr), 4000, 5000)


@pytest.mark.parametrize(("counts", "message"), [
    ("garbage!!", "alphabet"),  # '!' is below '0'
    ("0\x7f", "alphabet"),
    ("ab€", "alphabet"),
    ("1o", "ends inside a number"),  # 'o' has the continuation bit: the C code reads past the end
    ("oooooo1", "more than 6 digits"),
    ("5", "sum to 5, not"),  # 5 pixels of 25
    ("95", "sum to"),  # counts not summing to height × width
    ("0@", "negative"),  # '@' is one digit with the sign bit: the second count is -16
])
def test_bad_compressed_counts_are_refused(counts, message):
    with pytest.raises(MaskError, match=message):
        validate_rle(counts, 5, 5)
    with pytest.raises(MaskError):
        from_coco_segmentation({"size": [5, 5], "counts": counts}, 5, 5)


def test_delta_wrapping_negative_is_refused():
    # counts 10, 5, 5, then a delta of -20 against the second: 5 - 20 < 0
    valid = _encoded(np.array([[0] * 10 + [1] * 5 + [0] * 10]).reshape(5, 5, order="F"))
    validate_rle(valid, 5, 5)
    with pytest.raises(MaskError):
        validate_rle(valid + "U0", 5, 5)


@pytest.mark.parametrize(("counts", "message"), [
    ([10, 10], "sum to 20"),
    ([30, -5], "negative"),
    ([10, 5.0, 10], "integers"),
    ([10, True, 14], "integers"),
    ([1] * 27, "more than 26"),
    ([0] * 30 + [25], "more than 26"),  # zero runs do not make it unbounded
])
def test_bad_uncompressed_counts_are_refused(counts, message):
    with pytest.raises(MaskError, match=message):
        from_coco_segmentation({"size": [5, 5], "counts": counts}, 5, 5)


def test_wrong_size_and_too_long_are_refused():
    counts = _encoded(np.ones((5, 5), dtype=bool))
    with pytest.raises(MaskError, match="does not match"):
        from_coco_segmentation({"size": [5, 6], "counts": counts}, 5, 5)
    with pytest.raises(MaskError, match="sum to 25, not height × width = 30"):
        validate_rle(counts, 5, 6)
    with pytest.raises(MaskError, match="too long"):
        validate_rle("1" * 1000, 5, 5)
    with pytest.raises(MaskError, match="exceeds"):
        validate_rle("0", MAX_MASK_PIXELS, 2)
    for size in ((0, 5), (5, -1), (True, 5), (5.0, 5)):
        with pytest.raises(MaskError):
            validate_rle(counts, *size)


@pytest.mark.parametrize("polygons", [
    [[0, 0, 1e12, 0, 1e12, 1e12]],  # rasterising it point by point would take terabytes
    [[0, 0, 10, 0, 10, -50]],
    [[0, 0, 10, 0, 10, float("nan")]],
    [[0, 0, 10, 0, 10, "5"]],
    [[0, 0, 10, 0, 10, 5, 3]],  # odd count of numbers
])
def test_bad_polygons_are_refused(polygons):
    with pytest.raises(MaskError):
        from_coco_segmentation(polygons, 20, 20)


def test_polygon_on_the_border_is_kept():
    mask = from_coco_segmentation([[0, 0, 20, 0, 20, 20, 0, 20]], 20, 20)
    assert mask.area == 400


def test_native_code_gets_only_valid_masks():
    good = encode_mask(np.ones((5, 5), dtype=bool))
    bad = RleMask("95", 5, 5, (0, 0, 5, 5), 25)
    with pytest.raises(MaskError):
        validate_mask(bad)
    with pytest.raises(MaskError):
        decode_mask(bad)
    with pytest.raises(MaskError):
        iou_matrix([good], [bad])
    assert iou_matrix([good], [good])[0, 0] == 1.0
