"""Source sandboxing: which local sources a mining job started over HTTP may name.

Sources are paths on the server, so an operator must not reach everything the server can read
(listing a folder or reading a file as a URL list would show its names and lines). A local source —
the folder, URL list, tar shards, COCO file and images folder — must lie, after symlinks and '..'
are resolved, under an allowed root: ``sources.allowed_roots`` (``DATAENGINE_SOURCES__ALLOWED_ROOTS``)
when set, else ``<data_dir>/sources``. A relative path is taken relative to the first root. A path
outside the roots is refused (:class:`SourceRefused`) before anything about it — even whether it
exists — is revealed. A URL list must hold http(s) URLs only. The CLI mines any path its user names
and does not come here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.domain.vocabulary import SourceKind
from engine.settings import FetchSettings, Settings
from engine.sources import detect_kind
from engine.sources.base import SourceError
from engine.sources.urls import UrlListSource
from engine.sources.webdataset import expand_shards

URL_SCHEMES = ("http://", "https://")


class SourceRefused(SourceError):
    """A requested source that may not be mined over HTTP: outside the allowed roots, missing, of an
    unknown kind, or a URL list with a line that is not an http(s) URL. The message says why and
    never quotes a file's content."""


@dataclass(frozen=True)
class AllowedSource:
    """A requested source that passed the checks: absolute paths and its kind."""

    source: str
    kind: SourceKind
    images_dir: str | None


def source_roots(settings: Settings) -> list[Path]:
    """The folders (resolved) under which operators may name local sources: ``sources.allowed_roots``,
    or ``<data_dir>/sources`` when that is empty."""
    configured = settings.sources.allowed_roots
    roots = list(configured) if configured else [settings.data_dir / "sources"]
    return [Path(r).expanduser().resolve() for r in roots]


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether ``path`` (already resolved) is one of ``roots`` or lies under one."""
    return any(path == root or root in path.parents for root in roots)


def confine(raw: str, roots: Sequence[Path], what: str = "source") -> Path:
    """The absolute path of ``raw`` (a relative one: under the first root), or :class:`SourceRefused`
    when it is a URL, not a valid path, or resolves (symlinks, '..') outside every root. Only the
    path's name is looked at before the refusal: nothing says whether it exists."""
    if raw.lower().startswith(URL_SCHEMES) or "://" in raw:
        raise SourceRefused(f"{what} must be a path on the server, not a URL (a URL list is a .txt/.csv file of "
                            "http(s) URLs under an allowed folder)")
    if "\x00" in raw:
        raise SourceRefused(f"{what}: invalid path")
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # ~nosuchuser: no such home directory
        raise SourceRefused(f"{what}: invalid path (no such home directory)") from None
    if not path.is_absolute():
        path = roots[0] / path
    if not inside(path.resolve(), roots):
        raise SourceRefused(f"{what} must lie under an allowed source folder: " + ", ".join(str(r) for r in roots))
    return path


def check_url_list(path: str) -> None:
    """Every URL of the list is http(s); the first other one is refused with its line number (never its text)."""
    source = UrlListSource(path, FetchSettings())
    try:
        for item in source.iter_items():
            if not str(item.locator.get("url", "")).lower().startswith(URL_SCHEMES):
                raise SourceRefused(f"URL list line {item.meta.get('line')}: only http(s) URLs can be mined")
    finally:
        source.close()


def allowed_source(settings: Settings, source: str, kind: str | None = None,
                   images_dir: str | None = None) -> AllowedSource:
    """The requested source checked against the allowed roots (:func:`source_roots`) and found
    usable, or :class:`SourceRefused` (another :class:`SourceError` for a source that cannot be read)
    saying what is wrong. ``kind`` None: detected from the path."""
    roots = source_roots(settings)
    path = str(confine(source.strip(), roots, "source"))
    images = str(confine(images_dir.strip(), roots, "images_dir")) if images_dir else None
    detected = kind or detect_kind(path)
    if detected not in tuple(SourceKind):
        raise SourceRefused(f"unknown source kind {detected!r}")
    found = SourceKind(detected)
    if found == SourceKind.WEBDATASET:
        shards = expand_shards(path, settings.sources.max_shard_names)
        if any(not inside(shard.resolve(), roots) for shard in shards):
            raise SourceRefused("every shard must lie under an allowed source folder")
    elif found == SourceKind.FOLDER and not Path(path).is_dir():
        raise SourceRefused(f"folder not found: {source}")
    elif found in (SourceKind.URLS, SourceKind.COCO) and not Path(path).is_file():
        raise SourceRefused(f"file not found: {source}")
    if found == SourceKind.URLS:
        check_url_list(path)
    if images is not None and not Path(images).is_dir():
        raise SourceRefused(f"images_dir not found: {images_dir}")
    return AllowedSource(source=path, kind=found, images_dir=images)
