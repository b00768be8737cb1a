"""Export stage: versioned training sets (COCO, SA-Co, verifier JSONL) streamed from the database.

What is exported (see docs/architecture.md, "Exports"):

- a mask is exported when it is *accepted* (``masks.state``) by a decider the label-source filter
  allows (``masks.decided_by``: a person, the router on the AI verifier's word, or both) and its
  pair is not negative;
- a pair is a *negative* when its polarity is negative and it was decided (``decided_by``) by an
  allowed decider; it is *exhaustive* when ``is_exhaustive`` is true and so decided. Unknown pairs
  and positive pairs with no exported mask are left out;
- ``min_agreement``: the share of judgements on the item (people and verifier versions, gold tasks
  left out) that agree with its final state; items nobody judged count as 1.0. Masks below it are
  left out; pairs below it are neither negatives nor exhaustive.

Rows are read on their own connection (REPEATABLE READ on PostgreSQL: one snapshot for every
query of the export) with server-side cursors (``yield_per``) and written by streaming writers, so
memory does not grow with the export. Files go into a temporary folder beside the target, are
fsynced and renamed into place at the end; the snapshot row is flushed just before the rename
(the caller commits, see :func:`commit_or_discard`). Data files and ``manifest.json`` hold no
time stamps and are sorted by ids: the same filters on unchanged data give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db.models import Concept, DatasetSnapshot, MiningJob, ModelVersion
from engine.domain.exports import ExportSpecError
from engine.services.export_formats import WRITERS
from engine.services.export_rows import ExportError, ExportFilters, Progress, Stats
from engine.services.export_video import VIDEO_WRITERS
from engine.settings import Settings
from engine.stores import upload_export

__all__ = ["ExportError", "ExportFilters", "ExportResult", "ExportSpecError", "commit_or_discard", "export_coco",
           "export_dataset", "export_saco", "export_verifier", "exports_root", "publish_export", "resolve_jobs",
           "verify_files"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INCOMING_MARK = ".incoming-"  # exports/.incoming-<tag>: a published export being written (publish_export)
STAGING_MARK = ".export-"  # .<name>.export-<tag>: an export being written
REPLACED_MARK = ".replaced-"  # .<name>.replaced-<tag>: the folder it replaces, until removed
STAGING_LOCK = ".lock"
STALE_UNLOCKED_S = 600  # a staging folder without a lock file (code before the lock) is stale after this

log = logging.getLogger(__name__)
#: every format: the image ones (export_formats.py) and the video ones (export_video.py)
FORMATS = {**WRITERS, **VIDEO_WRITERS}


@dataclass
class ExportResult:
    snapshot_id: int
    name: str
    format: str
    out_dir: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    reused: bool  # an identical snapshot existed: its row was kept, no new one was made


# ------------------------------------------------------------------------------- public API
def resolve_jobs(session: Session, refs: Iterable[str | int]) -> tuple[int, ...]:
    """Job ids from ids or names; an unknown one is an error."""
    out = []
    for ref in refs:
        text = str(ref).strip()
        cond = MiningJob.id == int(text) if text.isdigit() else MiningJob.name == text
        job_id = session.scalars(select(MiningJob.id).where(cond)).first()
        if job_id is None:
            raise ExportSpecError(f"no mining job {text!r}")
        out.append(job_id)
    return tuple(sorted(set(out)))


def export_dataset(session: Session, settings: Settings, fmt: str, out_dir: Path | str, filters: ExportFilters,
                   *, force: bool = False, name: str | None = None, created_by_id: int | None = None,
                   progress: Progress | None = None) -> ExportResult:
    """Write an export of ``fmt`` into ``out_dir`` and record its snapshot (flushed, not committed).
    ``progress`` is called with the number of records (annotations, image entries, examples)
    written so far, after each image (COCO, SA-Co) or example (verifier); what it raises aborts the
    export like any other error."""
    if fmt not in FORMATS:
        raise ExportSpecError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    _check_concepts(session, filters.concepts)
    target = Path(out_dir).absolute()
    media = settings.media_path.absolute()
    if target == media or media in target.parents or target in media.parents:
        raise ExportError(f"{target} overlaps the media store {media}; write exports elsewhere")
    _check_target(target, force)
    with _staging(target) as tmp:
        stats = Stats()
        with _reader(session) as conn:
            files = FORMATS[fmt](conn, filters, tmp, stats, progress)
            versions = _versions(conn, stats.versions)
        manifest = {"format": fmt, "format_version": FORMAT_VERSION, "filters": filters.to_dict(),
                    "counts": stats.counts, "model_versions": versions, "files": files}
        data = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        _write_synced(tmp / MANIFEST, data)
        digest = hashlib.sha256(data).hexdigest()
        row, reused = _snapshot(session, fmt, name, filters, manifest, digest, created_by_id)
    return ExportResult(row.id, row.name, fmt, target, manifest, digest, reused)


def exports_root(settings: Settings) -> Path:
    """Where :func:`publish_export` places snapshots: ``<data_dir>/exports/<snapshot name>``."""
    return (settings.data_dir / "exports").absolute()


def publish_export(session: Session, settings: Settings, fmt: str, filters: ExportFilters, *,
                   jobs: Iterable[str | int] = (), name: str | None = None,
                   created_by_id: int | None = None) -> ExportResult:
    """Export into the snapshot's own folder under :func:`exports_root` and commit the snapshot (the
    API's exports: clients choose format, filters and name, never a path). ``jobs``: job ids or names,
    added to the filters' jobs. Written into a hidden folder beside it first, then moved into place; a
    folder that already holds exactly these files (the same snapshot on unchanged data) is kept.
    ExportSpecError: bad filters; ExportError: the name is taken by a snapshot with other contents, or
    a simultaneous export recorded the same snapshot."""
    root = exports_root(settings)
    incoming = root / f"{INCOMING_MARK}{uuid.uuid4().hex}"
    filters = dataclasses.replace(filters, jobs=tuple(sorted({*filters.jobs, *resolve_jobs(session, jobs)})))
    try:
        result = export_dataset(session, settings, fmt, incoming, filters, name=name, created_by_id=created_by_id)
    except IntegrityError:  # the same snapshot name was just recorded by a simultaneous export
        raise ExportError("another export recorded this snapshot at the same moment; ask again") from None
    final = root / result.name
    _place(incoming, final, result.manifest)
    result.out_dir = final
    commit_or_discard(session, result)
    upload_export(settings, final, result.name)  # the S3 store: a copy under <prefix>/exports/<name>/
    return result


def _place(incoming: Path, final: Path, manifest: dict[str, Any]) -> None:
    """Move a finished export to its snapshot's folder; a folder that already holds exactly these
    files (same snapshot, unchanged data) is kept and the new copy dropped."""
    try:
        if final.is_dir() and not verify_files(final, manifest):
            shutil.rmtree(incoming)
            return
        old = final.parent / f".{final.name}{REPLACED_MARK}{uuid.uuid4().hex}"  # remove_stale_staging's pattern
        if final.exists():
            final.rename(old)
        incoming.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise


def export_coco(session: Session, settings: Settings, out_dir: Path | str, filters: ExportFilters,
                **kwargs: Any) -> ExportResult:
    return export_dataset(session, settings, "coco", out_dir, filters, **kwargs)


def export_saco(session: Session, settings: Settings, out_dir: Path | str, filters: ExportFilters,
                **kwargs: Any) -> ExportResult:
    return export_dataset(session, settings, "saco", out_dir, filters, **kwargs)


def export_verifier(session: Session, settings: Settings, out_dir: Path | str, filters: ExportFilters,
                    **kwargs: Any) -> ExportResult:
    """The MV and EV training sets: ``{mv,ev}.{train,val}.jsonl`` (record contract in
    docs/architecture.md, "Exports")."""
    return export_dataset(session, settings, "verifier", out_dir, filters, **kwargs)


def commit_or_discard(session: Session, result: ExportResult) -> None:
    """Commit the snapshot row; when that fails, remove the files of a new snapshot and re-raise
    (a reused snapshot's row was there before: its files stay)."""
    try:
        session.commit()
    except BaseException:
        session.rollback()
        if not result.reused:
            shutil.rmtree(result.out_dir, ignore_errors=True)
        raise


def verify_files(folder: Path | str, manifest: dict[str, Any]) -> list[str]:
    """Files of an export whose sha256 differs from its manifest (or that are missing)."""
    bad = []
    for rel, meta in sorted(manifest.get("files", {}).items()):
        path = Path(folder) / rel
        if not path.is_file() or _sha256_file(path) != meta["sha256"]:
            bad.append(rel)
    return bad


# ------------------------------------------------------------------------ folder handling
def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ExportError(f"{target} is not empty; choose an empty folder or pass --force to replace it")


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed onto it when the block succeeds and removed
    when it fails (an existing ``target`` is replaced only then). While it exists its export holds
    an exclusive ``flock`` on the folder's lock file, so the next export into the same parent can
    tell a folder left by an interrupted export (killed, power cut) and remove it first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    tag = uuid.uuid4().hex[:12]
    tmp = target.parent / f".{target.name}{STAGING_MARK}{tag}"
    tmp.mkdir()
    lock_fd: int | None = None
    try:
        lock_fd = _hold_lock(tmp)
        yield tmp
        os.unlink(tmp / STAGING_LOCK)  # not part of the export; the flock stays held until the end
        _fsync_dir(tmp)
        old = target.parent / f".{target.name}{REPLACED_MARK}{tag}"
        if target.exists():
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)
            raise
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _hold_lock(folder: Path) -> int:
    """Create ``folder/.lock`` already locked: it is written and flocked under another name and then
    renamed into place, so whoever finds the lock file finds it held until its export ends."""
    part = folder / f"{STAGING_LOCK}.part"
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(part, folder / STAGING_LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale_staging(parent: Path, *, now: float | None = None) -> list[Path]:
    """Remove the staging folders in ``parent`` (hidden ``.<name>.export-<tag>``) that no running
    export holds — their lock file can be locked, or (left by code before the lock) they have none
    and were not touched for ``STALE_UNLOCKED_S`` — and the ``.<name>.replaced-<tag>`` folders whose
    export got as far as renaming its result into place. Returns what was removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        if STAGING_MARK in name and _abandoned(Path(entry.path), now):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        elif REPLACED_MARK in name:
            base, tag = name[1:].rsplit(REPLACED_MARK, 1)
            # still needed only while its staging folder exists (a failed rename puts it back)
            if f".{base}{STAGING_MARK}{tag}" not in names and base in names:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    for path in removed:
        log.warning("removed %s, left by an interrupted export", path)
    return removed


def _abandoned(folder: Path, now: float) -> bool:
    try:
        fd = os.open(folder / STAGING_LOCK, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        try:
            return now - folder.stat().st_mtime > STALE_UNLOCKED_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a running export; released with the fd
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- reading
@contextmanager
def _reader(session: Session) -> Iterator[Connection]:
    """A connection of its own for the export's reads; on PostgreSQL one REPEATABLE READ, read-only
    snapshot for all of them."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def _check_concepts(session: Session, concepts: tuple[str, ...]) -> None:
    if not concepts:
        return
    known = set(session.scalars(select(Concept.text).where(Concept.text.in_(set(concepts)))))
    missing = sorted(set(concepts) - known)
    if missing:
        raise ExportSpecError(f"unknown concept(s): {', '.join(missing)}")


def _versions(conn: Connection, ids: set[int | None]) -> list[dict[str, Any]]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return []
    rows = conn.execute(select(ModelVersion.id, ModelVersion.kind, ModelVersion.name, ModelVersion.version,
                               ModelVersion.params_hash).where(ModelVersion.id.in_(sorted(ids)))
                        .order_by(ModelVersion.id))
    return [{"id": r.id, "kind": str(r.kind.value), "name": r.name, "version": r.version,
             "params_hash": r.params_hash} for r in rows]


# -------------------------------------------------------------------------------- snapshot
def _snapshot(session: Session, fmt: str, name: str | None, filters: ExportFilters, manifest: dict[str, Any],
              digest: str, created_by_id: int | None) -> tuple[DatasetSnapshot, bool]:
    """The snapshot row of this export: an existing identical one (same format and manifest) is
    reused; a given name already used for other contents is an error."""
    if name is not None:
        name = name.strip()
        if not name or len(name) > 255 or not name.isprintable():
            raise ExportSpecError("a snapshot name must be 1–255 printable characters")
    wanted = name or f"{fmt}-{digest[:16]}"
    same_name = session.scalars(select(DatasetSnapshot).where(DatasetSnapshot.name == wanted)).first()
    if same_name is not None:
        if same_name.manifest_sha256 != digest or same_name.format != fmt:
            raise ExportError(f"a snapshot named {wanted!r} exists with other contents; choose another name")
        return same_name, True
    row = DatasetSnapshot(name=wanted, format=fmt, filters=filters.to_dict(), manifest=manifest,
                          manifest_sha256=digest, created_by_id=created_by_id)
    session.add(row)
    session.flush()
    return row, False


