"""WebDataset-style tar shards: members grouped into samples by key (name up to the first dot).

A sample's image member is read later straight from its byte offset in the shard; its ``.txt``
and ``.json`` members give captions and metadata. Only uncompressed ``.tar`` can be seeked.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, overload

from engine.domain.vocabulary import SourceKind
from engine.sources.base import (
    IMAGE_EXTENSIONS,
    FetchError,
    Source,
    SourceError,
    SourceItem,
    bounded_key,
    escape_name,
    inside,
    raw_name,
    real_path,
    sidecar_meta,
)

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")
MAX_TEXT_MEMBER = 1 << 20
MAX_SHARD_NAMES = 100_000  # default bound on the names a brace range or glob may give


class ShardRange(Sequence[Path]):
    """The names of ``shards/{000..099}-{0..9}.tar`` computed on demand (every ``{lo..hi}`` group,
    the last one varying fastest): its memory does not grow with the number of names."""

    def __init__(self, uri: str) -> None:
        self._parts: list[str] = []  # literal text between the groups
        self._groups: list[tuple[int, int, int]] = []  # (lo, count, width)
        end = 0
        for match in _BRACE.finditer(uri):
            lo_text, hi_text = match.group(1), match.group(2)
            lo, hi = int(lo_text), int(hi_text)
            if hi < lo:
                raise SourceError(f"brace range {match.group(0)} in {uri} is empty (it ends before it starts)")
            self._parts.append(uri[end:match.start()])
            self._groups.append((lo, hi - lo + 1, len(lo_text)))
            end = match.end()
        self._parts.append(uri[end:])
        self._len = 1
        for _, count, _ in self._groups:
            self._len *= count

    @property
    def name_count(self) -> int:
        """How many names (may exceed what len() can return)."""
        return self._len

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...
    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        digits = []
        for lo, count, width in reversed(self._groups):
            index, offset = divmod(index, count)
            digits.append(str(lo + offset).zfill(width))
        text = self._parts[0]
        for digit, part in zip(reversed(digits), self._parts[1:], strict=True):
            text += digit + part
        return Path(text).expanduser()

    def __iter__(self) -> Iterator[Path]:
        for index in range(self._len):
            yield self[index]


def _resolved(shards: Sequence[Path]) -> Sequence[Path]:
    return _Resolved(shards) if isinstance(shards, ShardRange) else [real_path(s) for s in shards]


class _Resolved(Sequence[Path]):
    """A lazy sequence of shards, each resolved when it is asked for."""

    def __init__(self, shards: Sequence[Path]) -> None:
        self._shards = shards

    def __len__(self) -> int:
        return len(self._shards)

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...
    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [real_path(p) for p in self._shards[index]]
        return real_path(self._shards[index])

    def __iter__(self) -> Iterator[Path]:
        return (real_path(p) for p in self._shards)


def expand_shards(uri: str, max_names: int = MAX_SHARD_NAMES) -> Sequence[Path]:
    """``shards/{000..009}.tar``, a glob, a single ``.tar`` or a folder of ``.tar`` files.

    A brace range (or a glob, or a folder) naming more than ``max_names`` shards is refused before
    any name is made; a range within the bound is a lazy sequence (memory does not grow with it),
    checked shard by shard without keeping the names."""
    path = Path(uri).expanduser()
    shards: Sequence[Path]
    if path.is_dir():
        found = islice((p for p in path.iterdir() if p.suffix.lower() == ".tar" and p.is_file()), max_names + 1)
        shards = sorted(found)
        _bound(len(shards), max_names, uri, "the folder holds")
    elif _BRACE.search(uri):
        shards = ShardRange(uri)
        _bound(shards.name_count, max_names, uri, "the brace range names")
    elif any(c in uri for c in "*?["):
        shards = sorted(Path(p) for p in islice(glob.iglob(str(path)), max_names + 1))
        _bound(len(shards), max_names, uri, "the pattern matches")
    else:
        shards = [path]
    if not shards:
        raise SourceError(f"no .tar shards found for {uri}")
    missing, first_missing = 0, None
    for shard in shards:
        if not shard.is_file():
            missing += 1
            first_missing = first_missing or str(shard)
    if missing:
        raise SourceError(f"shard not found: {first_missing}" + (f" (+{missing - 1} more)" if missing > 1 else ""))
    for shard in (shards[:1] if isinstance(shards, ShardRange) else shards):  # a range: one suffix
        if shard.suffix.lower() != ".tar":
            raise SourceError(f"{shard.name}: only uncompressed .tar shards are supported")
    return _resolved(shards)


def _bound(count: int, max_names: int, uri: str, what: str) -> None:
    if count > max_names:
        if "names" in what:
            more = f"{count:,}" if count <= 10 ** 30 else "more than 10^30"
        else:
            more = f"more than {max_names:,}"
        raise SourceError(f"too many shards: {what} {more} for {uri[:300]}; at most {max_names:,} "
                          "(setting sources.max_shard_names)")


def shard_root(uri: str) -> Path | None:
    """The folder a folder / brace / glob source's shards must resolve inside (resolved): the folder,
    or the pattern's leading folders without a wildcard or range. None for one named .tar file."""
    path = Path(uri).expanduser()
    if path.is_dir():
        return real_path(path)
    if not any(c in uri for c in "{*?["):
        return None
    parts = path.parts
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "{*?["))
    return real_path(Path(*parts[:fixed])) if fixed else real_path(Path.cwd())


