"""Shared pieces of the video mining tests: a job mined batch by batch as the task wrapper does, and
the synthetic videos (built once per session, copied into each test's source)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.db.models import JobItem
from engine.db.session import session_scope
from engine.services import flow, mine
from engine.settings import Settings
from engine.storage import LocalMediaStore
from tests.video_synth import Shape, write_frame_folder, write_video

OTHER_SHAPES = (Shape("square", (30, 160, 60), 30, (0.5, 0.5), (1.0, -1.0)),
                Shape("circle", (200, 200, 40), 16, (0.2, 0.2), (0.5, 2.0)))


def mine_all(settings: Settings, source: Path | str, batch_size: int = 3, **kwargs: object) -> mine.JobPlan:
    """Plan in one transaction, then each batch in its own, as the task wrapper does."""
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(source), until="mine", **kwargs)  # type: ignore[arg-type]
    store = LocalMediaStore(settings.media_path)
    for i in range(0, len(plan.pending), batch_size):
        with session_scope(settings.db_url) as s:
            mine.mine_batch(s, settings, store, plan.job_id, plan.pending[i:i + batch_size])
    with session_scope(settings.db_url) as s:
        flow.finish_if_complete(s, plan.job_id)
    return plan


def items_of(settings: Settings, job_id: int) -> dict[str, JobItem]:
    with session_scope(settings.db_url) as s:
        rows = list(s.scalars(select(JobItem).where(JobItem.job_id == job_id)))
        s.expunge_all()
    return {row.key: row for row in rows}


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic clips, encoded once: 24 frames at 12 fps, 160x120 (a.*: the default shapes in
    every container; b.mp4: other shapes; folder: the same frames as a frame folder)."""
    root = tmp_path_factory.mktemp("clips")
    out = {f"a{ext}": write_video(root / f"a{ext}") for ext in (".mp4", ".webm", ".mov", ".mkv")}
    out["b.mp4"] = write_video(root / "b.mp4", shapes=OTHER_SHAPES)
    out["frames"] = write_frame_folder(root / "frames" / "walk", count=12)
    return out


def copy_clip(clips: dict[str, Path], name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if clips[name].is_dir():
        shutil.copytree(clips[name], dest)
    else:
        shutil.copyfile(clips[name], dest)
    return dest


@pytest.fixture
def video_settings(fresh_sqlite_url: str, tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite database (most video mining tests; one runs on PostgreSQL)."""
    from tests.conftest import make_settings

    return make_settings(fresh_sqlite_url, tmp_path)
