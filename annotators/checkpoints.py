"""Checkpoints from where users get them: a Hugging Face id, a ModelScope id or a local folder,
brought into the models cache with a checksum recorded in the model registry.

- ``hf:<id>`` or a bare id: ``huggingface_hub.snapshot_download`` of the resolved commit, into the
  Hugging Face cache (or ``dest``); the endpoint is ``HF_ENDPOINT``, read at call time. A connection
  dropped mid-file is continued with a Range request within the run (huggingface_hub retries); files
  completed before an interruption are kept and not fetched again.
- ``modelscope:<id>`` / ``ms:<id>``: annotators/modelscope_files.py (the file API over httpx, a
  ``.part`` file continued with Range across runs).
- a local folder: checked loadable (a ``config.json`` that transformers reads, when installed), then
  copied (or linked) under ``<models cache>/checkpoints/local``.

Every checkpoint gets a manifest: each file's sha256 by relative path, and one sha256 over the
manifest's lines (``<sha256>  <path>``, sorted by path) that names the whole checkpoint. The registry
row (kind from the role, name, version = commit or digest) keeps it under ``params["checkpoint"]``, so
``dataengine models list`` shows it and ``dataengine models verify`` recomputes it later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from annotators import modelscope_files
from annotators.loading import display_name, is_random_weights
from engine.db.models import ModelVersion
from engine.domain.vocabulary import ModelKind
from engine.extras import installed, require
from engine.repositories.model_versions import get_or_create

# what --role names, as registry kinds
ROLES: dict[str, ModelKind] = {
    "proposer": ModelKind.PROPOSER, "captioner": ModelKind.CAPTIONER, "parser": ModelKind.PARSER,
    "mask_verifier": ModelKind.MASK_VERIFIER, "exhaustivity_verifier": ModelKind.EXHAUSTIVITY_VERIFIER,
    "tracker": ModelKind.TRACKER,
}
# files and folders that are bookkeeping of the downloaders, not part of the checkpoint
SKIPPED_DIRS = {".cache", ".git"}
SKIPPED_SUFFIXES = (".part", ".incomplete", ".lock")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
CHUNK = 1 << 22


class CheckpointError(RuntimeError):
    """A source that cannot be had or a folder that is not a checkpoint; the message says why."""


@dataclass(frozen=True)
class Source:
    kind: str  # "hf" | "modelscope" | "local"
    ref: str  # hub id, or the folder's absolute path

    def __str__(self) -> str:
        return self.ref if self.kind in ("hf", "local") else f"{self.kind}:{self.ref}"


def parse_source(text: str) -> Source:
    """``hf:<id>``, ``modelscope:<id>`` / ``ms:<id>``, an existing folder, or a bare Hugging Face id."""
    text = text.strip()
    for prefix, kind in (("hf:", "hf"), ("modelscope:", "modelscope"), ("ms:", "modelscope")):
        if text.startswith(prefix):
            ref = text[len(prefix):].strip("/")
            if not HUB_ID.fullmatch(ref):
                raise CheckpointError(f"{text!r}: {ref!r} is not a model id (owner/name)")
            return Source(kind, ref)
    path = Path(text).expanduser()
    if path.is_dir():
        return Source("local", str(path.resolve()))
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or path.exists():
        raise CheckpointError(f"{text!r}: no such folder (a local checkpoint is a folder)")
    if not HUB_ID.fullmatch(text):
        raise CheckpointError(f"{text!r} is neither a folder nor a model id (hf:<id>, modelscope:<id>)")
    return Source("hf", text)


# --- manifests --------------------------------------------------------------------------------------
def _skipped(relative: Path) -> bool:
    return bool(relative.parts and relative.parts[0] in SKIPPED_DIRS) or relative.name.endswith(SKIPPED_SUFFIXES)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # follows the HF cache's symlinks to its blobs
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """Each file of the checkpoint (relative posix path) to its sha256; downloader bookkeeping left out."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not _skipped(relative):
            files[relative.as_posix()] = file_sha256(path)
    return files


