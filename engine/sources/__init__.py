"""Sources: where mined items come from (folder, URL list, WebDataset shards, COCO JSON, frame folders).

A source lists items once (``iter_items``), each with a JSON ``locator`` saying how to read its
bytes later, possibly in another process (``read_many``). Reading failures are per item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.domain.vocabulary import MediaKind, SourceKind
from engine.settings import FetchSettings, ImageLimits, SourceSettings
from engine.sources.base import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FetchError, Source, SourceError, SourceItem
from engine.sources.coco import CocoSource
from engine.sources.folder import FolderSource
from engine.sources.frames import FrameFoldersSource
from engine.sources.urls import UrlListSource
from engine.sources.webdataset import MAX_SHARD_NAMES, WebDatasetSource, expand_shards

SOURCE_KINDS = tuple(SourceKind)

__all__ = [
    "FetchError", "Source", "SourceError", "SourceItem", "SOURCE_KINDS", "detect_kind", "open_source",
]


def detect_kind(uri: str) -> SourceKind:
    """Guess the kind of a source from its path."""
    path = Path(uri)
    if path.is_dir():
        return _folder_kind(path, uri)
    kind = _kind_by_name(uri)
    if kind is not None:
        return kind
    if not path.exists():
        raise SourceError(f"source not found: {uri}")
    raise SourceError(
        f"cannot tell what kind of source {uri} is; pass --kind ({', '.join(SOURCE_KINDS)})"
    )


def _folder_kind(path: Path, uri: str) -> SourceKind:
    """A folder of tar shards only (hidden entries aside) is a WebDataset; any other a folder source."""
    try:
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise SourceError(f"cannot list {uri}: {exc.strerror or type(exc).__name__}") from None
    return SourceKind.WEBDATASET if _only_shards(entries) else SourceKind.FOLDER


def _only_shards(entries: list[Path]) -> bool:
    """At least one file among the entries, every file a ``.tar``, and no subfolder."""
    files = [p for p in entries if p.is_file()]
    return bool(files) and all(p.suffix.lower() == ".tar" for p in files) and not any(p.is_dir() for p in entries)


def _kind_by_name(uri: str) -> SourceKind | None:
    """The kind the path's name says (a tar, a brace range or glob, a JSON, a list), None if none."""
    lower = uri.lower()
    if lower.endswith(".tar") or "{" in uri or "*" in uri:
        return SourceKind.WEBDATASET
    if lower.endswith(".json"):
        return SourceKind.COCO
    if lower.endswith((".txt", ".csv", ".tsv", ".lst")):
        return SourceKind.URLS
    return None


def open_source(
    uri: str,
    kind: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    fetch: FetchSettings | None = None,
    max_shard_names: int | None = None,
    max_file_bytes: int | None = None,
    max_coco_bytes: int | None = None,
    max_frame_files: int | None = None,
) -> Source:
    """Open a source by kind (detected when not given). Raises SourceError with a clear reason.
    ``max_shard_names``: the most shards a brace range / glob may name (``sources.max_shard_names``);
    ``max_file_bytes``: the largest local image file or tar member read (``limits.max_file_bytes``);
    ``max_coco_bytes``: the largest COCO JSON listed (``sources.max_coco_bytes``);
    ``options["media"] == "video"``: folder and WebDataset sources list video files
    (``VIDEO_EXTENSIONS``) instead of images; ``max_frame_files``: the most frames of one frame folder
    (``video.limits.max_frame_folder_files``)."""
    kind = kind or detect_kind(uri)
    options = options or {}
    fetch = fetch or FetchSettings()
    max_file_bytes = max_file_bytes or ImageLimits().max_file_bytes
    extensions = VIDEO_EXTENSIONS if options.get("media") == MediaKind.VIDEO else IMAGE_EXTENSIONS
    if kind == SourceKind.FOLDER:
        return FolderSource(uri, max_file_bytes=max_file_bytes, extensions=extensions)
    if kind == SourceKind.FRAMES:
        return FrameFoldersSource(uri, max_file_bytes=max_file_bytes, max_files=max_frame_files)
    if kind == SourceKind.URLS:
        return UrlListSource(uri, fetch, media_type=str(options.get("media") or MediaKind.IMAGE))
    if kind == SourceKind.WEBDATASET:
        return WebDatasetSource(expand_shards(uri, max_shard_names or MAX_SHARD_NAMES), uri,
                                max_file_bytes=max_file_bytes, extensions=extensions)
    if kind == SourceKind.COCO:
        return CocoSource(uri, fetch, images_dir=options.get("images_dir"), max_file_bytes=max_file_bytes,
                          max_coco_bytes=max_coco_bytes or SourceSettings().max_coco_bytes)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
