from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import CompoundSelect, bindparam, select, text, union
from sqlalchemy.orm import Session

from engine.db.models import Image
from engine.db.upsert import insert_ignore_returning
from engine.domain.hashing import band_neighbours, band_radius, bands, hamming, to_signed64

NEAR_DUP_CANDIDATES = 2000


def _band_query() -> CompoundSelect[int, int, int | None]:
    """One indexed lookup per band, united: each arm is an index scan on its band column whatever
    the planner's statistics say (an OR over four columns may be planned as a full scan)."""
    columns = (Image.phash_b0, Image.phash_b1, Image.phash_b2, Image.phash_b3)
    arms = [
        select(Image.id, Image.phash, Image.duplicate_of_id)
        .where(col.in_(bindparam(f"b{i}", expanding=True)))
        for i, col in enumerate(columns)
    ]
    return union(*arms).limit(NEAR_DUP_CANDIDATES)


_NEAR_DUP_QUERY = _band_query()


ANALYZE_AFTER_ROWS = 1000


def refresh_statistics(session: Session) -> bool:
    """PostgreSQL only: ANALYZE the images table once it has changed a lot since the last time.

    Without statistics (autovacuum off, or lagging behind a fast ingest) the planner guesses that
    a band IN-list matches ~8% of the table and scans it whole, so the near-duplicate search slows
    down as the table grows. Runs on its own autocommit connection and skips when another process
    is analysing. Returns whether it ran."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    changed, live = session.execute(text(
        "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables WHERE relname = 'images'"
    )).one_or_none() or (0, 0)
    if (changed or 0) < max(ANALYZE_AFTER_ROWS, (live or 0) // 10):
        return False
    with bind.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE (SKIP_LOCKED) images"))
    return True


@dataclass(frozen=True)
class NearDuplicate:
    image_id: int
    distance: int


def id_by_sha256(session: Session, sha256: str) -> int | None:
    return session.scalar(select(Image.id).where(Image.sha256 == sha256))


def named_storage_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """The storage keys among ``keys`` that an image row names. A content-addressed key
    (``ab/cd/<sha256>.<ext>``) is looked up by its sha256 (the unique index; ``storage_key`` has
    none), any other by its text. Callers pass bounded batches."""
    by_sha: dict[str, str] = {}
    other: list[str] = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        sha = name.split(".", 1)[0]
        if len(sha) == 64 and all(c in "0123456789abcdef" for c in sha) and key.startswith(f"{sha[:2]}/{sha[2:4]}/"):
            by_sha[sha] = key
        else:
            other.append(key)
    named: set[str] = set()
    if by_sha:
        rows = session.execute(select(Image.sha256, Image.storage_key).where(Image.sha256.in_(list(by_sha))))
        named.update(key for sha, key in rows if by_sha.get(sha) == key)
    if other:
        named.update(session.scalars(select(Image.storage_key).where(Image.storage_key.in_(other))))
    return named


def find_near_duplicate(session: Session, phash: int, max_distance: int) -> NearDuplicate | None:
    """The closest kept (canonical) image within ``max_distance`` bits, lowest id on ties."""
    radius = band_radius(max_distance)
    params = {f"b{i}": band_neighbours(value, radius) for i, value in enumerate(bands(phash))}
    rows = session.execute(_NEAR_DUP_QUERY, params).all()
    best: NearDuplicate | None = None
    for image_id, other, duplicate_of in rows:
        if duplicate_of is not None:
            continue
        distance = hamming(phash, other)
        if distance <= max_distance and (best is None or distance < best.distance):
            best = NearDuplicate(image_id, distance)
    return best


def insert_if_new(session: Session, *, sha256: str, phash: int, width: int, height: int,
                  fmt: str, byte_size: int, storage_key: str, duplicate_of_id: int | None,
                  job_id: int, source_uri: str) -> tuple[int, bool]:
    """Insert the image unless its sha256 exists; returns (image id, created)."""
    b0, b1, b2, b3 = bands(phash)
    inserted = insert_ignore_returning(session, Image.__table__, [{
        "sha256": sha256, "phash": to_signed64(phash), "phash_b0": b0, "phash_b1": b1,
        "phash_b2": b2, "phash_b3": b3, "width": width, "height": height, "format": fmt,
        "byte_size": byte_size, "storage_key": storage_key, "duplicate_of_id": duplicate_of_id,
        "first_job_id": job_id, "source_uri": source_uri[:4000],
    }], ["sha256"])
    if inserted:
        return inserted[0], True
    existing = session.scalar(select(Image.id).where(Image.sha256 == sha256))
    assert existing is not None
    return existing, False
