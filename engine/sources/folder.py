"""A local folder, walked recursively; ``name.txt`` / ``name.json`` beside an image are its captions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.sources.base import (
    IMAGE_EXTENSIONS, FetchError, Source, SourceError, SourceItem, captions_from_json, read_local_file,
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
    meta: dict[str, Any] = {}
    captions: list[str] = []
    txt = image_path.with_suffix(".txt")
    if txt.is_file():
        text = txt.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            captions.append(text)
    sidecar = image_path.with_suffix(".json")
    if sidecar.is_file():
        try:
            extra = json.loads(sidecar.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            meta["sidecar_error"] = f"{sidecar.name}: invalid JSON ({exc})"
        else:
            if isinstance(extra, dict):
                captions.extend(c for c in captions_from_json(extra) if c not in captions)
                meta["extra"] = extra
    if captions:
        meta["captions"] = captions
    return meta
