"""The source contract shared by every kind of source."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.domain.vocabulary import SourceKind

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv"})  # the media files of a video job (media: video)
CAPTION_KEYS = ("caption", "alt_text", "alt", "text", "txt", "title")
MAX_SIDECAR_BYTES = 1 << 20  # a caption / metadata sidecar larger than this is not read
MAX_ANNOTATION_ERRORS = 100  # reasons kept per item in ``annotation_errors``; the rest are counted


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
    kind: ClassVar[SourceKind]
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


def escape_name(name: str | bytes) -> str:
    """A file or member name as storable text: bytes that are not UTF-8 (kept by ``os.walk`` /
    ``tarfile`` as lone surrogates) become ``\\xe9`` escapes, NUL becomes ``\\x00``. Shown in keys and
    reasons; read back with the raw name kept beside it (see ``raw_name``)."""
    try:
        raw = name if isinstance(name, bytes) else os.fsencode(name)
    except UnicodeEncodeError:  # a surrogate no file-system name decodes to (from JSON text)
        return safe_text(str(name))
    return raw.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


MAX_KEY_CHARS = 1000  # item keys are stored in 1024 characters


def bounded_key(key: str) -> str:
    """``key`` when short enough to store whole, else its head and a digest of the whole (two long
    names that share a head stay two items)."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", errors="backslashreplace")).hexdigest()[:16]
    return f"{key[:MAX_KEY_CHARS - 40]}...#{digest}"


def raw_name(name: str) -> str | None:
    """The hex of ``name``'s bytes when ``escape_name`` would change it (so the file can be found
    again from JSON), else None."""
    if escape_name(name) == name:
        return None
    try:
        return os.fsencode(name).hex()
    except UnicodeEncodeError:  # not a name the file system gave: nothing to find again
        return None


def safe_text(text: str) -> str:
    """A string that PostgreSQL and SQLite can store: lone surrogates (from JSON ``\\udXXX`` escapes)
    and NUL become backslash escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def json_safe(value: Any) -> Any:
    """A parsed JSON value made storable in a JSON column: non-finite numbers (``NaN``,
    ``Infinity``, which Python's parser accepts and PostgreSQL refuses) become None, strings and keys
    pass ``safe_text``. Walks without recursion, so any depth the parser accepted is fine."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, str):
            return safe_text(v)
        if isinstance(v, dict):
            return {}
        if isinstance(v, list):
            return []
        return v

    root = clean(value)
    stack = [(value, root)] if isinstance(value, dict | list) else []
    while stack:
        src, dst = stack.pop()
        pairs = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in pairs:
            out = clean(v)
            if isinstance(dst, dict):
                dst[safe_text(str(k))] = out
            else:
                dst.append(out)
            if isinstance(v, dict | list):
                stack.append((v, out))
    return root


def capped_errors(reasons: list[str]) -> list[str]:
    """At most ``MAX_ANNOTATION_ERRORS`` reasons, the rest counted in a last line."""
    if len(reasons) <= MAX_ANNOTATION_ERRORS:
        return reasons
    return reasons[:MAX_ANNOTATION_ERRORS] + [f"... and {len(reasons) - MAX_ANNOTATION_ERRORS} more"]


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
    captions = [safe_text(t.strip()) for t in texts if t and t.strip()]
    if json_text is not None:
        try:
            extra = parse_json(json_text or "null")
        except ValueError as exc:
            errors.append(f"{json_name}: {exc}")
        else:
            if isinstance(extra, dict):
                extra = json_safe(extra)
                captions.extend(c for c in captions_from_json(extra) if c not in captions)
                meta["extra"] = extra
    if errors:
        meta["sidecar_error"] = safe_text("; ".join(errors))
    if captions:
        meta["captions"] = captions
    return meta


def real_path(path: str | os.PathLike[str]) -> Path:
    """``Path.resolve()`` that never raises: a symlink loop stays as it is (Python 3.11's resolve
    raises RuntimeError on one); reading it later fails that item with ``symlink loop``."""
    return Path(os.path.realpath(path))


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
        shown = escape_name(os.fspath(rel))[:300]
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
        if exc.errno == errno.ELOOP:
            raise FetchError("symlink loop") from None
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
        reason, path = str(exc), escape_name(path)
        if reason == "file not found":
            raise FetchError(f"file not found: {path}") from None
        if reason == "not a file":
            raise FetchError(f"not a file: {path}") from None
        raise FetchError(f"cannot read {path}: {reason}") from None
