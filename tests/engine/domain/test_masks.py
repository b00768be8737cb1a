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
