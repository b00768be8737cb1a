"""A local folder, walked recursively; ``name.txt`` / ``name.json`` beside an image are its captions.

Everything read resolves inside the folder: an image or sidecar that is a symlink (or a path with
``..``) leading outside it is not read — the image fails alone with the reason, the sidecar is
skipped with its reason in ``sidecar_error`` (never its content).

Listing never dies on one name: a name that is not UTF-8 is keyed with its bytes escaped
(``caf\\xe9.jpg``) and its raw bytes kept in the locator (``raw``, hex) so it is read back; a
sub-folder the walk cannot enter becomes an error item ``<folder>/#unreadable`` naming it; files
larger than ``limits.max_file_bytes`` fail alone when read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.domain.vocabulary import SourceKind
from engine.sources.base import (
    IMAGE_EXTENSIONS,
    FetchError,
    Source,
    SourceError,
    SourceItem,
    bounded_key,
    escape_name,
    raw_name,
    read_confined_text,
    read_local_file,
    real_path,
    sidecar_meta,
)


class FolderSource(Source):
    kind = SourceKind.FOLDER
    queue = "cpu"

    def __init__(self, uri: str, max_file_bytes: int | None = None,
                 extensions: frozenset[str] = IMAGE_EXTENSIONS) -> None:
        root = Path(uri).expanduser()
        if not root.is_dir():
            raise SourceError(f"folder not found: {uri}")
        self.root = real_path(root)
        self.uri = str(self.root)
        self.max_file_bytes = max_file_bytes
        self.extensions = extensions  # VIDEO_EXTENSIONS for a video job

    def iter_items(self) -> Iterator[SourceItem]:
        walk_errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False, onerror=walk_errors.append):
            yield from self._unreadable(walk_errors)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in self.extensions:
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                locator: dict[str, Any] = {"path": escape_name(rel)}
                raw = raw_name(rel)
                if raw is not None:
                    locator["raw"] = raw
                yield SourceItem(key=bounded_key(escape_name(rel)), locator=locator,
                                 meta=_sidecar_meta(self.root, path))
        yield from self._unreadable(walk_errors)

    def _unreadable(self, errors: list[OSError]) -> Iterator[SourceItem]:
        """An error item per folder the walk could not list (its reason, the folder's name)."""
        while errors:
            exc = errors.pop(0)
            folder = os.fspath(exc.filename) if exc.filename is not None else "?"
            try:
                rel = Path(folder).relative_to(self.root).as_posix()
            except ValueError:
                rel = folder
            shown = escape_name(rel)
            reason = exc.strerror or type(exc).__name__
            yield SourceItem(key=bounded_key(f"{shown}/#unreadable"), locator={
                "error": f"folder {shown} cannot be listed: {reason}; its files were not mined"})

    def read(self, locator: dict[str, Any]) -> bytes:
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        rel = locator.get("path")
        if isinstance(locator.get("raw"), str):
            try:
                rel = os.fsdecode(bytes.fromhex(locator["raw"]))
            except ValueError:
                raise FetchError("bad locator: raw name is not hex") from None
        if not isinstance(rel, str):
            raise FetchError("bad locator: no path")
        return read_local_file(rel, root=self.root, max_bytes=self.max_file_bytes)


def _sidecar_meta(root: Path, image_path: Path) -> dict[str, Any]:
    errors: list[str] = []
    txt = image_path.with_suffix(".txt")
    text = read_confined_text(root, txt, escape_name(txt.name), errors)
    sidecar = image_path.with_suffix(".json")
    json_text = read_confined_text(root, sidecar, escape_name(sidecar.name), errors)
    return sidecar_meta([text] if text is not None else [], json_text, escape_name(sidecar.name), errors=errors)
