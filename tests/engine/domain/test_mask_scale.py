"""A mask made at a bounded size, encoded at the image's original size by nearest neighbour."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from engine.domain.mask_scale import decode_at, encode_at, nearest_index
from engine.domain.masks import MaskError, decode_mask, encode_mask


def test_integer_factors_repeat_each_pixel() -> None:
    rng = np.random.default_rng(1)
    small = rng.random((7, 5)) > 0.5
    rle = encode_at(small, 21, 10)
    assert (rle.height, rle.width) == (21, 10)
    assert np.array_equal(decode_mask(rle), np.repeat(np.repeat(small, 3, axis=0), 2, axis=1))
    assert rle.area == int(small.sum()) * 6


def test_any_factor_equals_pil_nearest_resize() -> None:
    rng = np.random.default_rng(2)
    small = rng.random((37, 53)) > 0.6
    for height, width in [(100, 141), (38, 54), (1000, 7), (20, 30)]:  # up, barely up, mixed, down
        expected = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST))
        assert np.array_equal(decode_mask(encode_at(small, height, width)), expected), (height, width)


def test_box_and_area_are_in_original_pixels() -> None:
    small = np.zeros((100, 150), dtype=bool)
    small[10:20, 30:60] = True
    rle = encode_at(small, 4000, 6000)  # ×40
    assert rle.bbox == (1200.0, 400.0, 1200.0, 400.0)
    assert rle.area == 1200 * 400


def test_same_size_is_the_plain_encoding_and_non_bool_masks_count_non_zero() -> None:
    mask = np.eye(6, 9, dtype=np.uint8) * 3
    assert encode_at(mask, 6, 9) == encode_mask(mask != 0)
    assert decode_mask(encode_at(mask, 12, 18)).sum() == 6 * 4


def test_nearest_index_stays_inside_the_source() -> None:
    for source, target in [(1, 9), (9, 1), (2048, 8000), (7, 7)]:
        index = nearest_index(source, target)
        assert len(index) == target and index.min() >= 0 and index.max() <= source - 1


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(MaskError):
        encode_at(np.zeros((2, 2, 2), dtype=bool), 4, 4)
    with pytest.raises(MaskError):
        encode_at(np.zeros((2, 2), dtype=bool), 0, 4)


def test_decode_at_shows_a_stored_mask_at_the_model_side_size() -> None:
    rng = np.random.default_rng(4)
    full = rng.random((600, 900)) > 0.5
    rle = encode_mask(full)
    small = decode_at(rle, 171, 256)
    # the source pixel each target centre falls in, in exact arithmetic (PIL's float arithmetic
    # puts a centre lying exactly on a pixel edge, e.g. row 85 here, in the pixel before it)
    rows = [int(Fraction(2 * i + 1, 2) * Fraction(600, 171)) for i in range(171)]
    cols = [int(Fraction(2 * j + 1, 2) * Fraction(900, 256)) for j in range(256)]
    assert small.dtype == bool and np.array_equal(small, full[np.ix_(rows, cols)])
    assert np.array_equal(decode_at(rle, 600, 900), full)


def test_empty_and_full_masks() -> None:
    assert encode_at(np.zeros((3, 4), dtype=bool), 30, 40).area == 0
    full = encode_at(np.ones((3, 4), dtype=bool), 30, 40)
    assert full.area == 1200 and full.bbox == (0.0, 0.0, 40.0, 30.0)
