import numpy as np
import pytest
from pycocotools import mask as mask_utils

from engine.domain.masks import MaskError, from_coco_segmentation


def test_polygon_to_rle():
    mask = from_coco_segmentation([[10, 10, 30, 10, 30, 20, 10, 20]], 40, 50)
    decoded = mask_utils.decode({"size": [40, 50], "counts": mask.counts.encode()})
    assert decoded.shape == (40, 50)
    assert mask.area == int(decoded.sum()) > 150
    assert mask.bbox[0] == pytest.approx(10, abs=1) and mask.bbox[2] == pytest.approx(20, abs=1)


def test_uncompressed_and_compressed_rle():
    arr = np.zeros((6, 8), dtype=np.uint8, order="F")
    arr[1:4, 2:5] = 1
    compressed = mask_utils.encode(arr)
    via_str = from_coco_segmentation({"size": [6, 8], "counts": compressed["counts"].decode()}, 6, 8)
    assert via_str.area == 9 and via_str.bbox == (2.0, 1.0, 3.0, 3.0)
    # uncompressed RLE: column-major run lengths starting with zeros
    flat = arr.flatten(order="F")
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    via_list = from_coco_segmentation({"size": [6, 8], "counts": runs}, 6, 8)
    assert via_list.counts == via_str.counts


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [5, 5], "counts": "abc"}, "does not match the image size"),
        ([[1, 2]], "no polygon"),
        ("nonsense", "unsupported segmentation"),
    ],
)
def test_bad_segmentations(segmentation, message):
    with pytest.raises(MaskError, match=message):
        from_coco_segmentation(segmentation, 6, 8)


def test_encode_decode_round_trip_and_box():
    from engine.domain.masks import decode_mask, encode_mask

    arr = np.zeros((30, 40), dtype=bool)
    arr[5:15, 10:30] = True
    arr[20, 1] = True
    m = encode_mask(arr)
    assert (m.height, m.width, m.area) == (30, 40, 201)
    assert m.bbox == (1.0, 5.0, 29.0, 16.0)
    assert (decode_mask(m) == arr).all()
    with pytest.raises(MaskError, match="2-D"):
        encode_mask(np.zeros((2, 3, 4), dtype=bool))


def test_dedup_by_iou_keeps_the_best_of_overlapping_masks():
    from engine.domain.masks import dedup_by_iou, encode_mask, iou_matrix

    a = np.zeros((20, 20), dtype=bool)
    a[2:12, 2:12] = True
    b = a.copy()
    b[2, 2:12] = False  # IoU(a, b) = 0.9
    c = np.zeros((20, 20), dtype=bool)
    c[14:18, 14:18] = True
    empty = np.zeros((20, 20), dtype=bool)
    masks = [encode_mask(x) for x in (a, b, c, empty)]
    assert iou_matrix(masks[:1], masks[1:2])[0, 0] == pytest.approx(0.9)
    assert dedup_by_iou(masks, [0.6, 0.9, 0.2, 0.99], threshold=0.8) == [1, 2]
    assert dedup_by_iou(masks, [0.6, 0.9, 0.2, 0.99], threshold=0.95) == [1, 0, 2]
    assert dedup_by_iou([], [], 0.5) == []


def test_encode_mask_reads_bool_uint8_and_strided_arrays_alike():
    """A bool mask is read as bytes without a conversion copy; the RLE is the same whatever the dtype
    or memory layout (a strided view, column order)."""
    from engine.domain.masks import decode_mask, encode_mask

    rng = np.random.default_rng(0)
    big = rng.random((60, 80)) > 0.6
    arr = big[::2, ::2]  # a strided, non-contiguous view
    expected = encode_mask(arr.astype(np.uint8))
    for variant in (arr, np.ascontiguousarray(arr), np.asfortranarray(arr), arr.astype(np.int64)):
        got = encode_mask(variant)
        assert (got.counts, got.area, got.bbox) == (expected.counts, expected.area, expected.bbox)
    assert (decode_mask(expected) == arr).all()
