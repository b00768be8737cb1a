"""A local folder, walked recursively; ``name.txt`` / ``name.json`` beside an image are its captions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.sources.base import (
    IMAGE_EXTENSIONS, FetchError, Source, SourceError, SourceItem, read_local_file, sidecar_meta,
)


class FolderSource(Source):
    kind = "folder"
    queue = "cpu"

    def __init__(self, uri: str) -> None:
        root = Path(uri).expanduser()
        if not root.is_dir():
            raise SourceError(f"folder not found: {uri}")
        self.root = root.resolve()
        self.uri = str(self.root)

    def iter_items(self) -> Iterator[SourceItem]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                yield SourceItem(key=rel, locator={"path": rel}, meta=_sidecar_meta(path))

    def read(self, locator: dict[str, Any]) -> bytes:
        rel = locator.get("path")
        if not isinstance(rel, str):
            raise FetchError("bad locator: no path")
        path = (self.root / rel).resolve()
        if self.root not in path.parents:
            raise FetchError(f"path escapes the source folder: {rel}")
        return read_local_file(str(path))


def _sidecar_meta(image_path: Path) -> dict[str, Any]:
    txt = image_path.with_suffix(".txt")
    texts = [txt.read_text(encoding="utf-8", errors="replace")] if txt.is_file() else []
    sidecar = image_path.with_suffix(".json")
    json_text = sidecar.read_text(encoding="utf-8", errors="replace") if sidecar.is_file() else None
    return sidecar_meta(texts, json_text, sidecar.name)
