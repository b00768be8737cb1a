"""Content-addressed media storage: ``ab/cd/<sha256>.<ext>`` under the media root (or, with
``storage.backend = "s3"``, under ``<prefix>/media/`` in a bucket: :mod:`engine.s3_storage`).
:func:`engine.stores.make_store` builds the one the settings choose."""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TMP_PREFIX = ".tmp-"  # a file being written; a leftover one is an orphan (``dataengine check`` F1)


@dataclass(frozen=True)
class Stored:
    key: str
    created: bool  # True: this call wrote the file; False: it was there already


class MediaStore(Protocol):
    def put(self, sha256: str, extension: str, data: bytes) -> str:
        """Store the bytes (idempotent) and return the storage key."""

    def store(self, sha256: str, extension: str, data: bytes) -> Stored:
        """Like :meth:`put`, and say whether this call created the file. Raises OSError when the
        store cannot write (no space, quota, read-only, I/O error); nothing is left behind then."""

    def remove(self, key: str) -> None:
        """Delete the file of ``key`` (absent: nothing to do)."""

    def open_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def storage_key(sha256: str, extension: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    if not extension.isalnum():
        raise ValueError(f"bad extension {extension!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"


class LocalMediaStore:
    """Files under a local (or network-mounted) folder, written atomically by rename. Files get
    mode 0o666 less the process umask, as a plain ``open()`` makes them (other users of the
    service may read them)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._made: set[Path] = set()  # folders known to exist (saves a mkdir per file)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key escapes the media root: {key!r}")
        return path

    def put(self, sha256: str, extension: str, data: bytes) -> str:
        return self.store(sha256, extension, data).key

    def store(self, sha256: str, extension: str, data: bytes) -> Stored:
        key = storage_key(sha256, extension)
        path = self._path(key)
        if path.exists():
            _touch(path)
            return Stored(key, False)
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        try:
            fd, tmp = _create_tmp(path.parent, extension)
        except FileNotFoundError:  # the folder was removed behind our back
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _create_tmp(path.parent, extension)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            created = _publish(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Stored(key, created)

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def open_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def presigned_url(self, key: str) -> str | None:
        """Local files have no URL of their own: the API proxies them."""
        return None


def _publish(tmp: str, path: Path) -> bool:
    """Give the written file its name. ``link`` fails when the name exists, so of two processes
    storing the same bytes at once exactly one is told it created the file; where the file system
    has no hard links, ``replace`` (the content is the same either way)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        _touch(path)
        created = False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        created = not path.exists()
        os.replace(tmp, path)
        return created
    else:
        created = True
    os.unlink(tmp)
    return created


def _touch(path: Path) -> None:
    """Mark a file found in place as in use now: ``dataengine check --repair`` removes only files no
    image row names that are older than its grace period, and the row naming this one may not be
    committed yet."""
    try:
        os.utime(path)
    except OSError:
        pass


def _create_tmp(folder: Path, extension: str) -> tuple[int, str]:
    """A new hidden file in ``folder`` opened for writing. ``os.open`` with mode 0o666 lets the
    kernel apply the umask (and a default ACL), as ``open()`` does; ``mkstemp`` would give 0600."""
    for _ in range(100):
        tmp = str(folder / f"{TMP_PREFIX}{secrets.token_hex(8)}.{extension}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")
