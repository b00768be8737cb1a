"""Content-addressed media storage: ``ab/cd/<sha256>.<ext>`` under the media root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class MediaStore(Protocol):
    def put(self, sha256: str, extension: str, data: bytes) -> str:
        """Store the bytes (idempotent) and return the storage key."""

    def open_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def storage_key(sha256: str, extension: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    if not extension.isalnum():
        raise ValueError(f"bad extension {extension!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"


class LocalMediaStore:
    """Files under a local (or network-mounted) folder, written atomically by rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._made: set[Path] = set()  # folders known to exist (saves a mkdir per file)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key escapes the media root: {key!r}")
        return path

    def put(self, sha256: str, extension: str, data: bytes) -> str:
        key = storage_key(sha256, extension)
        path = self._path(key)
        if path.exists():
            return key
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f".{extension}")
        except FileNotFoundError:  # the folder was removed behind our back
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f".{extension}")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def open_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()