def manifest_digest(files: dict[str, str]) -> str:
    """One sha256 for the checkpoint: over ``<sha256>  <path>`` lines sorted by path (sha256sum's format)."""
    lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify(folder: Path, files: dict[str, str]) -> list[str]:
    """What differs between the folder and a recorded manifest: missing, changed and unexpected files."""
    if not folder.is_dir():
        return [f"{folder}: the folder is gone"]
    now = manifest(folder)
    problems = [f"missing: {name}" for name in sorted(set(files) - set(now))]
    problems += [f"changed: {name}" for name in sorted(set(files) & set(now)) if files[name] != now[name]]
    problems += [f"unexpected: {name}" for name in sorted(set(now) - set(files))]
    return problems


@dataclass
class Checkpoint:
    """A checkpoint on disk and where it came from."""

    source: Source
    path: Path
    revision: str | None  # what was asked for
    commit: str | None  # what the hub resolved it to, when it says
    files: dict[str, str] = field(default_factory=dict)
    fetched: int | None = None  # files downloaded this run (None: not a download)

    @property
    def sha256(self) -> str:
        return manifest_digest(self.files)

    @property
    def size(self) -> int:
        return sum((self.path / name).stat().st_size for name in self.files)

    def record(self) -> dict[str, Any]:
        """What the registry keeps (``params["checkpoint"]``)."""
        return {"source": self.source.kind, "ref": self.source.ref, "revision": self.revision,
                "commit": self.commit, "sha256": self.sha256, "bytes": self.size, "files": self.files}


# --- getting them -------------------------------------------------------------------------------------
def download_hf(repo_id: str, revision: str | None, dest: Path | None) -> Checkpoint:
    """The repository at the commit ``revision`` resolves to, into the HF cache or ``dest``."""
    require("models", "huggingface_hub", feature="downloading from Hugging Face")
    from huggingface_hub import HfApi, snapshot_download

    hub = os.environ.get("HF_ENDPOINT") or None  # read now: huggingface_hub reads it once, at import
    try:
        commit = HfApi(endpoint=hub).model_info(repo_id, revision=revision).sha
        path = snapshot_download(repo_id, revision=commit or revision, endpoint=hub,
                                 local_dir=str(dest) if dest is not None else None)
    except Exception as exc:  # noqa: BLE001 - network, auth, gating and missing repos alike
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"Hugging Face {repo_id}@{revision or 'main'}: {type(exc).__name__}: {first}") from exc
    folder = Path(path)
    return Checkpoint(Source("hf", repo_id), folder, revision, commit, manifest(folder))


class _Bar:
    """modelscope_files' byte counts onto a rich progress bar."""

    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def total(self, size: int) -> None:
        self.progress.update(self.task, total=size)

    def advance(self, size: int) -> None:
        self.progress.advance(self.task, size)


