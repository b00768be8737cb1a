"""A local folder, walked recursively; ``name.txt`` / ``name.json`` beside an image are its captions.

Everything read resolves inside the folder: an image or sidecar that is a symlink (or a path with
``..``) leading outside it is not read — the image fails alone with the reason, the sidecar is
skipped with its reason in ``sidecar_error`` (never its content)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.sources.base import (
    IMAGE_EXTENSIONS, FetchError, Source, SourceError, SourceItem, read_confined_text, read_local_file,
    sidecar_meta,
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
                yield SourceItem(key=rel, locator={"path": rel}, meta=_sidecar_meta(self.root, path))

    def read(self, locator: dict[str, Any]) -> bytes:
        rel = locator.get("path")
        if not isinstance(rel, str):
            raise FetchError("bad locator: no path")
        return read_local_file(rel, root=self.root)


def _sidecar_meta(root: Path, image_path: Path) -> dict[str, Any]:
    errors: list[str] = []
    txt = image_path.with_suffix(".txt")
    text = read_confined_text(root, txt, txt.name, errors)
    sidecar = image_path.with_suffix(".json")
    json_text = read_confined_text(root, sidecar, sidecar.name, errors)
    return sidecar_meta([text] if text is not None else [], json_text, sidecar.name, errors=errors)
