"""The source contract shared by every kind of source."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
CAPTION_KEYS = ("caption", "alt_text", "alt", "text", "txt", "title")


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


def sidecar_meta(texts: list[str], json_text: str | None, json_name: str,
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Item meta from caption texts and a JSON sidecar (img2dataset / WebDataset layout):
    ``captions`` (texts first, then the JSON's caption-like fields), ``extra`` (the JSON object),
    ``sidecar_error`` when the JSON does not parse."""
    meta = dict(meta or {})
    captions = [t.strip() for t in texts if t and t.strip()]
    if json_text is not None:
        try:
            extra = json.loads(json_text or "null")
        except ValueError as exc:
            meta["sidecar_error"] = f"{json_name}: invalid JSON ({exc})"
        else:
            if isinstance(extra, dict):
                captions.extend(c for c in captions_from_json(extra) if c not in captions)
                meta["extra"] = extra
    if captions:
        meta["captions"] = captions
    return meta


def read_local_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FetchError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise FetchError(f"not a file: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
