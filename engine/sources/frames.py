"""Folders of frames: a root directory whose sub-folders are videos, each one's image files its frames
in natural name order (``2.jpg`` before ``10.jpg``). Image files lying in the root itself make the
root one more video (item key ``.``); folders deeper than one level are not walked.

``<folder>.txt`` / ``<folder>.json`` beside a video's folder give its captions, as sidecars do for
images. Everything read resolves inside the root. A folder with more files than
``max_files`` (``video.limits.max_frame_folder_files``) fails alone when listed."""

from __future__ import annotations

import os
import re
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
    confine,
    escape_name,
    read_confined_text,
    read_local_file,
    real_path,
    sidecar_meta,
)

ROOT_KEY = "."
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key: runs of digits compare as numbers (``frame2`` < ``frame10``)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in _DIGITS.split(name) if part)


def frame_names(folder: Path) -> list[str]:
    """The frame files of a folder (image extensions, not hidden), natural order."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries
                 if not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
                 and e.is_file(follow_symlinks=True)]
    return sorted(names, key=natural_key)


class FrameFoldersSource(Source):
    kind = SourceKind.FRAMES
    queue = "cpu"

    def __init__(self, uri: str, max_file_bytes: int | None = None, max_files: int | None = None) -> None:
        root = Path(uri).expanduser()
        if not root.is_dir():
            raise SourceError(f"folder not found: {uri}")
        self.root = real_path(root)
        self.uri = str(self.root)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files

    def iter_items(self) -> Iterator[SourceItem]:
        try:
            subfolders = sorted((e.name for e in os.scandir(self.root)
                                 if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")),
                                key=natural_key)
        except OSError as exc:
            raise SourceError(f"cannot list {self.uri}: {exc.strerror or type(exc).__name__}") from None
        for rel in [ROOT_KEY, *subfolders]:
            item = self._item(rel)
            if item is not None:
                yield item

    def _item(self, rel: str) -> SourceItem | None:
        shown = escape_name(rel)
        folder = self.root / rel
        try:
            names = frame_names(folder)
        except OSError as exc:
            return SourceItem(key=bounded_key(shown), locator={
                "error": f"frame folder {shown} cannot be listed: {exc.strerror or type(exc).__name__}"})
        if not names:
            return None if rel == ROOT_KEY else SourceItem(key=bounded_key(shown), locator={
                "error": f"frame folder {shown} holds no frame (image files)"})
        if self.max_files is not None and len(names) > self.max_files:
            return SourceItem(key=bounded_key(shown), locator={
                "error": f"frame folder {shown} holds {len(names):,} frames, over the cap of {self.max_files:,} "
                         "(video.limits.max_frame_folder_files)"})
        meta = _sidecar_meta(self.root, folder) if rel != ROOT_KEY else {}
        meta["frames"] = len(names)
        return SourceItem(key=bounded_key(shown), locator={"folder": shown}, meta=meta)

    def frame_files(self, locator: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of each frame of the item's folder in order, read one at a time; FetchError
        (naming the frame) when one cannot be read."""
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        rel = locator.get("folder")
        if not isinstance(rel, str):
            raise FetchError("bad locator: no folder")
        folder = Path(confine(self.root, rel, "frame folder"))
        try:
            names = frame_names(folder)
        except OSError as exc:
            raise FetchError(f"frame folder {rel} cannot be listed: {exc.strerror or type(exc).__name__}") from None
        if self.max_files is not None and len(names) > self.max_files:
            raise FetchError(f"frame folder {rel} holds {len(names):,} frames, over the cap of {self.max_files:,}")
        for name in names:
            shown = escape_name(name)
            try:
                data = read_local_file(str(folder / name), root=self.root, max_bytes=self.max_file_bytes)
            except FetchError as exc:
                raise FetchError(f"frame {shown}: {exc}") from None
            yield shown, data

    def read(self, locator: dict[str, Any]) -> bytes:
        """A frame folder has no single file: its frames are read by :meth:`frame_files`."""
        raise FetchError("a frame folder is read frame by frame (frame_files), not as one file")


def _sidecar_meta(root: Path, folder: Path) -> dict[str, Any]:
    errors: list[str] = []
    txt = folder.with_name(folder.name + ".txt")
    text = read_confined_text(root, txt, escape_name(txt.name), errors)
    sidecar = folder.with_name(folder.name + ".json")
    json_text = read_confined_text(root, sidecar, escape_name(sidecar.name), errors)
    return sidecar_meta([text] if text is not None else [], json_text, escape_name(sidecar.name), errors=errors)
