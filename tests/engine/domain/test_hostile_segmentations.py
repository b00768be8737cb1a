"""COCO segmentations are validated before pycocotools' native code sees them (issue 16): hostile
coordinates, inconsistent RLE and masks outside the image are MaskErrors with a reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from engine.domain.masks import (
    MAX_POLYGON_VALUES,
    MAX_RLE_RUNS,
    MaskError,
    check_segmentation_shape,
    from_coco_segmentation,
)

H, W = 48, 64
SQUARE = [[2, 2, 20, 2, 20, 20, 2, 20]]


@pytest.mark.parametrize(("segmentation", "message"), [
    ([[1e9, 1e9, 2e9, 1e9, 2e9, 2e9]], "lies outside the 48×64 image"),
    ([[-1e9, 5, 10, 5, 10, 10]], "lies outside"),
    ([[1, float("nan"), 2, 2, 3, 3]], "holds nan, not a finite number"),
    ([[1, float("inf"), 2, 2, 3, 3]], "holds inf, not a finite number"),
    ([[1, True, 2, 2, 3, 3]], "holds True"),
    ([[1, "2", 2, 2, 3, 3]], "holds str"),
    ([[1, None, 2, 2, 3, 3]], "holds NoneType"),
    ([[1, 2, 3, 4, 5, 6, 7]], "odd count"),
    ([[1, 2, 3, 4]], "no polygon of 3 or more points"),
    ([1, 2, 3, 4, 5, 6], "polygon 0 is a int, not a list"),
    ([SQUARE[0], {"a": 1}], "polygon 1 is a dict"),
    ([], "no polygon"),
    ([[0.5] * (MAX_POLYGON_VALUES + 2)], "more than 200,000 numbers"),
    ({"size": [H, W], "counts": [H * W + 5]}, "sum to"),  # overshooting counts
    ({"size": [H, W], "counts": [10, 20]}, "sum to"),
    ({"size": [H, W], "counts": [-5, H * W + 5]}, "negative"),
    ({"size": [H, W], "counts": "0" * 10}, "sum to"),
    ({"size": [H, W + 1], "counts": [H * (W + 1)]}, "does not match the image size"),
    ({"size": "48x64", "counts": [1]}, "does not match"),
    ({"counts": {"a": 1}, "size": [H, W]}, "RLE counts of type dict"),
    ("polygon", "unsupported segmentation of type str"),
    (None, "unsupported segmentation of type NoneType"),
])
def test_hostile_segmentations_are_refused(segmentation, message):
    with pytest.raises(MaskError, match=message):
        from_coco_segmentation(segmentation, H, W)


def test_a_polygon_too_costly_to_rasterise_is_refused():
    """Inside the image and under the count of numbers, but its edges zigzag across a large image:
    pycocotools would allocate memory for every pixel of every edge (GBs)."""
    side = 4000
    zigzag = [v for n in range(2000) for v in ((0 if n % 2 else side - 1), n * 2)]
    with pytest.raises(MaskError, match="perimeter of 7,99.* pixels, more than 2,000,000"):
        from_coco_segmentation([zigzag], side, side)
    detailed = [v for a in np.linspace(0, 2 * np.pi, 5000, endpoint=False)
                for v in (2000 + 1500 * np.cos(a), 2000 + 1500 * np.sin(a))]  # a fine outline is fine
    assert from_coco_segmentation([detailed], side, side).area > 0


def test_an_inconsistent_rle_is_refused_though_pycocotools_takes_it():
    """The case seen: counts that overshoot the image gave pycocotools a box outside the image."""
    rle = {"size": [H, W], "counts": [10, H * W]}
    box = mask_utils.toBbox(mask_utils.frPyObjects(rle, H, W))
    assert box[0] + box[2] > W  # pycocotools does not check: a box wider than the image
    with pytest.raises(MaskError, match=f"sum to {10 + H * W}, not height × width = {H * W}"):
        from_coco_segmentation(rle, H, W)


def test_a_mask_wholly_outside_the_image_is_empty_and_refused_when_asked():
    margin = [[-0.9, -0.9, -0.1, -0.9, -0.1, -0.1]]  # inside the rounding margin, covering no pixel
    assert from_coco_segmentation(margin, H, W).area == 0  # other callers (predictions) keep empty masks
    with pytest.raises(MaskError, match="the mask is empty"):
        from_coco_segmentation(margin, H, W, allow_empty=False)
    with pytest.raises(MaskError, match="the mask is empty"):
        from_coco_segmentation({"size": [H, W], "counts": [H * W]}, H, W, allow_empty=False)
    mask = from_coco_segmentation(SQUARE, H, W, allow_empty=False)
    assert mask.area > 0 and mask.bbox[0] >= 0 and mask.bbox[0] + mask.bbox[2] <= W


def test_shape_check_needs_no_image():
    check_segmentation_shape(SQUARE)
    check_segmentation_shape({"size": [H, W], "counts": "abc"})
    check_segmentation_shape({"size": [H, W], "counts": [H * W]})
    for bad, message in [
        ({"size": [H, W], "counts": "é"}, "outside COCO's alphabet"),
        ({"size": [H, W], "counts": "ab\x00"}, "outside COCO's alphabet"),
        ({"size": [H, W], "counts": "ab~"}, "outside COCO's alphabet"),
        ({"size": [H, W], "counts": [1.0]}, "must be integers"),
        ({"size": [0, W], "counts": [0]}, "not two positive integers"),
        ({"size": [H], "counts": [0]}, r"not \[height, width\]"),
        ({"size": [H, W], "counts": [0] * (MAX_RLE_RUNS + 1)}, "more than 16,000,000 runs"),
        ({"size": [H, W]}, "unsupported segmentation"),
    ]:
        with pytest.raises(MaskError, match=message):
            check_segmentation_shape(bad)


def test_validated_input_never_crashes_the_process():
    """Every hostile polygon above goes through from_coco_segmentation in a child process: it must
    exit normally (a pycocotools crash would kill it with a signal)."""
    code = (
        "from engine.domain.masks import MaskError, from_coco_segmentation\n"
        "for seg in ([[1e9, 1e9, 2e9, 1e9, 2e9, 2e9]], [[1e300, -1e300, 0, 0, 5, 5]],"
        " [[2**63, 0, 0, 2**63, 5, 5]], {'size': [48, 64], 'counts': [2**40, 5]}):\n"
        "    try:\n        from_coco_segmentation(seg, 48, 64)\n"
        "    except MaskError:\n        pass\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-2000:]
    assert np.isfinite(from_coco_segmentation(SQUARE, H, W).bbox).all()
