"""What mining images and mining videos share: opening a job's source with the caps of its media,
an item's failure and its reason, the media store's errors, where an item came from."""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import JobItem, MiningJob
from engine.domain.vocabulary import ItemStatus, MediaKind, SourceKind
from engine.repositories import images as images_repo
from engine.repositories import videos as videos_repo
from engine.services.common import StageReport
from engine.settings import Settings
from engine.sources import Source, SourceError, detect_kind, open_source
from engine.storage import MediaStore

log = logging.getLogger(__name__)

TRANSIENT_DB_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError)


def job_media(options: dict[str, Any] | None) -> MediaKind:
    """What a job mines (its option ``media``; images when unset)."""
    return MediaKind.VIDEO if (options or {}).get("media") == MediaKind.VIDEO else MediaKind.IMAGE


def open_media_source(settings: Settings, uri: str, kind: str | None, options: dict[str, Any]) -> Source:
    """The source with the caps of the job's media: a video job reads files up to
    ``video.limits.max_file_bytes`` (an image job ``limits.max_file_bytes``)."""
    video = job_media(options) is MediaKind.VIDEO
    if video and (kind or detect_kind(uri)) == SourceKind.COCO:
        raise SourceError("a COCO source lists images; a video job mines a folder, a URL list or WebDataset "
                          "shards of video files, or frame folders (--kind frames)")
    return open_source(uri, kind, options=options, fetch=settings.fetch,
                       max_shard_names=settings.sources.max_shard_names,
                       max_file_bytes=settings.video.limits.max_file_bytes if video else settings.limits.max_file_bytes,
                       max_coco_bytes=settings.sources.max_coco_bytes,
                       max_frame_files=settings.video.limits.max_frame_folder_files)


def open_job_source(job: MiningJob, settings: Settings) -> Source:
    return open_media_source(settings, job.source_uri, job.source_kind, job.options)


# errno → what an item's reason says, and whether the same write may work later (space freed,
# quota raised, a flaky disk replaced); anything else is a fault of the store to fix by hand
_STORE_ERRORS: dict[int, tuple[str, bool]] = {
    errno.ENOSPC: ("no space left on device", True),
    errno.EDQUOT: ("disk quota exceeded", True),
    errno.EIO: ("I/O error", True),
    errno.EROFS: ("read-only file system", False),
    errno.EACCES: ("permission denied", False),
    errno.EPERM: ("operation not permitted", False),
}


def store_failure(exc: OSError) -> tuple[str, bool]:
    """(the item's reason, whether to retry it later) for an OSError of the media store. The reason
    names the error only, never a path."""
    known = _STORE_ERRORS.get(exc.errno or 0)
    if known is not None:
        return f"media store: {known[0]}", known[1]
    text = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return f"media store: {text[:1].lower()}{text[1:]}", False


def fail_item(item: JobItem, reason: str, report: StageReport) -> None:
    item.status = ItemStatus.FAILED
    item.error = reason[:2000]
    item.attempts += 1
    item.processed_at = utcnow()
    report.counts[ItemStatus.FAILED.value] += 1


def item_uri(job: MiningJob, item: JobItem) -> str:
    loc = item.locator
    if "url" in loc and not ("path" in loc and job.source_kind == SourceKind.COCO):
        return str(loc["url"])
    if "shard" in loc:
        return f"{loc['shard']}#{loc.get('member')}"
    if "path" in loc:
        separator = ":" if job.source_kind == SourceKind.COCO else "/"
        return f"{job.source_uri}{separator}{loc['path']}"
    if "folder" in loc:
        return f"{job.source_uri}/{loc['folder']}"
    return job.source_uri


def discard_unreferenced(session: Session, store: MediaStore, keys: list[str]) -> None:
    """Remove the files of ``keys`` (each written by this batch, none there before) that no committed
    image, video or frame row names. A fresh short session asks, so this batch's own uncommitted rows
    do not count; when the database cannot answer, the files stay (``dataengine check --repair``: F1)."""
    if not keys:
        return
    try:
        with Session(session.get_bind()) as fresh:
            kept: set[str] = set()
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                kept.update(videos_repo.named_storage_keys(fresh, chunk))
                kept.update(images_repo.named_storage_keys(fresh, chunk))
    except Exception:  # noqa: BLE001 - cleaning up must not hide the batch's own error
        log.warning("could not tell which of %d stored files a failed batch leaves unused; they stay",
                    len(keys), exc_info=True)
        return
    for key in keys:
        if key not in kept:
            try:
                store.remove(key)
            except OSError:
                log.warning("could not remove an unused media file %s", key, exc_info=True)
