"""WebDataset-style tar shards: members grouped into samples by key (name up to the first dot).

A sample's image member is read later straight from its byte offset in the shard; its ``.txt``
and ``.json`` members give captions and metadata. Only uncompressed ``.tar`` can be seeked.
"""

from __future__ import annotations

import glob
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.sources.base import (
    IMAGE_EXTENSIONS, FetchError, Source, SourceError, SourceItem, sidecar_meta,
)

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")
MAX_TEXT_MEMBER = 1 << 20


def expand_shards(uri: str) -> list[Path]:
    """``shards/{000..009}.tar``, a glob, a single ``.tar`` or a folder of ``.tar`` files."""
    path = Path(uri).expanduser()
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.suffix.lower() == ".tar" and p.is_file())
    elif match := _BRACE.search(uri):
        lo, hi = match.group(1), match.group(2)
        width = len(lo)
        shards = [
            Path(uri[: match.start()] + str(n).zfill(width) + uri[match.end():]).expanduser()
            for n in range(int(lo), int(hi) + 1)
        ]
    elif any(c in uri for c in "*?["):
        shards = sorted(Path(p) for p in glob.glob(str(path)))
    else:
        shards = [path]
    if not shards:
        raise SourceError(f"no .tar shards found for {uri}")
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise SourceError(f"shard not found: {missing[0]}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    for shard in shards:
        if shard.suffix.lower() != ".tar":
            raise SourceError(f"{shard.name}: only uncompressed .tar shards are supported")
    return [s.resolve() for s in shards]


def _sample_key(member_name: str) -> tuple[str, str]:
    """('dir/000123', 'jpg') for 'dir/000123.jpg'; the extension is everything after the first dot."""
    directory, _, base = member_name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


class WebDatasetSource(Source):
    kind = "webdataset"
    queue = "cpu"

    def __init__(self, shards: list[Path], uri: str) -> None:
        self.shards = shards
        self.uri = uri if any(c in uri for c in "{*?[") else str(Path(uri).expanduser().resolve())

    def iter_items(self) -> Iterator[SourceItem]:
        for shard in self.shards:
            yield from self._shard_items(shard)

    def _shard_items(self, shard: Path) -> Iterator[SourceItem]:
        current: str | None = None
        members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(shard, mode="r:") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    key, ext = _sample_key(info.name)
                    if key != current and current is not None:
                        yield self._sample(shard, tar, current, members)
                        members = {}
                    current = key
                    members[ext] = info
                if current is not None:
                    yield self._sample(shard, tar, current, members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield SourceItem(
                key=f"{shard.name}/#shard-error",
                locator={"error": f"corrupt or unreadable shard {shard.name}: {exc}"},
            )

    def _sample(self, shard: Path, tar: tarfile.TarFile, key: str,
                members: dict[str, tarfile.TarInfo]) -> SourceItem:
        item_key = f"{shard.name}/{key}"
        image_ext = next((e for e in members if f".{e.rsplit('.', 1)[-1]}" in IMAGE_EXTENSIONS), None)
        texts = [_read_text(tar, members[ext]) for ext in ("txt", "caption")
                 if ext in members and members[ext].size <= MAX_TEXT_MEMBER]
        json_text = (_read_text(tar, members["json"])
                     if "json" in members and members["json"].size <= MAX_TEXT_MEMBER else None)
        meta = sidecar_meta(texts, json_text, f"{key}.json", {"shard": shard.name, "sample": key})
        if image_ext is None:
            return SourceItem(key=item_key, meta=meta, locator={
                "error": f"sample has no image member (members: {', '.join(sorted(members))})"})
        info = members[image_ext]
        return SourceItem(key=item_key, meta=meta, locator={
            "shard": str(shard), "member": info.name, "offset": info.offset_data, "size": info.size})

    def read(self, locator: dict[str, Any]) -> bytes:
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        try:
            with open(locator["shard"], "rb") as handle:
                handle.seek(int(locator["offset"]))
                data = handle.read(int(locator["size"]))
        except (KeyError, ValueError, TypeError):
            raise FetchError("bad locator for a tar member") from None
        except OSError as exc:
            raise FetchError(f"cannot read shard {locator.get('shard')}: {exc.strerror or exc}") from None
        if len(data) != int(locator["size"]):
            raise FetchError(f"shard truncated: member {locator.get('member')} is cut short")
        return data


def _read_text(tar: tarfile.TarFile, info: tarfile.TarInfo) -> str:
    handle = tar.extractfile(info)
    if handle is None:
        return ""
    return handle.read().decode("utf-8", errors="replace").strip()
