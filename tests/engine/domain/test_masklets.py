"""Masklets as compressed RLE, windows over a video and stitching object ids across windows (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.domain.masklets import (
    IdStitcher,
    Masklet,
    MaskletBuilder,
    Track,
    cut,
    encode_frame,
    evenly_spaced,
    pick_frames,
    stitch,
    track_iou,
    tracks,
    windows,
)
from engine.domain.masks import RleMask, decode_mask, encode_mask

H, W = 30, 40


def square(x: int, y: int, side: int = 10) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y:y + side, x:x + side] = True
    return mask


def rle(x: int, y: int, side: int = 10) -> RleMask:
    return encode_mask(square(x, y, side))


# --- building masklets -------------------------------------------------------------------------------


def test_the_builder_keeps_each_objects_frames_compressed_and_skips_empty_masks() -> None:
    builder = MaskletBuilder()
    assert builder.add(0, 7, square(0, 0), 0.9, phrase_index=1) is not None
    assert builder.add(1, 7, np.zeros((H, W), dtype=bool), 0.8) is None  # absent on frame 1
    builder.add(2, 7, square(2, 0, 12), 0.6)
    builder.add(1, 3, square(20, 10), 0.5)

    by_id = {m.object_id: m for m in builder.masklets()}
    assert set(by_id) == {3, 7}
    seven = by_id[7]
    assert [f.frame_index for f in seven.frames] == [0, 2]
    assert seven.phrase_index == 1  # the phrase of its first frame
    assert (seven.first_frame, seven.last_frame) == (0, 2)
    assert seven.largest.frame_index == 2 and seven.largest.mask.area == 144
    assert seven.mean_score == pytest.approx(0.75)
    assert np.array_equal(decode_mask(seven.frames[0].mask), square(0, 0))
    assert seven.frames[0].mask.bbox == (0.0, 0.0, 10.0, 10.0)


def test_the_builder_refuses_frames_out_of_order_and_drops_short_masklets() -> None:
    builder = MaskletBuilder(min_frames=2)
    builder.add(3, 1, square(0, 0), 0.5)
    with pytest.raises(ValueError, match="after frame 3"):
        builder.add(3, 1, square(0, 0), 0.5)
    builder.add(4, 1, square(1, 0), 0.5)
    builder.add(0, 2, square(5, 5), 0.5)  # one frame only
    assert [m.object_id for m in builder.masklets()] == [1]
    assert len(builder) == 2


def test_largest_frame_prefers_the_earliest_of_equal_areas() -> None:
    m = Masklet(1, 0, (encode_frame(4, square(0, 0), 0.1), encode_frame(5, square(9, 9), 0.2)))
    assert m.largest.frame_index == 4
    with pytest.raises(ValueError):
        Masklet(1, 0, ())


# --- choosing and cutting frames ----------------------------------------------------------------------


@pytest.mark.parametrize(("count", "n", "expected"), [
    (10, 4, [0, 3, 6, 9]), (3, 5, [0, 1, 2]), (5, 1, [2]), (0, 3, []), (7, 2, [0, 6]), (4, 0, []),
])
def test_evenly_spaced_positions(count: int, n: int, expected: list[int]) -> None:
    assert evenly_spaced(count, n) == expected


def _masklet(frames: list[int]) -> Masklet:
    return Masklet(5, 0, tuple(encode_frame(i, square(i, 0), 0.5) for i in frames))


def test_pick_frames_spreads_over_the_masklets_own_frames() -> None:
    m = _masklet([2, 3, 10, 11, 12, 30])
    assert [f.frame_index for f in pick_frames(m, 3)] == [2, 11, 30]
    assert [f.frame_index for f in pick_frames(m, 10)] == [2, 3, 10, 11, 12, 30]


def test_cut_keeps_a_frame_range() -> None:
    m = _masklet([2, 3, 10, 11, 12, 30])
    kept = cut(m, 3, 11)
    assert kept is not None and [f.frame_index for f in kept.frames] == [3, 10, 11]
    assert (kept.object_id, kept.phrase_index) == (5, 0)
    assert cut(m, 13, 29) is None
    with pytest.raises(ValueError):
        cut(m, 5, 4)


# --- windows -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "size", "overlap", "expected"), [
    (12, 6, 2, [(0, 6), (4, 10), (8, 12)]),
    (5, 6, 2, [(0, 5)]),
    (6, 6, 2, [(0, 6)]),
    (7, 6, 2, [(0, 6), (4, 7)]),
    (10, 4, 9, [(0, 4), (2, 6), (4, 8), (6, 10)]),  # overlap clamped to half a window
    (18, 12, 8, [(0, 12), (6, 18)]),
    (0, 4, 1, []),
])
def test_windows_cover_the_video_sharing_the_overlap(count: int, size: int, overlap: int,
                                                    expected: list[tuple[int, int]]) -> None:
    assert windows(count, size, overlap) == expected


@pytest.mark.parametrize("size", [2, 3, 4, 7, 12, 64])
@pytest.mark.parametrize("overlap", [0, 1, 3, 8, 63])
def test_no_frame_is_shared_by_more_than_two_windows(size: int, overlap: int) -> None:
    """Stitching hands each window's tail to the next one only: a frame in three windows would be
    proposed (and yielded) twice."""
    spans = windows(100, size, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == 100
    for frame in range(100):
        assert 1 <= sum(start <= frame < end for start, end in spans) <= 2


def test_windows_need_two_frames() -> None:
    with pytest.raises(ValueError):
        windows(10, 1, 0)


# --- stitching ---------------------------------------------------------------------------------------


def test_track_iou_sums_over_frames_and_counts_frames_only_one_has() -> None:
    a = {0: rle(0, 0), 1: rle(0, 0)}
    assert track_iou(a, a) == pytest.approx(1.0)
    assert track_iou(a, {0: rle(20, 15)}) == 0.0
    assert track_iou(a, {0: rle(0, 0)}) == pytest.approx(0.5)  # frame 1 only in a: its area is in the union
    shifted = {0: rle(5, 0), 1: rle(5, 0)}  # 50 of 150 pixels on each frame
    assert track_iou(a, shifted) == pytest.approx(100 / 300)
    assert track_iou({}, {}) == 0.0


def test_stitch_matches_the_same_objects_across_windows_by_phrase_one_to_one() -> None:
    previous = {1: Track(0, {4: rle(0, 0), 5: rle(1, 0)}), 2: Track(0, {4: rle(25, 15), 5: rle(26, 15)}),
                3: Track(1, {4: rle(12, 0)})}
    current = {10: Track(0, {4: rle(25, 15), 5: rle(26, 16)}),  # object 2
               11: Track(0, {4: rle(0, 0), 5: rle(1, 1)}),  # object 1
               12: Track(0, {4: rle(12, 0)}),  # where 3 is, but another phrase
               13: Track(0, {5: rle(27, 15)})}  # overlaps 2 too, less than 10 does
    assert stitch(previous, current, 0.5) == {10: 2, 11: 1}
    assert stitch(previous, current, 0.99) == {}


def test_id_stitcher_keeps_ids_across_windows_and_numbers_new_objects() -> None:
    stitcher = IdStitcher(0.5)
    assert stitcher.start_window({}, {}) == {}
    first = [stitcher.stable_id(w) for w in (0, 1, 0)]
    assert first == [1, 2, 1]
    previous = tracks([(4, [(1, 0, rle(0, 0)), (2, 0, rle(25, 15))])])
    current = tracks([(4, [(7, 0, rle(25, 15)), (8, 0, rle(12, 10))])])
    assert stitcher.start_window(previous, current) == {7: 2}
    assert not stitcher.is_new(7) and stitcher.is_new(8)
    assert [stitcher.stable_id(w) for w in (7, 8, 9, 8)] == [2, 3, 4, 3]
    assert stitcher.start_window(previous, {}) == {}
    assert stitcher.stable_id(0) == 5  # a window's ids are its own: 0 of a new window is a new object
