"""The media-store invariants of ``dataengine check`` (engine/domain/invariants.py, F1 and F2): the
files under the media root against the image rows, streamed and bounded.

F1 walks the media root with ``os.scandir`` (one folder's entries at a time), asks the database about
the files in batches of ``BATCH`` keys and reports the files no image row names — leftover ``.tmp-*``
files of interrupted writes included — once they are older than the grace period (a file a running
batch stored is named by its row only when that batch commits). F2 reads the image rows by id in
batches (keyset pagination) and reports those whose file is absent, with the source URI to mine again.
Memory holds one batch; the count is exact, the listing stops at the limit.

``repair_orphans`` removes F1's files, each checked again just before (still unnamed, still old).
Nothing is ever done for F2: a lost file needs a person (re-mine the source).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Image
from engine.repositories import images as images_repo
from engine.repositories import videos as videos_repo
from engine.storage import TMP_PREFIX

log = logging.getLogger(__name__)

BATCH = 1000
DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True)
class MediaCheck:
    """Where the media store is and how old an unnamed file must be to count as an orphan."""
    root: Path
    grace_s: float = DEFAULT_GRACE_S
    now: float = field(default_factory=time.time)  # wall-clock seconds (file mtimes are)


@dataclass(frozen=True)
class Orphan:
    key: str  # the path under the media root
    size: int
    mtime: float

    @property
    def temporary(self) -> bool:
        return os.path.basename(self.key).startswith(TMP_PREFIX)


def _files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(key, stat) of every regular file under ``root``, depth first; symlinks are not followed."""
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(root / rel if rel else root) as entries:
                for entry in entries:
                    key = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(key)
                        elif entry.is_file(follow_symlinks=False):
                            yield key, entry.stat(follow_symlinks=False)
                    except OSError:  # vanished meanwhile
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue


def _named(session: Session, keys: list[str]) -> set[str]:
    """The keys a row names: an image's file, a video's original or one of its sampled frames."""
    if not keys:
        return set()
    return images_repo.named_storage_keys(session, keys) | videos_repo.named_storage_keys(session, keys)


def orphans(session: Session, media: MediaCheck) -> Iterator[Orphan]:
    """The files under the media root no image row names, older than the grace period, streamed."""
    cutoff = media.now - media.grace_s
    batch: list[tuple[str, os.stat_result]] = []

    def flush() -> Iterator[Orphan]:
        named = _named(session, [k for k, _ in batch if not os.path.basename(k).startswith(TMP_PREFIX)])
        for key, st in batch:
            if key not in named:
                yield Orphan(key, st.st_size, st.st_mtime)
        batch.clear()

    for key, st in _files(media.root):
        if st.st_mtime > cutoff:
            continue  # young: a running batch may commit its row yet
        batch.append((key, st))
        if len(batch) >= BATCH:
            yield from flush()
    if batch:
        yield from flush()


@dataclass(frozen=True)
class Missing:
    image_id: int
    key: str
    source_uri: str | None


def missing(session: Session, media: MediaCheck) -> Iterator[Missing]:
    """Image rows whose stored file is absent, by id, in batches."""
    after = 0
    while True:
        rows = session.execute(select(Image.id, Image.storage_key, Image.source_uri)
                               .where(Image.id > after).order_by(Image.id).limit(BATCH)).all()
        if not rows:
            return
        after = rows[-1].id
        for r in rows:
            if not os.path.lexists(media.root / r.storage_key):
                yield Missing(r.id, r.storage_key, r.source_uri)


def repair_orphans(session: Session, media: MediaCheck, limit: int | None) -> tuple[list[Orphan], int]:
    """Remove F1's orphans, a batch at a time, each checked again just before (still old, still
    unnamed: a duplicate mined meanwhile touches its file, a batch may have committed its row).
    Returns the first ``limit`` removed (None: all) and how many were."""
    cutoff = media.now - media.grace_s
    removed: list[Orphan] = []
    count = 0
    batch: list[Orphan] = []

    def flush() -> None:
        nonlocal count
        named = _named(session, [o.key for o in batch if not o.temporary])
        for orphan in batch:
            path = media.root / orphan.key
            try:
                if orphan.key in named or path.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError:
                log.warning("could not remove the orphan media file %s", orphan.key, exc_info=True)
                continue
            log.warning("repaired F1 file=%s: orphan removed (%d bytes)", orphan.key, orphan.size)
            count += 1
            if limit is None or len(removed) < limit:
                removed.append(orphan)
        batch.clear()

    for orphan in orphans(session, media):
        batch.append(orphan)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return removed, count