def download_modelscope(model_id: str, revision: str | None, dest: Path, *, show_progress: bool = True,
                        retries: int = 5) -> Checkpoint:
    from rich import progress as bars

    columns = (bars.TextColumn(f"modelscope:{model_id}"), bars.BarColumn(), bars.DownloadColumn(),
               bars.TransferSpeedColumn(), bars.TimeRemainingColumn())
    try:
        with bars.Progress(*columns, disable=not show_progress, transient=False) as progress:
            bar = _Bar(progress, progress.add_task("download", total=None))
            got = modelscope_files.download(model_id, revision or "master", dest, progress=bar, retries=retries)
    except (modelscope_files.ModelScopeError, OSError) as exc:
        raise CheckpointError(f"ModelScope {model_id}@{revision or 'master'}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - httpx errors reaching the hub
        raise CheckpointError(f"ModelScope {model_id}@{revision or 'master'}: {type(exc).__name__}: {exc}") from exc
    files = {f.path: f.sha256 or "" for f in got.files}
    ours = manifest(dest)
    missing = [name for name in files if name not in ours]
    if missing:
        raise CheckpointError(f"ModelScope {model_id}: files missing after download: {', '.join(missing)}")
    # the manifest is the hub's files only (and their bytes, rehashed here)
    return Checkpoint(Source("modelscope", model_id), dest, revision, got.commit,
                      {name: ours[name] for name in files}, fetched=got.fetched)


def check_loadable(folder: Path) -> None:
    """A checkpoint folder: a ``config.json`` (read by transformers' AutoConfig when installed)."""
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{folder}: no config.json, not a checkpoint folder")
    try:
        json.loads(config.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{folder}/config.json is not JSON: {exc}") from exc
    if installed("transformers"):
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{folder}: transformers cannot read its config: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def bring_local(folder: Path, dest: Path, *, link: bool = False) -> Checkpoint:
    """A local checkpoint folder, checked, copied (or symlinked) to ``dest``. A ``dest`` that already
    holds the same files is reused; one that holds others is an error."""
    check_loadable(folder)
    files = manifest(folder)
    if dest.exists() or dest.is_symlink():
        if manifest(dest) != files:
            raise CheckpointError(f"{dest} already exists with other files; pass another --dest")
    elif link:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(folder, target_is_directory=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial, symlinks=False,
                        ignore=shutil.ignore_patterns(*SKIPPED_DIRS, *(f"*{s}" for s in SKIPPED_SUFFIXES)))
        partial.rename(dest)
        copied = manifest(dest)
        if copied != files:
            raise CheckpointError(f"{dest}: the copy differs from {folder}")
    return Checkpoint(Source("local", str(folder)), dest, None, None, files)


def default_dest(source: Source, revision: str | None, cache_dir: Path) -> Path | None:
    """Where a source lands without --dest: the HF cache for Hugging Face (None), else under
    ``<models cache>/checkpoints``."""
    if source.kind == "hf":
        return None
    if source.kind == "modelscope":
        name = source.ref + (f"@{revision}" if revision and revision != "master" else "")
        return cache_dir / "checkpoints" / "modelscope" / name
    return cache_dir / "checkpoints" / "local" / Path(source.ref).name


def fetch(source: Source, *, revision: str | None = None, dest: Path | None = None, cache_dir: Path,
          link: bool = False, show_progress: bool = True) -> Checkpoint:
    """The checkpoint of ``source`` on disk, with its manifest."""
    dest = dest.expanduser().resolve() if dest is not None else default_dest(source, revision, cache_dir)
    if source.kind == "hf":
        return download_hf(source.ref, revision, dest)
    assert dest is not None
    if source.kind == "modelscope":
        return download_modelscope(source.ref, revision, dest, show_progress=show_progress)
    if revision:
        raise CheckpointError("--revision applies to hub downloads, not to a local folder")
    return bring_local(Path(source.ref), dest, link=link)


# --- the registry -------------------------------------------------------------------------------------
def register(session: Session, kind: ModelKind, checkpoint: Checkpoint) -> ModelVersion:
    """The registry row of a checkpoint: name the hub id (``modelscope:<id>``) or the folder's model
    name, version the commit or the digest's first 16 hex digits, the record under params."""
    record = checkpoint.record()
    name = str(checkpoint.source) if checkpoint.source.kind != "local" else \
        display_name(str(checkpoint.path), Path(checkpoint.source.ref).name)
    version = checkpoint.commit or record["sha256"][:16]
    return get_or_create(session, kind, name, version, {"checkpoint": record}, uri=str(checkpoint.path),
                         random_weights=is_random_weights(str(checkpoint.path)))


def recorded(row: ModelVersion) -> dict[str, Any] | None:
    """The checkpoint record of a registry row, if it was registered by a download."""
    record = (row.params or {}).get("checkpoint")
    return record if isinstance(record, dict) and "files" in record else None
