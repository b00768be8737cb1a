"""The bad-video corpus: each bad video fails alone with its reason while the good ones of the same
job are mined, and nothing of a failed video is left in the database or the media store."""

from __future__ import annotations

import errno
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import Video, VideoFrame
from engine.db.session import session_scope
from engine.repositories import videos as videos_repo
from engine.repositories.videos import FrameRow
from engine.services import mine
from engine.settings import Settings
from engine.storage import LocalMediaStore, Stored
from engine.video_settings import VideoLimits, VideoSettings
from tests.engine.video.conftest import copy_clip, items_of, mine_all
from tests.video_synth import frames, truncate, write_frame_folder, write_video

CAPPED = VideoLimits(max_duration_s=3.0, max_source_frames=30, max_sampled_frames=13, max_width=200,
                     codecs=["h264", "vp9"])


def _zero_frame_mkv(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


def _corpus(clips: dict[str, Path], src: Path) -> dict[str, str | None]:
    """The files, and the start of each one's reason (None: mined)."""
    copy_clip(clips, "a.mp4", src / "good-a.mp4")
    copy_clip(clips, "b.mp4", src / "good-b.mp4")
    (src / "corrupt.mp4").write_bytes(random.Random(7).randbytes(5000))
    truncate(copy_clip(clips, "a.mkv", src / "truncated.mkv"), 0.5)
    truncate(copy_clip(clips, "a.mov", src / "truncated.mov"), 0.5)
    (src / "empty.mp4").write_bytes(b"")
    _zero_frame_mkv(src / "zero.mkv")
    (src / "text.mp4").write_text("this is not a video\n" * 20)
    next(frames(1)).save(src / "still.mp4", format="JPEG")
    write_video(src / "mpeg4.mkv", count=8, codec="mpeg4")
    write_video(src / "long.mp4", count=8, fps=2)  # 4 s
    write_video(src / "many.mp4", count=40, fps=40)  # 40 source frames in 1 s
    write_video(src / "dense.mp4", count=30, fps=12)  # 2.5 s: 15 sampled frames
    write_video(src / "wide.mp4", count=4, width=256)
    (src / "notes.txt").write_text("ignored: not a video")
    return {
        "good-a.mp4": None, "good-b.mp4": None,
        "corrupt.mp4": "corrupt or not a video",
        "truncated.mkv": "truncated: decoding ended at",
        "truncated.mov": "corrupt or not a video",  # the index (moov) is at the end: nothing opens
        "empty.mp4": "empty file (0 bytes)",
        "zero.mkv": "zero frames",
        "text.mp4": "corrupt or not a video",
        "still.mp4": "not a video: a still image",
        "mpeg4.mkv": "unsupported codec 'mpeg4'",
        "long.mp4": "over the duration cap: 4.0 s > 3 s",
        "many.mp4": "over the frame cap",
        "dense.mp4": "over the sampled-frame cap",
        "wide.mp4": "over the resolution cap: 256x120 > 200x4096",
    }


def _stored_keys(settings: Settings) -> set[str]:
    return {p.relative_to(settings.media_path).as_posix() for p in settings.media_path.rglob("*") if p.is_file()}


def _named_keys(settings: Settings) -> set[str]:
    with session_scope(settings.db_url) as s:
        keys = set(s.scalars(select(VideoFrame.storage_key)))
        keys.update(k for k in s.scalars(select(Video.storage_key)) if k)
    return keys


def test_each_bad_video_fails_alone_with_its_reason(video_settings: Settings, clips: dict[str, Path],
                                                    tmp_path: Path) -> None:
    settings = video_settings
    settings.video = VideoSettings(limits=CAPPED)
    expected = _corpus(clips, tmp_path / "src")
    plan = mine_all(settings, tmp_path / "src", batch_size=5, options={"media": "video"})
    items = items_of(settings, plan.job_id)
    assert set(items) == set(expected)
    for key, reason in expected.items():
        item = items[key]
        if reason is None:
            assert (item.status.value, item.error) == ("done", None), key
            assert item.video_id is not None
        else:
            assert item.status.value == "failed", key
            assert item.error is not None and item.error.startswith(reason), (key, item.error)
            assert item.video_id is None
        assert item.attempts == 1
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Video)) == 2
        assert s.scalar(select(func.count()).select_from(VideoFrame)) == 24
    # exactly the good videos' originals and frames are stored: a refused video left no file
    assert _stored_keys(settings) == _named_keys(settings)


