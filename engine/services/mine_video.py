"""Mining videos (a job whose option ``media`` is ``video``): fetch → sha256 → decode and sample
(PyAV; a frame folder frame by frame) → keyframe pHashes → exact / near duplicate → store the
original and every sampled frame (JPEG, content-addressed) → one Video row and its VideoFrame rows.

The same guarantees as images (engine/services/mine.py): each item ends done, duplicate,
near_duplicate or failed-with-reason; its rows are written in one savepoint (all or nothing); a
re-run mines only what is still pending. Sampled frames are spooled to a temporary folder while the
video decodes, so a video refused half-way leaves nothing in the media store. The stage subject ids
handed on (``report.image_ids``) are video ids."""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from PIL import Image
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import JobItem, MiningJob
from engine.domain.hashing import phash
from engine.domain.vocabulary import ItemStatus, StageStatus
from engine.repositories import jobs as jobs_repo
from engine.repositories import model_versions
from engine.repositories import videos as videos_repo
from engine.repositories.videos import FrameRow, NearDuplicateVideo
from engine.services.common import StageReport
from engine.services.mine_items import (
    TRANSIENT_DB_ERRORS,
    discard_unreferenced,
    fail_item,
    item_uri,
    open_job_source,
    store_failure,
)
from engine.settings import Settings
from engine.sources import FetchError, Source, SourceError
from engine.sources.frames import FrameFoldersSource
from engine.storage import MediaStore, storage_key
from engine.video.decode import VideoFileDecoder
from engine.video.folder import FrameFolderDecoder
from engine.video.sampling import DecodeSummary, SampledFrame, VideoRejected, keyframe_indices, middle

log = logging.getLogger(__name__)
STAGE = "mine"


@dataclass(frozen=True)
class SpooledFrame:
    index: int
    timestamp_s: float
    sha256: str
    path: Path  # the JPEG in the spool folder


@dataclass(frozen=True)
class DecodedVideo:
    """A video decoded and sampled into the spool, not stored yet."""

    sha256: str
    summary: DecodeSummary
    frames: list[SpooledFrame]
    keyframe_hashes: list[int]
    original: bytes | None  # the file (None: a frame folder)


def mine_video_batch(session: Session, settings: Settings, store: MediaStore, job_id: int,
                     item_ids: list[int]) -> StageReport:
    """Ingest the still-pending video items among ``item_ids``. Safe to run twice (idempotent)."""
    report = StageReport(STAGE)
    job = session.get(MiningJob, job_id)
    if job is None:
        raise LookupError(f"no mining job {job_id}")
    items = {item.id: item for item in jobs_repo.pending_items(session, job_id, item_ids)}
    report.counts[StageStatus.SKIPPED.value] = len(set(item_ids)) - len(items)
    if items:
        try:
            source = open_job_source(job, settings)
        except SourceError as exc:
            for item in items.values():
                fail_item(item, f"source unavailable: {exc}", report)
        else:
            try:
                _ingest_all(session, settings, store, job, source, items, report)
            finally:
                source.close()
    report.image_ids = [item.video_id for item in items.values()
                        if item.status in (ItemStatus.DONE, ItemStatus.DUPLICATE) and item.video_id]
    session.flush()
    return report


def _ingest_all(session: Session, settings: Settings, store: MediaStore, job: MiningJob, source: Source,
                items: dict[int, JobItem], report: StageReport) -> None:
    alt_text_version = model_versions.source_version(session, "alt-text").id
    created: list[str] = []  # files this batch wrote (not there before): removed if the batch fails
    try:
        with session.no_autoflush:
            for item, data, error in _fetched(source, items, report):
                if error is not None:
                    fail_item(item, error, report)
                    continue
                _ingest_one(session, settings, store, job, source, item, data, alt_text_version, report, created)
        started = time.perf_counter()
        session.flush()
        report.seconds["db"] += time.perf_counter() - started
    except BaseException:
        discard_unreferenced(session, store, created)
        raise


def _fetched(source: Source, items: dict[int, JobItem],
             report: StageReport) -> Iterator[tuple[JobItem, bytes | None, str | None]]:
    """(item, its file's bytes or None for a frame folder, the reason it could not be read)."""
    if isinstance(source, FrameFoldersSource):
        for item in items.values():
            yield item, None, None
        return
    for result in source.read_many((item.id, item.locator) for item in items.values()):
        report.seconds["fetch"] += result.seconds
        if result.error is not None or result.data is None:
            yield items[result.item_id], None, result.error or "no data"
        else:
            yield items[result.item_id], result.data, None


