"""Click and propagate on video (annotators/tracker_video.py) on the tiny random-weight Sam3TrackerVideoModel:
the clicked frame first, then forward to the window's end, then backward to its start; one object (id 1);
only the window's frames are read. Random weights: order, ids, shapes and determinism, not quality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotators.tracker_video import Sam3VideoTracker
from engine.ports import FrameObjects
from engine.video.frames import ListFrames
from tests.video_synth import frames as synthetic_frames

pytestmark = pytest.mark.models

W, H = 160, 120


class CountingFrames:
    """A FrameSource that records which frames were read."""

    def __init__(self, count: int) -> None:
        self.inner = ListFrames(list(synthetic_frames(count, W, H)))
        self.read: list[int] = []

    @property
    def frame_count(self) -> int:
        return self.inner.frame_count

    @property
    def size(self) -> tuple[int, int]:
        return self.inner.size

    def frame(self, index: int) -> Image.Image:
        self.read.append(index)
        return self.inner.frame(index)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small tensors: one thread is fastest (two spin against each other on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tracker(tiny: dict[str, Path]) -> Sam3VideoTracker:
    return Sam3VideoTracker(str(tiny["sam3_tracker_video"]), device="cpu")


def test_the_tiny_tracker_builds_offline_deterministically_and_round_trips(
        tiny: dict[str, Path], tracker: Sam3VideoTracker, tmp_path: Path) -> None:
    import torch
    from transformers import Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

    from annotators.tiny import OBJECT_SCORE_BIAS, build_tiny_sam3_tracker_video

    rebuilt = Sam3TrackerVideoModel.from_pretrained(build_tiny_sam3_tracker_video(tmp_path / "t"),
                                                    local_files_only=True)
    cached = Sam3TrackerVideoModel.from_pretrained(tiny["sam3_tracker_video"], local_files_only=True)
    a, b = rebuilt.state_dict(), cached.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert cached.config.image_size == 112
    assert bool((a["mask_decoder.pred_obj_score_head.proj_out.bias"] == OBJECT_SCORE_BIAS).all())
    processor = Sam3TrackerVideoProcessor.from_pretrained(tiny["sam3_tracker_video"], local_files_only=True)
    assert processor.video_processor.size["height"] == 112
    assert tracker.stamp.kind == "tracker" and "video" in tracker.stamp.name and tracker.stamp.random_weights
    assert tracker.stamp.params == {"video": True, "mask_threshold": 0.0}


def test_the_clicked_frame_comes_first_then_forward_then_backward(tracker: Sam3VideoTracker) -> None:
    frames = CountingFrames(12)
    out: list[FrameObjects] = []
    read_before_first: list[int] = []
    for f in tracker.track(frames, 5, [(40.0, 60.0, 1), (120.0, 30.0, 0)], window=(2, 8)):
        if not out:
            read_before_first = list(frames.read)
        out.append(f)
    assert [f.frame_index for f in out] == [5, 6, 7, 8, 4, 3, 2]
    assert read_before_first == list(range(2, 9))  # the window only, never the whole video
    assert sorted(set(frames.read)) == list(range(2, 9))
    assert tracker.max_session_frames <= 7
    for f in out:
        assert [o.object_id for o in f.objects] == [1]  # the tiny model shows the object on every frame
        mask = f.objects[0].mask
        assert mask.shape == (H, W) and mask.dtype == np.bool_ and mask.any()
        assert 0.0 <= f.objects[0].score <= 1.0
    again = list(tracker.track(frames, 5, [(40.0, 60.0, 1), (120.0, 30.0, 0)], window=(2, 8)))
    assert all(np.array_equal(a.objects[0].mask, b.objects[0].mask) for a, b in zip(out, again, strict=True))


@pytest.mark.parametrize(("frame", "window", "order"), [
    (0, (0, 3), [0, 1, 2, 3]),  # a click on the window's first frame: nothing before it
    (3, (0, 3), [3, 2, 1, 0]),  # on its last: nothing after it
    (2, (2, 2), [2]),
])
def test_clicks_on_the_windows_edges(tracker: Sam3VideoTracker, frame: int, window: tuple[int, int],
                                     order: list[int]) -> None:
    frames = CountingFrames(6)
    assert [f.frame_index for f in tracker.track(frames, frame, [(50.0, 50.0, 1)], window=window)] == order


@pytest.mark.parametrize(("frame", "points", "window", "message"), [
    (5, [(10.0, 10.0, 1)], (0, 12), "do not fit"),
    (5, [(10.0, 10.0, 1)], (6, 8), "do not fit"),
    (5, [], (2, 8), "at least one point"),
    (5, [(10.0, 10.0, 2)], (2, 8), "label"),
    (5, [(170.0, 10.0, 1)], (2, 8), "outside"),
    (5, [(float("nan"), 10.0, 1)], (2, 8), "outside"),
])
def test_a_bad_request_is_refused_before_any_frame_is_read(tracker: Sam3VideoTracker, frame: int,
                                                           points: list[tuple[float, float, int]],
                                                           window: tuple[int, int], message: str) -> None:
    frames = CountingFrames(10)
    with pytest.raises(ValueError, match=message):
        next(iter(tracker.track(frames, frame, points, window=window)))
    assert frames.read == []