def test_bad_frame_folders_fail_with_the_frame_they_stop_at(video_settings: Settings, tmp_path: Path) -> None:
    settings = video_settings
    root = tmp_path / "clips"
    write_frame_folder(root / "good", count=8)
    broken = write_frame_folder(root / "broken", count=8)
    data = (broken / "00003.jpg").read_bytes()
    (broken / "00003.jpg").write_bytes(data[: len(data) // 2])
    text = write_frame_folder(root / "text", count=4)
    (text / "00002.jpg").write_text("not a picture")
    mixed = write_frame_folder(root / "mixed", count=6)
    next(frames(1, width=120, height=90)).save(mixed / "00004.jpg")
    write_frame_folder(root / "huge", count=2, width=320)
    write_frame_folder(root / "long", count=20)  # 20 frames at 6 fps: 3.3 s
    (root / "empty").mkdir()
    settings.video = VideoSettings(limits=VideoLimits(max_width=300, max_duration_s=3.0))
    plan = mine_all(settings, root, kind="frames")
    items = items_of(settings, plan.job_id)
    assert items["good"].status.value == "done"
    errors = {key: item.error for key, item in items.items() if key != "good"}
    assert errors["broken"] is not None and errors["broken"].startswith("frame 00003.jpg: corrupt or truncated")
    assert errors["text"] == "frame 00002.jpg: not a readable image (UnidentifiedImageError)"
    assert errors["mixed"] == ("frame 00004.jpg is 120x90, the first frame is 160x120: frames of one video "
                               "must have one size")
    assert errors["huge"] == "frame 00000.jpg: over the resolution cap: 320x120 > 300x4096"
    assert errors["empty"] == "frame folder empty holds no frame (image files)"
    assert errors["long"] == "over the duration cap: more than 3 s of frames at 6 fps"
    assert all(items[k].status.value == "failed" for k in errors)
    with session_scope(settings.db_url) as s:
        video = s.scalars(select(Video)).one()
        assert (video.container, video.storage_key, video.frame_count, video.source_frames) == ("frames", None, 8, 8)
    assert _stored_keys(settings) == _named_keys(settings)
    shutil.rmtree(root)


class _FullStore(LocalMediaStore):
    """A media store that has room for ``room`` more files, then refuses writes (ENOSPC)."""

    def __init__(self, root: Path, room: int) -> None:
        super().__init__(root)
        self.room = room

    def store(self, sha256: str, extension: str, data: bytes) -> Stored:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= 1
        return super().store(sha256, extension, data)


def _plan(settings: Settings, clips: dict[str, Path], src: Path) -> mine.JobPlan:
    copy_clip(clips, "a.mp4", src / "1-a.mp4")
    copy_clip(clips, "b.mp4", src / "2-b.mp4")
    with session_scope(settings.db_url) as s:
        return mine.plan_job(s, settings, str(src), until="mine", options={"media": "video"})


def test_a_full_store_fails_the_video_that_does_not_fit_and_removes_its_files(
        video_settings: Settings, clips: dict[str, Path], tmp_path: Path) -> None:
    settings = video_settings
    plan = _plan(settings, clips, tmp_path / "src")
    with session_scope(settings.db_url) as s:  # room for the first video (original + 12 frames) and 7 more files
        mine.mine_batch(s, settings, _FullStore(settings.media_path, 20), plan.job_id, plan.pending)
    items = items_of(settings, plan.job_id)
    assert items["1-a.mp4"].status.value == "done"
    assert (items["2-b.mp4"].status.value, items["2-b.mp4"].error) == ("failed", "media store: no space left on device")
    assert items["2-b.mp4"].retry_at is not None
    assert _stored_keys(settings) == _named_keys(settings) and len(_stored_keys(settings)) == 13
    retried = mine_all(settings, tmp_path / "src", options={"media": "video"}, job_name=plan.name, retry_failed=True)
    assert retried.retried == 1 and items_of(settings, plan.job_id)["2-b.mp4"].status.value == "done"
    assert _stored_keys(settings) == _named_keys(settings) and len(_stored_keys(settings)) == 26


def test_a_bug_on_one_video_fails_it_alone_and_a_database_outage_stops_the_batch_cleanly(
        video_settings: Settings, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = video_settings
    plan = _plan(settings, clips, tmp_path / "src")
    real = videos_repo.add_frames

    def add_frames(session: Session, video_id: int, frames: Sequence[FrameRow]) -> None:
        if any(f.index == 11 for f in frames) and video_id > 1:
            raise ValueError("boom")
        real(session, video_id, frames)

    monkeypatch.setattr(videos_repo, "add_frames", add_frames)
    with session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id, plan.pending)
    items = items_of(settings, plan.job_id)
    assert items["1-a.mp4"].status.value == "done"
    assert items["2-b.mp4"].error == "internal error: ValueError: boom"
    with session_scope(settings.db_url) as s:  # its savepoint rolled back: no video row, no frame rows
        assert s.scalar(select(func.count()).select_from(Video)) == 1
    assert _stored_keys(settings) == _named_keys(settings)

    def outage(session: Session, video_id: int, frames: Sequence[FrameRow]) -> None:
        raise sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(videos_repo, "add_frames", outage)
    (tmp_path / "src" / "2-b.mp4").unlink()
    copy_clip(clips, "a.webm", tmp_path / "src" / "3-c.webm")
    with session_scope(settings.db_url) as s:
        again = mine.plan_job(s, settings, str(tmp_path / "src"), job_name=plan.name, until="mine",
                              options={"media": "video"})
    with pytest.raises(sa_exc.OperationalError), session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id, again.pending)
    assert items_of(settings, plan.job_id)["3-c.webm"].status.value == "pending"
    assert _stored_keys(settings) == _named_keys(settings)  # the batch's files went with its rows