def _ingest_one(session: Session, settings: Settings, store: MediaStore, job: MiningJob, source: Source,
                item: JobItem, data: bytes | None, alt_text_version: int, report: StageReport,
                created: list[str]) -> None:
    file_sha256 = hashlib.sha256(data).hexdigest() if data is not None else None
    if file_sha256 is not None:  # a file: an exact duplicate needs no decoding
        existing = videos_repo.id_by_sha256(session, file_sha256)
        if existing is not None:
            _record_duplicate(session, item, existing, alt_text_version, report)
            return
    with tempfile.TemporaryDirectory(prefix="dataengine-video-") as spool:
        started = time.perf_counter()
        try:
            decoded = _decode(settings, source, item, data, file_sha256, Path(spool))
        except (VideoRejected, FetchError) as exc:
            fail_item(item, str(exc), report)
            return
        finally:
            report.seconds["decode"] += time.perf_counter() - started
        existing = videos_repo.id_by_sha256(session, decoded.sha256)
        if existing is not None:  # a frame folder mined before
            _record_duplicate(session, item, existing, alt_text_version, report)
            return
        near = _near_duplicate(session, settings, decoded)
        mine = _store(store, item, decoded, report)
        if mine is None:
            return
        created.extend(mine)
        _record_item(session, store, job, item, decoded, near, alt_text_version, settings.video.sample_fps, report,
                     created, mine)


def _decode(settings: Settings, source: Source, item: JobItem, data: bytes | None, file_sha256: str | None,
            spool: Path) -> DecodedVideo:
    video = settings.video
    decoder: VideoFileDecoder | FrameFolderDecoder
    if data is None:
        assert isinstance(source, FrameFoldersSource)
        decoder = FrameFolderDecoder(source.frame_files(item.locator), video.limits, video.frames_fps,
                                     video.sample_fps)
    else:
        decoder = VideoFileDecoder(data, video.limits, video.sample_fps, extension=_extension(item.locator))
    frames = [_spool(frame, spool, video.frame_quality) for frame in decoder.frames()]
    summary = decoder.summary
    assert summary is not None
    sha256 = decoder.sha256 if isinstance(decoder, FrameFolderDecoder) else file_sha256
    assert sha256 is not None
    hashes = [_phash(frames[i].path) for i in keyframe_indices(len(frames), video.keyframes)]
    return DecodedVideo(sha256, summary, frames, hashes, data)


def _spool(frame: SampledFrame, spool: Path, quality: int) -> SpooledFrame:
    buffer = io.BytesIO()
    frame.image.save(buffer, format="JPEG", quality=quality)
    data = buffer.getvalue()
    path = spool / f"{frame.index}.jpg"
    path.write_bytes(data)
    return SpooledFrame(frame.index, frame.timestamp_s, hashlib.sha256(data).hexdigest(), path)


def _phash(path: Path) -> int:
    with Image.open(path) as image:
        return phash(image)


def _extension(locator: dict[str, Any]) -> str | None:
    """The item's file extension (the container's name when the format is ambiguous)."""
    name = locator.get("path") or locator.get("member") or urlparse(str(locator.get("url") or "")).path
    return PurePosixPath(str(name)).suffix.lower() or None


def _near_duplicate(session: Session, settings: Settings, decoded: DecodedVideo) -> NearDuplicateVideo | None:
    if not settings.dedup.near_duplicates or not decoded.keyframe_hashes:
        return None
    return videos_repo.find_near_duplicate(session, decoded.keyframe_hashes, middle(decoded.keyframe_hashes),
                                           settings.video.near_duplicate_distance)


