"""SAM 3 masklet proposals on video (annotators/sam3_video.py) on the tiny random-weight Sam3VideoModel:
frames in order, each once, masks at the frame's size, stable ids, windows bounding what a session holds.
Random weights: shapes, ids, order and determinism are asserted, not quality. The window stitching is
also checked on hand-made masks (no model)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotators.sam3_video import Sam3VideoProposer, _Found
from engine.ports import FrameObjects
from engine.video.frames import ListFrames
from tests.video_synth import frames as synthetic_frames

W, H = 160, 120
PHRASES = ["red circle", "blue square"]


class CountingFrames:
    """A FrameSource that records which frames were read, in order."""

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
    """The tiny model's tensors are small: one thread is fastest, and two spin against each other when the
    machine is busy (measured: 8 frames 1.8 s on one thread, 30 s on two under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _proposer(tiny: dict[str, Path], window: int = 64, overlap: int = 8) -> Sam3VideoProposer:
    return Sam3VideoProposer(str(tiny["sam3_video"]), score_threshold=0.0, window_frames=window,
                             window_overlap=overlap, device="cpu")


@pytest.fixture(scope="module")
def proposer(tiny: dict[str, Path]) -> Sam3VideoProposer:
    return _proposer(tiny)


def _summary(frames: list[FrameObjects]) -> list[tuple[int, list[tuple[int, int, int]]]]:
    return [(f.frame_index, [(o.object_id, o.phrase_index, int(o.mask.sum())) for o in f.objects]) for f in frames]


@pytest.mark.models
def test_the_tiny_video_model_round_trips_and_is_stamped_as_a_video_proposer(tiny: dict[str, Path]) -> None:
    import torch
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    from annotators.tiny import tiny_sam3_video_config
    from annotators.tiny.saving import seeded

    loaded = Sam3VideoModel.from_pretrained(tiny["sam3_video"], local_files_only=True)
    with seeded(0):
        fresh = Sam3VideoModel(tiny_sam3_video_config())
    a, b = loaded.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    processor = Sam3VideoProcessor.from_pretrained(tiny["sam3_video"], local_files_only=True)
    assert processor.video_processor.size["height"] == 112
    stamp = _proposer(tiny, window=6, overlap=2).stamp
    assert stamp.kind == "proposer" and "video" in stamp.name and stamp.random_weights
    assert stamp.params == {"video": True, "score_threshold": 0.0, "window_frames": 6, "window_overlap": 2,
                            "stitch_iou": 0.5}
    assert _proposer(tiny, window=6, overlap=5).stamp.params["window_overlap"] == 3  # the overlap it runs with


@pytest.mark.models
def test_the_mid_video_config_is_about_a_hundred_million_parameters() -> None:
    import torch
    from transformers import Sam3VideoModel

    from annotators.tiny import mid_sam3_video_config

    with torch.device("meta"):
        model = Sam3VideoModel(mid_sam3_video_config())
    assert 80e6 < sum(p.numel() for p in model.parameters()) < 160e6


@pytest.mark.models
def test_one_frame_objects_per_frame_in_order_with_masks_at_the_frames_size(proposer: Sam3VideoProposer) -> None:
    frames = ListFrames(list(synthetic_frames(8, W, H)))
    out = list(proposer.propose_video(frames, PHRASES))
    assert [f.frame_index for f in out] == list(range(8))
    assert any(f.objects for f in out)
    phrase_of: dict[int, int] = {}
    for f in out:
        ids = [o.object_id for o in f.objects]
        assert len(ids) == len(set(ids))
        for o in f.objects:
            assert o.mask.shape == (H, W) and o.mask.dtype == np.bool_ and o.mask.any()
            assert 0.0 <= o.score <= 1.0
            assert phrase_of.setdefault(o.object_id, o.phrase_index) == o.phrase_index  # one object, one phrase
    assert set(phrase_of.values()) <= {0, 1}
    again = list(proposer.propose_video(frames, PHRASES))
    assert _summary(again) == _summary(out)


@pytest.mark.models
def test_a_repeated_phrase_is_one_prompt_and_no_phrase_reads_no_frame(proposer: Sam3VideoProposer) -> None:
    frames = CountingFrames(4)
    out = list(proposer.propose_video(frames, ["red circle", "blue square", "red circle"]))
    assert {o.phrase_index for f in out for o in f.objects} <= {0, 1}
    empty = CountingFrames(5)
    assert [(f.frame_index, f.objects) for f in proposer.propose_video(empty, [])] == [(i, []) for i in range(5)]
    assert empty.read == []


@pytest.mark.models
def test_a_video_longer_than_a_window_is_proposed_window_by_window(tiny: dict[str, Path]) -> None:
    proposer = _proposer(tiny, window=6, overlap=2)
    frames = CountingFrames(10)
    out: list[FrameObjects] = []
    read_at_first_yield: list[int] = []
    for f in proposer.propose_video(frames, PHRASES):
        if not out:
            read_at_first_yield = list(frames.read)
        out.append(f)
    assert [f.frame_index for f in out] == list(range(10))  # in order, each once
    # windows [0,6) [4,10): a session never held more than 6 frames, each read for its windows only
    assert proposer.max_session_frames == 6
    assert frames.read == [*range(0, 6), *range(4, 10)]
    assert read_at_first_yield == list(range(6))  # frames come out before later windows are read
    for f in out:
        assert all(o.mask.shape == (H, W) for o in f.objects)


# --- stitching windows, on hand-made masks (no model) --------------------------------------------------


def _square(x: int, size: int = 10) -> np.ndarray:
    mask = np.zeros((20, 60), dtype=bool)
    mask[5:5 + size, x:x + size] = True
    return mask


class _ScriptedProposer(Sam3VideoProposer):
    """The proposer's windowing and stitching over scripted windows instead of a model."""

    def __init__(self, script: dict[int, dict[int, list[_Found]]], window: int, overlap: int) -> None:
        self.script, self.window_frames, self.window_overlap, self.stitch_iou = script, window, overlap, 0.5
        self.score_threshold, self.max_session_frames = 0.0, 0

    def _run_window(self, frames: object, start: int, end: int,
                    phrases: Sequence[str]) -> Iterator[tuple[int, list[_Found]]]:
        for i in range(start, end):
            yield i, self.script[start].get(i, [])


def test_objects_keep_their_ids_across_windows_and_new_ones_join_on_shared_frames() -> None:
    def found(window_id: int, x: int, phrase: int = 0) -> _Found:
        return _Found(window_id, phrase, _square(x), 0.9)

    # windows [0,4) and [2,6): object A moves right through both (window ids 0, then 5); B is only in the
    # first; C appears on a shared frame in the second window only; D is where A is but for another phrase
    script = {
        0: {i: [found(0, 2 * i), found(1, 40)] for i in range(4)},
        2: {2: [found(5, 4), found(6, 30), found(7, 4, phrase=1)], 3: [found(5, 6), found(6, 31)],
            4: [found(5, 8)], 5: [found(5, 10), found(6, 33)]},
    }
    proposer = _ScriptedProposer(script, window=4, overlap=2)
    out = list(proposer.propose_video(ListFrames([Image.new("RGB", (60, 20))] * 6), ["a", "b"]))
    assert [f.frame_index for f in out] == list(range(6))
    ids = [[(o.object_id, o.phrase_index) for o in f.objects] for f in out]
    a, b, c, d = 1, 2, 3, 4
    assert ids[0] == ids[1] == [(a, 0), (b, 0)]
    assert ids[2] == [(a, 0), (b, 0), (c, 0), (d, 1)]  # shared frame: first window's, plus the new ones
    assert ids[3] == [(a, 0), (b, 0), (c, 0)]
    assert ids[4] == [(a, 0)]
    assert ids[5] == [(a, 0), (c, 0)]
    assert np.array_equal(out[2].objects[0].mask, _square(4))  # the first window's mask on a shared frame


def test_a_wide_overlap_still_gives_every_frame_once_and_one_id_per_object() -> None:
    script = {start: {i: [_Found(start, 0, _square(20), 0.9)] for i in range(start, start + 4)} for start in range(9)}
    proposer = _ScriptedProposer(script, window=4, overlap=3)  # windows() shares at most half a window
    out = list(proposer.propose_video(ListFrames([Image.new("RGB", (60, 20))] * 9), ["a"]))
    assert [f.frame_index for f in out] == list(range(9))
    assert all([o.object_id for o in f.objects] == [1] for f in out)