def _forget_headers(tar: tarfile.TarFile) -> None:
    """Drop the headers tarfile keeps of every member read (its ``members`` list, not in its typed
    interface): memory would otherwise grow with the shard."""
    headers: list[tarfile.TarInfo] = vars(tar)["members"]
    headers.clear()


def _sample_key(member_name: str) -> tuple[str, str]:
    """('dir/000123', 'jpg') for 'dir/000123.jpg'; the extension is everything after the first dot."""
    directory, _, base = member_name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


class WebDatasetSource(Source):
    kind = SourceKind.WEBDATASET
    queue = "cpu"

    def __init__(self, shards: Sequence[Path], uri: str, max_file_bytes: int | None = None,
                 extensions: frozenset[str] = IMAGE_EXTENSIONS) -> None:
        self.shards = shards
        self.uri = uri if any(c in uri for c in "{*?[") else str(real_path(Path(uri).expanduser()))
        self.root = shard_root(uri)
        self.max_file_bytes = max_file_bytes
        self.extensions = extensions  # a sample's media member: VIDEO_EXTENSIONS for a video job

    def iter_items(self) -> Iterator[SourceItem]:
        for shard in self.shards:
            if self.root is not None and not inside(shard, self.root):
                name = escape_name(shard.name)
                yield SourceItem(key=f"{name}/#shard-error", locator={
                    "error": f"shard {name} is a symlink leading outside the source folder; not read"})
                continue
            yield from self._shard_items(shard)

    def _shard_items(self, shard: Path) -> Iterator[SourceItem]:
        """The shard's samples in order. A member header that is cut off or corrupt ends the listing
        of the shard: the samples before it keep their members, the tail becomes an error item
        ``<shard>/#truncated`` (and the sample it cuts short notes what it lost)."""
        name = escape_name(shard.name)
        current: str | None = None
        members: dict[str, tarfile.TarInfo] = {}
        failure: str | None = None
        with contextlib.ExitStack() as stack:
            try:
                size = shard.stat().st_size
                tar = stack.enter_context(tarfile.open(shard, mode="r:"))
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield SourceItem(key=f"{name}/#shard-error",
                                 locator={"error": f"corrupt or unreadable shard {name}: {_reason(exc)}"})
                return
            while True:
                try:
                    info = tar.next()
                except (tarfile.TarError, OSError, EOFError) as exc:
                    failure = f"{_reason(exc)} at byte {tar.offset:,}"
                    break
                if info is None:
                    failure = _tail_problem(shard, tar.offset, size)
                    break
                _forget_headers(tar)
                if info.isdir():
                    continue
                key, ext = _sample_key(info.name)
                if key != current and current is not None:
                    yield self._sample(shard, tar, size, current, members)
                    members = {}
                current = key
                members.setdefault(ext, info)
            lost = _cut_member(shard, tar.offset, size) if failure else None
            if current is not None:
                note = None
                if lost is not None and _sample_key(lost)[0] == current:
                    note = f"member {escape_name(lost)} is cut off by the end of the shard"
                yield self._sample(shard, tar, size, current, members, note)
        if failure:
            yield SourceItem(key=f"{name}/#truncated", locator={
                "error": f"shard {name} is truncated or corrupt ({failure}); the members after that point are lost"})

    def _sample(self, shard: Path, tar: tarfile.TarFile, shard_size: int, key: str,
                members: dict[str, tarfile.TarInfo], note: str | None = None) -> SourceItem:
        shown = escape_name(key)
        item_key = bounded_key(f"{escape_name(shard.name)}/{shown}")
        errors = [note] if note else []
        texts = [t for t in (_member_text(tar, members[ext], shard_size, errors) for ext in ("txt", "caption")
                             if ext in members) if t is not None]
        json_text = _member_text(tar, members["json"], shard_size, errors) if "json" in members else None
        meta = sidecar_meta(texts, json_text, f"{shown}.json", {"shard": escape_name(shard.name), "sample": shown},
                            errors=errors)
        image_ext = next((e for e in members if f".{e.rsplit('.', 1)[-1]}" in self.extensions), None)
        if image_ext is None:
            names = sorted(members)
            listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            return SourceItem(key=item_key, meta=meta, locator={
                "error": f"sample has no {self._medium} member (members: {escape_name(listed)[:1000]})"})
        info = members[image_ext]
        member = escape_name(info.name)
        if not info.isfile() or info.issparse():
            return SourceItem(key=item_key, meta=meta, locator={
                "error": f"{self._medium} member {member} is a {_type_name(info)}, not a regular file; not read"})
        if self.max_file_bytes is not None and info.size > self.max_file_bytes:
            return SourceItem(key=item_key, meta=meta, locator={
                "error": f"too large: member {member} of {info.size:,} bytes exceeds the cap of "
                         f"{self.max_file_bytes:,}"})
        locator: dict[str, Any] = {"shard": escape_name(str(shard)), "member": member,
                                   "offset": info.offset_data, "size": info.size}
        raw = raw_name(str(shard))
        if raw is not None:  # a shard path that is not UTF-8: its bytes, to open it again
            locator["raw"] = raw
        return SourceItem(key=item_key, meta=meta, locator=locator)

    @property
    def _medium(self) -> str:
        return "image" if self.extensions == IMAGE_EXTENSIONS else "video"

    def read(self, locator: dict[str, Any]) -> bytes:
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        try:
            size = int(locator["size"])
            if self.max_file_bytes is not None and size > self.max_file_bytes:
                raise FetchError(f"too large: member {locator.get('member')} of {size:,} bytes exceeds the cap "
                                 f"of {self.max_file_bytes:,}")
            path = os.fsdecode(bytes.fromhex(locator["raw"])) if "raw" in locator else locator["shard"]
            with open(path, "rb") as handle:
                handle.seek(int(locator["offset"]))
                data = handle.read(size)
        except (KeyError, ValueError, TypeError):
            raise FetchError("bad locator for a tar member") from None
        except OSError as exc:
            raise FetchError(f"cannot read shard {locator.get('shard')}: {exc.strerror or exc}") from None
        if len(data) != size:
            raise FetchError(f"shard truncated: member {locator.get('member')} is cut short")
        return data