def _store(store: MediaStore, item: JobItem, decoded: DecodedVideo, report: StageReport) -> list[str] | None:
    """Store the original file and every sampled frame; the keys this call created (None: the item
    failed, what it wrote removed, retried later when the error may pass)."""
    started = time.perf_counter()
    mine: list[str] = []
    try:
        if decoded.original is not None:
            _put(store, decoded.sha256, _original_extension(decoded.summary), decoded.original, mine)
        for frame in decoded.frames:
            _put(store, frame.sha256, "jpg", frame.path.read_bytes(), mine)
    except OSError as exc:  # disk full, quota, read-only, I/O error: this item fails, the rest goes on
        for key in mine:
            store.remove(key)
        reason, transient = store_failure(exc)
        fail_item(item, reason, report)
        item.retry_at = utcnow() if transient else None
        return None
    finally:
        report.seconds["store"] += time.perf_counter() - started
    return mine


def _put(store: MediaStore, sha256: str, extension: str, data: bytes, mine: list[str]) -> None:
    stored = store.store(sha256, extension, data)
    if stored.created:
        mine.append(stored.key)


def _original_extension(summary: DecodeSummary) -> str:
    return summary.container if summary.container.isalnum() else "bin"


def _record_item(session: Session, store: MediaStore, job: MiningJob, item: JobItem, decoded: DecodedVideo,
                 near: NearDuplicateVideo | None, alt_text_version: int, sample_fps: float, report: StageReport,
                 created: list[str], mine: list[str]) -> None:
    """Write the item's rows in one savepoint and count its status; a bug fails this item only (and
    removes the files it alone wrote), a transient database error stops the batch."""
    started = time.perf_counter()
    try:
        with session.begin_nested():
            status = _record(session, job, item, decoded, near, alt_text_version, sample_fps)
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug on one item must not stop the job
        log.exception("video item %s of job %s failed unexpectedly", item.key, job.name)
        fail_item(item, f"internal error: {type(exc).__name__}: {exc}", report)
        for key in mine:
            created.remove(key)
        discard_unreferenced(session, store, mine)
    else:
        report.counts[status.value] += 1
    report.seconds["db"] += time.perf_counter() - started


def _record(session: Session, job: MiningJob, item: JobItem, decoded: DecodedVideo,
            near: NearDuplicateVideo | None, alt_text_version: int, sample_fps: float) -> ItemStatus:
    """The Video row (unless its sha256 is there already) with its frames and captions; the item's
    outcome. ``sample_fps``: the rate asked (a slower source keeps its own)."""
    summary = decoded.summary
    frame_size = (summary.width, summary.height)
    original_key = (storage_key(decoded.sha256, _original_extension(summary))
                    if decoded.original is not None else None)
    video_id, created = videos_repo.insert_if_new(
        session, sha256=decoded.sha256, keyframe_hashes=decoded.keyframe_hashes,
        middle_hash=middle(decoded.keyframe_hashes), width=summary.width, height=summary.height,
        fps=summary.fps, duration_s=summary.duration_s, source_frames=summary.source_frames,
        sample_fps=min(sample_fps, summary.fps), frame_count=len(decoded.frames), container=summary.container,
        codec=summary.codec, byte_size=summary.byte_size, storage_key=original_key,
        duplicate_of_id=near.video_id if near else None, first_job_id=job.id,
        source_uri=item_uri(job, item)[:4000])
    if created:
        videos_repo.add_frames(session, video_id, [
            FrameRow(f.index, f.timestamp_s, storage_key(f.sha256, "jpg"), *frame_size)
            for f in decoded.frames])
        status = ItemStatus.NEAR_DUPLICATE if near else ItemStatus.DONE
    else:
        status = ItemStatus.DUPLICATE
    _finish(session, item, video_id, status, alt_text_version)
    item.duplicate_distance = near.distance if near and status is ItemStatus.NEAR_DUPLICATE else None
    return status


def _record_duplicate(session: Session, item: JobItem, video_id: int, alt_text_version: int,
                      report: StageReport) -> None:
    started = time.perf_counter()
    _finish(session, item, video_id, ItemStatus.DUPLICATE, alt_text_version)
    item.duplicate_distance = None
    report.counts[ItemStatus.DUPLICATE.value] += 1
    report.seconds["db"] += time.perf_counter() - started


def _finish(session: Session, item: JobItem, video_id: int, status: ItemStatus, alt_text_version: int) -> None:
    captions = [c for c in (item.source_meta or {}).get("captions", []) if isinstance(c, str) and c.strip()]
    if captions:
        videos_repo.add_captions(session, video_id, alt_text_version, captions)
    item.status = status
    item.video_id = video_id
    item.error = None
    item.attempts += 1
    item.processed_at = utcnow()
