"""The pure helpers the video verifiers' inputs are made with."""

from __future__ import annotations

import pytest
from PIL import Image

from engine.domain.video_render import GAP, contact_sheet, evenly_spaced, mean_probabilities


def test_evenly_spaced_keeps_both_ends_and_order():
    assert evenly_spaced(list(range(12)), 4) == [0, 4, 7, 11]
    assert evenly_spaced([3, 9, 20], 5) == [3, 9, 20]  # fewer than asked: all
    assert evenly_spaced(range(10), 1) == [4]
    with pytest.raises(ValueError):
        evenly_spaced([1, 2], 0)


def test_mean_probabilities_averages_and_normalises():
    mean = mean_probabilities([{"accept": 0.8, "reject": 0.2}, {"accept": 0.4, "reject": 0.6}])
    assert mean == pytest.approx({"accept": 0.6, "reject": 0.4})
    assert sum(mean_probabilities([{"accept": 1.0}, {"reject": 1.0}]).values()) == pytest.approx(1.0)


def test_contact_sheet_tiles_frames_and_moves_boxes_onto_their_tile():
    frames = [Image.new("RGB", (160, 120), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    sheet = contact_sheet(frames)
    assert sheet.image.size == (2 * 160 + GAP, 2 * 120 + GAP)  # 3 frames: a 2×2 grid
    assert sheet.image.getpixel((10, 10)) == (255, 0, 0)
    assert sheet.image.getpixel((160 + GAP + 10, 10)) == (0, 255, 0)
    assert sheet.image.getpixel((10, 120 + GAP + 10)) == (0, 0, 255)
    assert sheet.boxes(2, [(10, 20, 30, 40)]) == [(10, 120 + GAP + 20, 30, 40)]
    small = contact_sheet(frames, max_side=200)
    assert max(small.image.size) <= 200 and small.scale < 1
    x, y, w, h = small.boxes(1, [(160, 0, 0, 0)])[0]
    assert x == pytest.approx(small.offsets[1][0] + 160 * small.scale)
    with pytest.raises(ValueError):
        contact_sheet([frames[0], Image.new("RGB", (10, 10))])
