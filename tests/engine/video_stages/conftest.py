"""Videos as mining leaves them (Video, VideoFrame rows, frames in the media store, a job item with
the source's caption), pending for a stage of a video job."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import select

from engine.db.models import JobItem, MiningJob, StageItem, Video, VideoFrame
from engine.db.session import session_scope
from engine.domain.vocabulary import ItemStatus, JobStatus, MediaKind, StageStatus
from engine.repositories import model_versions
from engine.repositories import stages as stages_repo
from engine.repositories import videos as videos_repo
from engine.storage import LocalMediaStore
from tests.video_synth import DEFAULT_SHAPES
from tests.video_synth import frames as synth_frames

FRAMES = 12


@dataclass(frozen=True)
class Mined:
    job_id: int
    video_ids: list[int]
    store: LocalMediaStore


def add_video(session, store, job_id: int, n: int, count: int = FRAMES, captions: list[str] | None = None,
              width: int = 160, height: int = 120) -> int:
    keys = []
    shapes = tuple(replace(shape, start=(shape.start[0], shape.start[1] + 0.05 * n)) for shape in DEFAULT_SHAPES)
    for image in synth_frames(count, width, height, shapes):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        keys.append(store.put(hashlib.sha256(data).hexdigest(), "jpg", data))
    video = Video(sha256=f"{n:064x}", phash=n, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0,
                  keyframe_phashes=[n], width=width, height=height, fps=12.0, duration_s=count / 6, source_frames=count,
                  sample_fps=6.0, frame_count=count, container="mp4", codec="h264", byte_size=1000,
                  storage_key=None, first_job_id=job_id, source_uri=f"v{n}.mp4")
    session.add(video)
    session.flush()
    session.add_all(VideoFrame(video_id=video.id, index=i, timestamp_s=i / 6, storage_key=key, width=width,
                               height=height) for i, key in enumerate(keys))
    session.add(JobItem(job_id=job_id, key=f"v{n}.mp4", locator={"path": f"v{n}.mp4"},
                        source_meta={"captions": captions or []}, status=ItemStatus.DONE, video_id=video.id))
    if captions:  # as mining stores the source's captions
        videos_repo.add_captions(session, video.id, model_versions.source_version(session, "alt-text").id, captions)
    return video.id


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite unless a test asks for PostgreSQL (``parametrize("database_url", ["postgresql"], indirect=True)``)."""
    return request.getfixturevalue("fresh_sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


@pytest.fixture
def mined(settings):
    """Two 12-frame videos of a video job (the first with a source caption), pending for caption."""
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        job = MiningJob(name="videos", source_uri="/videos", source_kind="folder", status=JobStatus.RUNNING,
                        options={"media": MediaKind.VIDEO.value})
        s.add(job)
        s.flush()
        ids = [add_video(s, store, job.id, 1, captions=["a striped cat and a blue sofa"]),
               add_video(s, store, job.id, 2)]
        stages_repo.ensure_pending(s, job.id, "caption", ids)
        job_id = job.id
    return Mined(job_id, ids, store)


def pending(settings, job_id: int, stage: str, ids: list[int]) -> None:
    """Rows of ``stage`` for ``ids``, pending (new, or back to pending as a re-run makes them)."""
    with session_scope(settings.db_url) as s:
        stages_repo.ensure_pending(s, job_id, stage, ids)
        for item in s.scalars(select(StageItem).where(StageItem.job_id == job_id, StageItem.stage == stage)):
            item.status = StageStatus.PENDING


def rows(s, job_id: int, stage: str) -> dict[int, StageItem]:
    return {i.subject_id: i for i in s.scalars(select(StageItem).where(
        StageItem.job_id == job_id, StageItem.stage == stage))}


def run(settings, fn, *args, **kwargs):
    with session_scope(settings.db_url) as s:
        return fn(s, *args, **kwargs)


def add_pairs(settings, phrases: dict[int, list[str]]) -> dict[tuple[int, str], int]:
    """Caption pairs of the videos (as parse leaves them); their ids by (video, phrase)."""
    from engine.domain.vocabulary import PairOrigin, Polarity
    from engine.repositories import labels, video_labels

    with session_scope(settings.db_url) as s:
        concepts = labels.concept_ids(s, {p for own in phrases.values() for p in own})
        out = {}
        for video_id, own in phrases.items():
            for phrase in own:
                out[(video_id, phrase)] = video_labels.pair_id(s, video_id, concepts[phrase], polarity=Polarity.UNKNOWN,
                                                               origin=PairOrigin.CAPTION, model_version_id=None)
        return out


def proposed(settings, mined, phrases: dict[int, list[str]], proposer=None, **video):
    """The videos' pairs proposed by ``proposer`` (a fake one by default); (pair ids, report)."""
    from engine.services.video_stages.propose import propose_video_batch
    from engine.video_settings import VideoSettings
    from tests.engine.video_stages.fakes import FakeMaskletProposer

    pairs = add_pairs(settings, phrases)
    pending(settings, mined.job_id, "propose", list(phrases))
    report = run(settings, propose_video_batch, mined.store, proposer or FakeMaskletProposer(), VideoSettings(**video),
                 mined.job_id, list(phrases))
    return pairs, report
