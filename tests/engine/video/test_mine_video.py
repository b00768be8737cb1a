"""Mining videos end to end on the mining service: rows and files, duplicates, captions, what is
handed to the next stage, every source kind, idempotent re-runs and resuming; one test on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from engine.db.models import Caption, MiningJob, Video, VideoFrame
from engine.db.session import session_scope
from engine.domain.stages import STAGE_NAMES
from engine.domain.vocabulary import MediaKind
from engine.repositories import videos as videos_repo
from engine.services import flow, mine
from engine.settings import Settings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.engine.video.conftest import OTHER_SHAPES, copy_clip, items_of, mine_all
from tests.factories import write_shard
from tests.httpserver import TestServer, send
from tests.video_synth import frames


def _count(settings: Settings, model: type) -> int:
    with session_scope(settings.db_url) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _folder_of_videos(clips: dict[str, Path], src: Path) -> None:
    copy_clip(clips, "a.mkv", src / "a.mkv")
    copy_clip(clips, "a.mp4", src / "a.mp4")  # the same frames as a.mkv, encoded again: a near duplicate
    copy_clip(clips, "b.mp4", src / "b.mp4")
    copy_clip(clips, "b.mp4", src / "c-copy-of-b.mp4")  # the same bytes: a duplicate
    (src / "b.txt").write_text("two shapes drifting")
    (src / "b.json").write_text('{"title": "moving shapes", "license": "cc0"}')
    (src / "photo.jpg").write_bytes(b"not mined: a video job takes video files only")


def test_videos_are_mined_with_their_frames_duplicates_and_captions(video_settings: Settings,
                                                                    clips: dict[str, Path], tmp_path: Path) -> None:
    settings = video_settings
    _folder_of_videos(clips, tmp_path / "src")
    plan = mine_all(settings, tmp_path / "src", options={"media": "video"})
    items = items_of(settings, plan.job_id)
    assert {k: i.status.value for k, i in items.items()} == {
        "a.mkv": "done", "a.mp4": "near_duplicate", "b.mp4": "done", "c-copy-of-b.mp4": "duplicate"}
    assert items["c-copy-of-b.mp4"].video_id == items["b.mp4"].video_id
    assert items["a.mp4"].duplicate_distance is not None
    assert items["a.mp4"].duplicate_distance <= settings.video.near_duplicate_distance
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        near = s.get(Video, items["a.mp4"].video_id)
        assert near is not None and near.duplicate_of_id == items["a.mkv"].video_id
        video = s.get(Video, items["b.mp4"].video_id)
        assert video is not None
        assert (video.container, video.codec, video.width, video.height) == ("mp4", "h264", 160, 120)
        assert (video.fps, video.sample_fps, video.source_frames, video.frame_count) == (12.0, 6.0, 24, 12)
        assert video.duration_s == pytest.approx(2.0)
        assert video.storage_key is not None and store.open_bytes(video.storage_key) == clips["b.mp4"].read_bytes()
        assert len(video.keyframe_phashes) == settings.video.keyframes and video.phash == video.keyframe_phashes[1]
        assert video.source_uri is not None and video.source_uri.endswith("/b.mp4")
        rows = list(s.scalars(select(VideoFrame).where(VideoFrame.video_id == video.id).order_by(VideoFrame.index)))
        assert [r.index for r in rows] == list(range(12))
        assert [round(r.timestamp_s, 2) for r in rows] == [round(i / 6, 2) for i in range(12)]
        captions = sorted(s.scalars(select(Caption.text).where(Caption.video_id == video.id)))
        assert captions == ["moving shapes", "two shapes drifting"]
        stored = videos_repo.frames_of(s, store, video.id)
    assert stored.frame_count == 12 and stored.size == (160, 120)
    for index in (0, 11):
        with Image.open(settings.media_path / rows[index].storage_key) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.size == (160, 120)
        assert stored.frame(index).size == (160, 120)
    assert _count(settings, Video) == 3 and _count(settings, VideoFrame) == 36


def test_the_next_stage_gets_the_canonical_video_ids(video_settings: Settings, clips: dict[str, Path],
                                                     tmp_path: Path) -> None:
    settings = video_settings
    _folder_of_videos(clips, tmp_path / "src")
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(tmp_path / "src"), until="caption", options={"media": "video"})
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        report = mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
        stage, handed = flow.hand_over(s, plan.job_id, "mine", report.image_ids, STAGE_NAMES)
    items = items_of(settings, plan.job_id)
    a, b = items["a.mkv"].video_id, items["b.mp4"].video_id
    # done and duplicate items are handed on (the duplicate as the video it repeats), the near duplicate is not
    assert sorted(report.image_ids) == sorted([a, b, b])
    assert (stage, handed) == ("caption", sorted([a, b]))
    with session_scope(settings.db_url) as s:
        assert sorted(flow.mined_images(s, plan.job_id, MediaKind.VIDEO)) == sorted([a, b])
        assert flow.reconcile(s, plan.job_id, STAGE_NAMES) == {"caption": sorted([a, b])}


def test_rerun_is_idempotent_and_a_failed_video_is_mined_when_retried(video_settings: Settings,
                                                                      clips: dict[str, Path], tmp_path: Path) -> None:
    settings = video_settings
    src = tmp_path / "src"
    copy_clip(clips, "b.mp4", src / "b.mp4")
    (src / "later.mp4").write_text("a download that went wrong")
    plan = mine_all(settings, src, options={"media": "video"}, job_name="videos")
    assert items_of(settings, plan.job_id)["later.mp4"].status.value == "failed"
    files = sorted(settings.media_path.rglob("*"))
    again = mine_all(settings, src, options={"media": "video"}, job_name="videos")
    assert (again.job_id, again.new_items, again.pending) == (plan.job_id, 0, [])
    with session_scope(settings.db_url) as s:  # a batch run twice does nothing the second time
        report = mine.mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id,
                                 sorted(i.id for i in items_of(settings, plan.job_id).values()))
    assert report.counts["skipped"] == 2 and report.image_ids == []
    assert sorted(settings.media_path.rglob("*")) == files and _count(settings, Video) == 1
    copy_clip(clips, "a.webm", src / "later.mp4")  # fixed: now a webm behind a .mp4 name
    retried = mine_all(settings, src, options={"media": "video"}, job_name="videos", retry_failed=True)
    assert retried.retried == 1
    later = items_of(settings, plan.job_id)["later.mp4"]
    assert (later.status.value, later.error, later.attempts) == ("done", None, 2)
    with session_scope(settings.db_url) as s:
        video = s.get(Video, later.video_id)
        assert video is not None and (video.codec, video.frame_count) == ("vp9", 12)
        job = s.get(MiningJob, plan.job_id)
        assert job is not None and job.status.value == "done"


def test_a_job_stopped_half_way_resumes_where_it_stopped(video_settings: Settings, clips: dict[str, Path],
                                                         tmp_path: Path) -> None:
    settings = video_settings
    src = tmp_path / "src"
    copy_clip(clips, "a.mp4", src / "1.mp4")
    copy_clip(clips, "b.mp4", src / "2.mp4")
    copy_clip(clips, "frames", tmp_path / "frames" / "walk")
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), until="mine", options={"media": "video"})
    with session_scope(settings.db_url) as s:  # the worker mines one item, then dies
        mine.mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id, plan.pending[:1])
    resumed = mine_all(settings, src, options={"media": "video"}, job_name=plan.name)
    assert len(resumed.pending) == 1
    assert {i.status.value for i in items_of(settings, plan.job_id).values()} == {"done"}
    frames_plan = mine_all(settings, tmp_path / "frames", kind="frames")
    [walk] = items_of(settings, frames_plan.job_id).values()
    assert walk.status.value == "done"
    with session_scope(settings.db_url) as s:
        job = s.get(MiningJob, frames_plan.job_id)
        assert job is not None and job.options["media"] == "video"
        video = s.get(Video, walk.video_id)
        assert video is not None and (video.container, video.frame_count, video.fps) == ("frames", 12, 6.0)
    assert _count(settings, Video) == 3


def test_webdataset_and_url_list_videos(video_settings: Settings, clips: dict[str, Path], tmp_path: Path) -> None:
    settings = video_settings
    write_shard(tmp_path / "shard.tar", [
        {"__key__": "000", "mp4": clips["b.mp4"].read_bytes(), "txt": "shapes in a tar", "json": '{"alt": "alt"}'},
        {"__key__": "001", "webm": clips["a.webm"].read_bytes()},
        {"__key__": "002", "jpg": b"an image sample"},
    ])
    plan = mine_all(settings, tmp_path / "shard.tar", options={"media": "video"})
    items = items_of(settings, plan.job_id)
    assert {k: i.status.value for k, i in items.items()} == {
        "shard.tar/000": "done", "shard.tar/001": "done", "shard.tar/002": "failed"}
    assert items["shard.tar/002"].error == "sample has no video member (members: jpg)"
    server = TestServer().start()
    try:
        server.routes["/clip.mov"] = lambda h, _n: send(h, 200, clips["a.mov"].read_bytes(), "application/octet-stream")
        server.routes["/gone.mp4"] = lambda h, _n: send(h, 404, b"no", "text/plain")
        (tmp_path / "urls.txt").write_text(f"{server.base}/clip.mov\ta clip online\n{server.base}/gone.mp4\n")
        url_plan = mine_all(settings, tmp_path / "urls.txt", options={"media": "video"})
    finally:
        server.stop()
    urls = {k.rsplit("/", 1)[-1]: i for k, i in items_of(settings, url_plan.job_id).items()}
    assert urls["clip.mov"].status.value == "near_duplicate", urls["clip.mov"].error  # a.webm's frames
    assert urls["gone.mp4"].status.value == "failed" and "404" in (urls["gone.mp4"].error or "")
    with session_scope(settings.db_url) as s:
        captions = {(c.video_id, c.text) for c in s.scalars(select(Caption))}
        mov = s.get(Video, urls["clip.mov"].video_id)
        assert mov is not None and mov.container == "mov"
    assert captions == {(items["shard.tar/000"].video_id, "shapes in a tar"),
                        (items["shard.tar/000"].video_id, "alt"), (urls["clip.mov"].video_id, "a clip online")}


def test_mining_videos_on_postgresql(fresh_pg_url: str, clips: dict[str, Path], tmp_path: Path) -> None:
    settings = make_settings(fresh_pg_url, tmp_path)
    _folder_of_videos(clips, tmp_path / "src")
    (tmp_path / "src" / "broken.mkv").write_bytes(clips["a.mkv"].read_bytes()[:900])
    plan = mine_all(settings, tmp_path / "src", batch_size=2, options={"media": "video"})
    items = items_of(settings, plan.job_id)
    assert {k: i.status.value for k, i in items.items()} == {
        "a.mkv": "done", "a.mp4": "near_duplicate", "b.mp4": "done", "broken.mkv": "failed",
        "c-copy-of-b.mp4": "duplicate"}
    assert _count(settings, Video) == 3 and _count(settings, VideoFrame) == 36
    with session_scope(settings.db_url) as s:
        stored = videos_repo.frames_of(s, LocalMediaStore(settings.media_path), items["b.mp4"].video_id or 0)
    reference = np.asarray(next(frames(1, shapes=OTHER_SHAPES)), dtype=np.int16)
    assert np.abs(np.asarray(stored.frame(0), dtype=np.int16) - reference).mean() < 8


def test_the_cli_mines_videos_and_frame_folders(fresh_sqlite_url: str, clips: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dataengine.cli.main import cli

    monkeypatch.setenv("DATAENGINE_DATABASE_URL", fresh_sqlite_url)
    monkeypatch.setenv("DATAENGINE_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    copy_clip(clips, "b.mp4", tmp_path / "videos" / "b.mp4")
    copy_clip(clips, "frames", tmp_path / "clips" / "walk")
    runner = CliRunner()
    videos = runner.invoke(cli, ["mine", str(tmp_path / "videos"), "--media", "video", "--until", "mine"],
                           catch_exceptions=False)
    assert "1 items listed" in videos.output, videos.output
    folders = runner.invoke(cli, ["mine", str(tmp_path / "clips"), "--kind", "frames", "--until", "mine"],
                            catch_exceptions=False)
    assert "1 items listed" in folders.output, folders.output
    with session_scope(fresh_sqlite_url) as s:
        assert sorted(s.scalars(select(Video.container))) == ["frames", "mp4"]
    shutil.rmtree(tmp_path / "media")


def test_a_video_job_refuses_a_coco_source(video_settings: Settings, tmp_path: Path) -> None:
    from engine.sources import SourceError

    (tmp_path / "coco.json").write_text('{"images": [], "annotations": [], "categories": []}')
    with session_scope(video_settings.db_url) as s, pytest.raises(SourceError, match="a COCO source lists images"):
        mine.plan_job(s, video_settings, str(tmp_path / "coco.json"), options={"media": "video"})
