"""The source contract shared by every kind of source."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
CAPTION_KEYS = ("caption", "alt_text", "alt", "text", "txt", "title")
MAX_SIDECAR_BYTES = 1 << 20  # a caption / metadata sidecar larger than this is not read


class SourceError(Exception):
    """The source as a whole cannot be used (missing file, malformed listing)."""


class FetchError(Exception):
    """One item's bytes could not be read; the message is the reason recorded for the item."""


@dataclass(frozen=True)
class SourceItem:
    key: str  # unique within the source, stable across runs
    locator: dict[str, Any]  # JSON: how to read the bytes later
    meta: dict[str, Any] = field(default_factory=dict)  # captions, annotations, provenance


@dataclass(frozen=True)
class ReadResult:
    item_id: int
    data: bytes | None
    error: str | None
    seconds: float


class Source:
    kind: ClassVar[str]
    queue: ClassVar[str] = "cpu"  # the Celery queue that mines this source: io for network-bound

    uri: str

    def iter_items(self) -> Iterator[SourceItem]:
        raise NotImplementedError

    def read(self, locator: dict[str, Any]) -> bytes:
        """The item's bytes, or FetchError."""
        raise NotImplementedError

    def read_many(self, requests: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[ReadResult]:
        """Read items one by one; network sources override this to read concurrently."""
        for item_id, locator in requests:
            yield timed_read(self, item_id, locator)

    def close(self) -> None:
        """Release connections or file handles."""


def timed_read(source: Source, item_id: int, locator: dict[str, Any]) -> ReadResult:
    start = time.perf_counter()
    try:
        data = source.read(locator)
    except FetchError as exc:
        return ReadResult(item_id, None, str(exc), time.perf_counter() - start)
    return ReadResult(item_id, data, None, time.perf_counter() - start)


def captions_from_json(meta: dict[str, Any]) -> list[str]:
    """Caption-like fields of a metadata dict (img2dataset / WebDataset conventions)."""
    out = []
    for key in CAPTION_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
    return out


def json_error(exc: BaseException) -> str:
    """Why a text is not valid JSON, without quoting any of it: 'not valid JSON (line x col y)'."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno} col {exc.colno})"
    if isinstance(exc, RecursionError):
        return "not valid JSON (nested too deeply)"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid JSON (not UTF-8 text at byte {exc.start})"
    return "not valid JSON"


def parse_json(text: str | bytes) -> Any:
    """json.loads; ValueError with ``json_error``'s reason (never the text) when it does not parse."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(json_error(exc)) from None


def sidecar_meta(texts: list[str], json_text: str | None, json_name: str,
                 meta: dict[str, Any] | None = None, errors: list[str] | None = None) -> dict[str, Any]:
    """Item meta from caption texts and a JSON sidecar (img2dataset / WebDataset layout):
    ``captions`` (texts first, then the JSON's caption-like fields), ``extra`` (the JSON object),
    ``sidecar_error`` when a sidecar was refused or the JSON does not parse (the reason, never the
    sidecar's text)."""
    meta = dict(meta or {})
    errors = list(errors or [])
    captions = [t.strip() for t in texts if t and t.strip()]
    if json_text is not None:
        try:
            extra = parse_json(json_text or "null")
        except ValueError as exc:
            errors.append(f"{json_name}: {exc}")
        else:
            if isinstance(extra, dict):
                captions.extend(c for c in captions_from_json(extra) if c not in captions)
                meta["extra"] = extra
    if errors:
        meta["sidecar_error"] = "; ".join(errors)
    if captions:
        meta["captions"] = captions
    return meta


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies in ``root`` (or is it), both compared as given (resolve first)."""
    path, root = os.fspath(path), os.fspath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives, or one relative and one absolute
        return False


def confine(root: str | os.PathLike[str], rel: str | os.PathLike[str], what: str = "path") -> str:
    """The real path of ``rel`` taken under ``root`` (absolute ``rel`` stays absolute), after every
    symlink and ``..`` is resolved; FetchError when it lies outside the root's real path.
    The message names the path as given, never what the file holds."""
    real_root = os.path.realpath(root)
    if "\x00" in os.fspath(rel):
        raise FetchError(f"{what} is not a valid path")
    path = os.path.realpath(os.path.join(real_root, rel))
    if not inside(path, real_root):
        shown = os.fspath(rel)[:300]
        raise FetchError(f"{what} escapes the source folder (a symlink or '..' leading outside it): {shown}")
    return path


def read_confined_text(root: str | os.PathLike[str], path: str | os.PathLike[str], name: str,
                       errors: list[str], max_bytes: int = MAX_SIDECAR_BYTES) -> str | None:
    """The text of an optional sidecar file, or None when there is none. A sidecar that resolves
    outside ``root``, is not a regular file, is too large or cannot be read is not read: its reason
    (never its content) is appended to ``errors``."""
    if not os.path.lexists(path):
        return None
    try:
        real = confine(root, path, name)
    except FetchError:
        errors.append(f"{name}: not read, it is a symlink to a file outside the source folder")
        return None
    try:
        data = _read_regular(real, max_bytes)
    except FetchError as exc:
        errors.append(f"{name}: not read, {exc}")
        return None
    return data.decode("utf-8", errors="replace")


def _read_regular(path: str, max_bytes: int | None) -> bytes:
    """Read a regular file without blocking on a FIFO or a device; FetchError with a reason."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FetchError("file not found") from None
    except IsADirectoryError:
        raise FetchError("not a file") from None
    except OSError as exc:
        raise FetchError(exc.strerror or type(exc).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FetchError("not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FetchError(f"too large: {info.st_size:,} bytes exceeds the cap of {max_bytes:,}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:
        raise FetchError(f"too large: more than the cap of {max_bytes:,} bytes")
    return data


def read_local_file(path: str, root: str | os.PathLike[str] | None = None,
                    max_bytes: int | None = None) -> bytes:
    """A local file's bytes. With ``root``: ``path`` (relative to it, or absolute) must resolve inside
    it (no symlink or ``..`` escape). FIFOs and devices are refused rather than read (they could
    block or never end); ``max_bytes`` caps the size. FetchError says why, never with file content."""
    real = confine(root, path) if root is not None else path
    try:
        return _read_regular(real, max_bytes)
    except FetchError as exc:
        reason = str(exc)
        if reason == "file not found":
            raise FetchError(f"file not found: {path}") from None
        if reason == "not a file":
            raise FetchError(f"not a file: {path}") from None
        raise FetchError(f"cannot read {path}: {reason}") from None