def _member_text(tar: tarfile.TarFile, info: tarfile.TarInfo, shard_size: int, errors: list[str]) -> str | None:
    """A caption / metadata member's text, or None with the reason (never its content) in ``errors``:
    not a regular file, larger than ``MAX_TEXT_MEMBER``, cut off by the end of the shard."""
    member = escape_name(info.name)
    if not info.isfile() or info.issparse():
        errors.append(f"{member}: not read, it is a {_type_name(info)}")
        return None
    if info.size > MAX_TEXT_MEMBER:
        errors.append(f"{member}: not read, {info.size:,} bytes exceeds {MAX_TEXT_MEMBER:,}")
        return None
    if info.offset_data + info.size > shard_size:
        errors.append(f"{member}: not read, it is cut off by the end of the shard")
        return None
    try:
        handle = tar.extractfile(info)
        data = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        errors.append(f"{member}: not read, {_reason(exc)}")
        return None
    return data.decode("utf-8", errors="replace").strip()


def _type_name(info: tarfile.TarInfo) -> str:
    for test, what in ((info.islnk, "hard link"), (info.issym, "symlink"), (info.ischr, "character device"),
                       (info.isblk, "block device"), (info.isfifo, "FIFO"), (info.isdir, "directory"),
                       (info.issparse, "sparse file")):
        if test():
            return what
    return "special member"


def _reason(exc: BaseException) -> str:
    return escape_name(str(exc))[:300] or type(exc).__name__


def _tail_problem(shard: Path, offset: int, size: int) -> str | None:
    """Why the shard ends badly at ``offset`` (where tarfile stopped), or None for a proper end
    (zero blocks, or nothing): a cut header, or a block that is not a header."""
    block = _block_at(shard, offset)
    if block is None or not block.strip(b"\0"):
        return None
    if len(block) < tarfile.BLOCKSIZE:
        return f"a member header is cut off at byte {offset:,} of {size:,}"
    return f"the block at byte {offset:,} is not a member header"


def _cut_member(shard: Path, offset: int, size: int) -> str | None:
    """The name in a member header cut off at ``offset``, when enough of it is there."""
    block = _block_at(shard, offset)
    if block is None or len(block) < 100:
        return None
    name = block[:100].split(b"\0", 1)[0]
    return os.fsdecode(name) if name else None


def _block_at(shard: Path, offset: int) -> bytes | None:
    try:
        with open(shard, "rb") as handle:
            handle.seek(offset)
            return handle.read(tarfile.BLOCKSIZE)
    except OSError:
        return None
