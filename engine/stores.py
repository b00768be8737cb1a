"""The media store the settings choose (``storage.backend``): the local folder or an S3-compatible
bucket, and what differs between them for callers (a browser URL, where exports are copied)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.storage import LocalMediaStore, MediaStore

if TYPE_CHECKING:
    from engine.settings import Settings


def make_store(settings: Settings) -> MediaStore:
    """The media store the settings choose: files under ``media_root`` (``storage.backend = "local"``,
    the default) or a bucket (``"s3"``, needs the ``s3`` extra)."""
    if settings.storage.backend == "s3":
        from engine.s3_storage import S3MediaStore

        return S3MediaStore(settings.storage)
    return LocalMediaStore(settings.media_path)


def browser_url(store: MediaStore, key: str) -> str | None:
    """Where the browser may fetch ``key`` directly (a presigned bucket URL), or None: the API
    serves the bytes itself."""
    presign = getattr(store, "presigned_url", None)
    return presign(key) if presign is not None else None


def upload_export(settings: Settings, folder: Path, name: str) -> list[str]:
    """With the S3 store, copy a finished export folder to ``<prefix>/exports/<name>/`` in the bucket
    (the local folder stays: downloads are served from it); returns the keys written (none: local store)."""
    if settings.storage.backend != "s3":
        return []
    from engine.s3_storage import S3MediaStore

    return S3MediaStore(settings.storage).upload_folder(folder, name)

