"""Downloading a model repository from ModelScope through its file API, resumable across runs.

Written here with httpx rather than through the ``modelscope`` client: the client (modelscope 1.40
with modelscope-hub) probes site endpoints and acceleration routes before downloading, which a
loopback fake hub cannot answer faithfully, and it is not needed for two routes:

- ``GET {endpoint}/api/v1/models/{id}/repo/files?Revision=R&Recursive=true``: the files, with their
  size and sha256;
- ``GET {endpoint}/api/v1/models/{id}/repo?Revision=R&FilePath=P``: one file's bytes.

Each file is written to ``<file>.part`` and renamed once its size and sha256 match the listing; a
``.part`` left by an interrupted run (or a dropped connection within this one) is continued with a
``Range: bytes=N-`` request. The endpoint is ``MODELSCOPE_ENDPOINT``, else ``MODELSCOPE_DOMAIN`` (a
bare domain gets ``https://``), else https://www.modelscope.cn — the variables the client reads.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import httpx

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
CHUNK = 1 << 20


class ModelScopeError(RuntimeError):
    """The hub refused or the bytes did not match; the message says which file and why."""


class Progress(Protocol):
    """Where byte counts go (the CLI's progress bar)."""

    def total(self, size: int) -> None: ...

    def advance(self, size: int) -> None: ...


class _Silent:
    def total(self, size: int) -> None:
        pass

    def advance(self, size: int) -> None:
        pass


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative, posix
    size: int
    sha256: str | None
    revision: str | None  # the commit that last changed it, as the hub reports


def endpoint() -> str:
    """The ModelScope base URL from the environment (the client's variables)."""
    explicit = os.environ.get("MODELSCOPE_ENDPOINT", "").strip()
    if explicit:
        return explicit.rstrip("/")
    domain = os.environ.get("MODELSCOPE_DOMAIN", "").strip()
    if domain:
        return (domain if domain.startswith(("http://", "https://")) else f"https://{domain}").rstrip("/")
    return DEFAULT_ENDPOINT


def _safe_path(name: str) -> str:
    """A listed path as a relative path inside the destination (a hostile listing cannot escape it)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts:
        raise ModelScopeError(f"refusing the file path {name!r} from the hub listing")
    return path.as_posix()


def list_files(client: httpx.Client, base: str, model_id: str, revision: str) -> list[RemoteFile]:
    response = client.get(f"{base}/api/v1/models/{model_id}/repo/files",
                          params={"Revision": revision, "Recursive": "true"})
    body: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        pass
    if response.status_code != 200 or body.get("Code") not in (200, None) or body.get("Success") is False:
        message = body.get("Message") or response.text[:200]
        raise ModelScopeError(f"ModelScope listing of {model_id}@{revision} failed: HTTP {response.status_code}: "
                              f"{message}")
    entries = (body.get("Data") or {}).get("Files") or []
    return [RemoteFile(_safe_path(str(e["Path"])), int(e.get("Size") or 0), e.get("Sha256") or None,
                       e.get("Revision") or None)
            for e in entries if e.get("Type", "blob") == "blob"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(client: httpx.Client, url: str, part: Path, progress: Progress) -> None:
    """Append the rest of the file to ``part``: a Range request when part of it is there."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:  # nothing left: the part is the whole file
            return
        if response.status_code not in (200, 206):
            raise ModelScopeError(f"GET {url}: HTTP {response.status_code}")
        mode = "ab" if response.status_code == 206 else "wb"  # a server that ignores Range sends it all
        if mode == "wb" and have:
            progress.advance(-have)
        with part.open(mode) as handle:
            for chunk in response.iter_bytes(CHUNK):
                handle.write(chunk)
                handle.flush()
                progress.advance(len(chunk))


def download_file(client: httpx.Client, base: str, model_id: str, revision: str, remote: RemoteFile, dest: Path,
                  progress: Progress, retries: int = 5) -> bool:
    """One file into ``dest``; False when it was already there with the listed size and sha256.
    A dropped connection is retried (with Range) up to ``retries`` times; the ``.part`` file stays
    for the next run when they run out."""
    target = dest / remote.path
    if target.is_file() and target.stat().st_size == remote.size and (
            remote.sha256 is None or _sha256(target) == remote.sha256):
        progress.advance(remote.size)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if part.exists():
        if part.stat().st_size > remote.size:
            part.unlink()
        else:
            progress.advance(part.stat().st_size)
    url = str(httpx.URL(f"{base}/api/v1/models/{model_id}/repo", params={"Revision": revision,
                                                                          "FilePath": remote.path}))
    attempt = 0
    while True:
        try:
            _fetch(client, url, part, progress)
            break
        except (httpx.TransportError, httpx.DecodingError) as exc:
            attempt += 1
            if attempt > retries:
                raise ModelScopeError(f"{remote.path}: {type(exc).__name__}: {exc} ({part.stat().st_size} of "
                                      f"{remote.size} bytes kept in {part.name}; run again to resume)") from exc
            time.sleep(min(0.2 * attempt, 2.0))
    size = part.stat().st_size
    if size != remote.size or (remote.sha256 is not None and _sha256(part) != remote.sha256):
        part.unlink()
        raise ModelScopeError(f"{remote.path}: the downloaded bytes do not match the hub's listing "
                              f"({size} bytes, expected {remote.size} with sha256 {remote.sha256}); removed")
    part.replace(target)
    return True


@dataclass(frozen=True)
class Downloaded:
    files: list[RemoteFile]
    fetched: int  # files downloaded this run (the others were already complete)
    commit: str | None  # the newest per-file revision the hub reported, when it reports them


def download(model_id: str, revision: str, dest: Path, *, progress: Progress | None = None,
             base: str | None = None, retries: int = 5, timeout_s: float = 60.0) -> Downloaded:
    """Every file of ``model_id`` at ``revision`` into ``dest`` (created)."""
    base = (base or endpoint()).rstrip("/")
    sink = progress or _Silent()
    dest.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        files = list_files(client, base, model_id, revision)
        if not files:
            raise ModelScopeError(f"ModelScope lists no files for {model_id}@{revision}")
        sink.total(sum(f.size for f in files))
        fetched = sum(download_file(client, base, model_id, revision, f, dest, sink, retries) for f in files)
    revisions = sorted({f.revision for f in files if f.revision})
    return Downloaded(files, fetched, revisions[0] if len(revisions) == 1 else None)
