"""Decoding and sampling (PyAV and frame folders), keyframes, and stored frames read back."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.sources.frames import FrameFoldersSource, frame_names, natural_key
from engine.storage import LocalMediaStore
from engine.video.decode import VideoFileDecoder
from engine.video.folder import FrameFolderDecoder
from engine.video.frames import StoredFrames
from engine.video.sampling import FrameSampler, keyframe_indices
from engine.video_settings import VideoLimits
from tests.video_synth import frames, write_frame_folder, write_video


@pytest.mark.parametrize("name", ["a.mp4", "a.webm", "a.mov", "a.mkv"])
def test_every_container_decodes_and_samples_by_timestamp(clips: dict[str, Path], name: str) -> None:
    decoder = VideoFileDecoder(clips[name].read_bytes(), VideoLimits(), 6.0, extension=Path(name).suffix)
    sampled = list(decoder.frames())
    # 24 frames at 12 fps sampled at 6 fps: every other frame, times 0, 1/6, 2/6 …
    assert [f.index for f in sampled] == list(range(12))
    assert [round(f.timestamp_s, 2) for f in sampled] == [round(i / 6, 2) for i in range(12)]
    summary = decoder.summary
    assert summary is not None
    assert (summary.container, summary.width, summary.height) == (name[2:], 160, 120)
    assert (summary.source_frames, summary.sampled_frames, summary.fps) == (24, 12, 12.0)
    assert summary.duration_s == pytest.approx(2.0, abs=0.01)
    assert summary.codec == ("vp9" if name.endswith("webm") else "h264")
    # the kept frames are the source's even frames: the red circle moves 2 px per source frame
    reference = list(frames(24))
    for frame in sampled[::5]:
        expected = np.asarray(reference[2 * frame.index], dtype=np.int16)
        assert frame.image.size == (160, 120)
        assert np.abs(np.asarray(frame.image, dtype=np.int16) - expected).mean() < 8


def test_a_path_decodes_as_its_bytes_do(clips: dict[str, Path]) -> None:
    from_path = VideoFileDecoder(clips["a.mp4"], VideoLimits(), 6.0)
    assert len(list(from_path.frames())) == 12
    assert from_path.summary is not None and from_path.summary.container == "mp4"


def test_a_source_slower_than_the_sample_rate_keeps_every_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "slow.mkv", count=8, fps=3)
    decoder = VideoFileDecoder(path, VideoLimits(), 6.0)
    sampled = list(decoder.frames())
    assert len(sampled) == 8
    assert [round(f.timestamp_s, 2) for f in sampled] == [round(i / 3, 2) for i in range(8)]


def test_sampler_keeps_the_first_frame_at_or_after_each_sample_time() -> None:
    sampler = FrameSampler(4.0)  # sample times 0, 0.25, 0.5, 0.75, 1.0
    times = [Fraction(t, 10) for t in (0, 1, 2, 3, 4, 6, 7, 11)]
    assert [float(t) for t in times if sampler.keep(t)] == [0.0, 0.3, 0.6, 1.1]
    rounded = FrameSampler(6.0)  # times rounded down to the millisecond still count as at the sample time
    assert [rounded.keep(Fraction(ms, 1000)) for ms in (0, 83, 166, 250, 333)] == [True, False, True, False, True]


def test_keyframes_are_evenly_spaced_and_distinct() -> None:
    assert keyframe_indices(12, 3) == [2, 6, 10]
    assert keyframe_indices(2, 3) == [0, 1]
    assert keyframe_indices(1, 3) == [0]
    assert keyframe_indices(0, 3) == []


def test_frame_folders_are_ordered_naturally_and_sampled_at_their_rate(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    images = list(frames(12))
    for i, image in enumerate(images):  # unpadded names: 10 must come after 9, not after 1
        image.save(folder / f"frame{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    assert frame_names(folder)[:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert frame_names(folder)[-3:] == ["frame9.png", "frame10.png", "frame11.png"]
    assert sorted(["b10", "b2", "a"], key=natural_key) == ["a", "b2", "b10"]
    source = FrameFoldersSource(str(tmp_path))
    [item] = list(source.iter_items())
    assert item.key == "clip" and item.meta["frames"] == 12
    decoder = FrameFolderDecoder(source.frame_files(item.locator), VideoLimits(), 12.0, 6.0)
    sampled = list(decoder.frames())
    assert len(sampled) == 6
    for frame in sampled:  # lossless frames: the sampled frame is source frame 2i exactly
        assert np.array_equal(np.asarray(frame.image), np.asarray(images[2 * frame.index]))
    summary = decoder.summary
    assert summary is not None and decoder.sha256 is not None
    assert (summary.container, summary.codec, summary.source_frames, summary.fps) == ("frames", "png", 12, 12.0)
    assert summary.duration_s == pytest.approx(1.0)


def test_a_frame_folders_identity_is_its_frames_in_order(tmp_path: Path) -> None:
    def sha(folder: Path) -> str:
        decoder = FrameFolderDecoder(((p.name, p.read_bytes()) for p in sorted(folder.iterdir())),
                                     VideoLimits(), 6.0, 6.0)
        list(decoder.frames())
        assert decoder.sha256 is not None
        return decoder.sha256

    first = write_frame_folder(tmp_path / "one", count=4)
    renamed = tmp_path / "two"
    renamed.mkdir()
    for p in sorted(first.iterdir()):
        (renamed / f"x{p.name}").write_bytes(p.read_bytes())
    assert sha(first) == sha(renamed)
    (renamed / "x00003.jpg").unlink()
    assert sha(first) != sha(renamed)


def test_root_frames_make_one_video_beside_its_subfolders(tmp_path: Path) -> None:
    write_frame_folder(tmp_path, count=3)
    write_frame_folder(tmp_path / "sub", count=2)
    (tmp_path / "empty").mkdir()
    items = {item.key: item for item in FrameFoldersSource(str(tmp_path)).iter_items()}
    assert items["."].meta["frames"] == 3 and items["sub"].meta["frames"] == 2
    assert "holds no frame" in items["empty"].locator["error"]
    capped = {item.key: item for item in FrameFoldersSource(str(tmp_path), max_files=2).iter_items()}
    assert "over the cap of 2" in capped["."].locator["error"] and "folder" in capped["sub"].locator


def test_stored_frames_read_one_at_a_time_with_a_small_cache(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    keys = []
    for i, image in enumerate(frames(5)):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        keys.append(store.put(f"{i:064x}", "png", buffer.getvalue()))
    stored = StoredFrames(store, keys, (160, 120), cache=2)
    assert stored.frame_count == 5 and stored.size == (160, 120)
    reference = list(frames(5))
    assert np.array_equal(np.asarray(stored.frame(3)), np.asarray(reference[3]))
    assert stored.frame(3) is stored.frame(3)  # cached
    stored.frame(0)
    stored.frame(1)  # frame 3 is evicted (cache of 2)
    store.remove(keys[3])
    with pytest.raises(FileNotFoundError):
        stored.frame(3)
    with pytest.raises(IndexError):
        stored.frame(5)
    assert isinstance(stored.frame(4), Image.Image) and stored.frame(4).mode == "RGB"
