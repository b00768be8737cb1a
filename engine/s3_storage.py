"""Media in an S3-compatible bucket: the same content-addressed keys as the local store
(``ab/cd/<sha256>.<ext>``), as objects ``<prefix>/media/<key>``.

Needs the ``s3`` extra (boto3). Large files go up in parts (``multipart_threshold``, ``part_size``);
reads can stream (:meth:`S3MediaStore.iter_bytes`); every request is retried with exponential backoff
and jitter on throttling, 5xx answers and dropped connections (botocore's "standard" retry mode,
``max_attempts``). Exports are copied to ``<prefix>/exports/<name>/``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.extras import require
from engine.storage import Stored, storage_key

if TYPE_CHECKING:
    from engine.storage_settings import StorageSettings

NOT_FOUND = ("404", "NoSuchKey", "NotFound")


class S3MediaStore:
    """A :class:`engine.storage.MediaStore` on a bucket. Unlike the local store, two processes storing
    the same new bytes at once may both be told they created the object (S3 has no exclusive create
    everywhere); the bytes are identical, and a file removed by one is written again by the next
    store of those bytes."""

    def __init__(self, settings: StorageSettings, client: Any | None = None) -> None:
        require("s3", feature="the S3 media store")
        if not settings.bucket:
            raise ValueError("storage.bucket is not set (the s3 backend needs a bucket)")
        from boto3.s3.transfer import TransferConfig

        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.client = client if client is not None else make_client(settings)
        self.transfer = TransferConfig(multipart_threshold=settings.multipart_threshold,
                                       multipart_chunksize=settings.part_size, use_threads=False)

    def object_key(self, key: str) -> str:
        """The bucket key of a storage key (which must be a content-addressed one)."""
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key escapes the media prefix: {key!r}")
        return f"{self.prefix}/media/{key}" if self.prefix else f"media/{key}"

    def put(self, sha256: str, extension: str, data: bytes) -> str:
        return self.store(sha256, extension, data).key

    def store(self, sha256: str, extension: str, data: bytes) -> Stored:
        key = storage_key(sha256, extension)
        if self.exists(key):
            return Stored(key, False)
        try:
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, self.object_key(key), Config=self.transfer)
        except Exception as exc:  # boto3's errors: the callers handle OSError (a store that cannot write)
            raise OSError(f"cannot write {key} to s3://{self.bucket}: {exc}") from exc
        return Stored(key, True)

    def remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def open_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_bytes(key))

    def iter_bytes(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes in chunks of at most ``chunk_size``, read as they arrive (a large
        object is never held whole). FileNotFoundError: no such object."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                raise FileNotFoundError(key) from None
            raise
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return False
            raise
        return True

    def presigned_url(self, key: str) -> str | None:
        """A URL the browser can fetch the object from, when ``storage.presign`` is on; else None
        (the API proxies the bytes)."""
        if not self.settings.presign:
            return None
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=self.settings.presign_expiry)
        return url

    def upload_folder(self, folder: Path, name: str) -> list[str]:
        """Copy the files of a finished export to ``<prefix>/exports/<name>/``; returns their keys."""
        base = f"{self.prefix}/exports/{name}" if self.prefix else f"exports/{name}"
        keys = []
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            key = f"{base}/{path.relative_to(folder).as_posix()}"
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer)
            keys.append(key)
        return keys


def make_client(settings: StorageSettings) -> Any:
    """A boto3 S3 client for the settings: retries in botocore's standard mode (exponential backoff
    with jitter), path-style addressing when an endpoint is given (MinIO, moto). One client per
    distinct connection settings, shared (boto3 clients are thread-safe; making one takes tens of ms,
    too long for each image request)."""
    key_id = settings.access_key_id.get_secret_value() if settings.access_key_id else None
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    return _client(settings.endpoint_url, settings.region, key_id, secret, settings.max_attempts,
                   settings.connect_timeout, settings.read_timeout)


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None, max_attempts: int,
            connect_timeout: float, read_timeout: float) -> Any:
    require("s3", feature="the S3 media store")
    import boto3
    from botocore.config import Config

    config = Config(region_name=region, connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                    s3={"addressing_style": "path" if endpoint_url else "auto"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, aws_access_key_id=key_id,
                                          aws_secret_access_key=secret, config=config)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
