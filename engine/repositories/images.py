from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.db.models import Image
from engine.db.upsert import insert_ignore
from engine.domain.hashing import band_neighbours, band_radius, bands, hamming, to_signed64

NEAR_DUP_CANDIDATES = 2000


@dataclass(frozen=True)
class NearDuplicate:
    image_id: int
    distance: int


def by_sha256(session: Session, sha256: str) -> Image | None:
    return session.scalars(select(Image).where(Image.sha256 == sha256)).one_or_none()


def find_near_duplicate(session: Session, phash: int, max_distance: int) -> NearDuplicate | None:
    """The closest kept (canonical) image within ``max_distance`` bits, lowest id on ties."""
    radius = band_radius(max_distance)
    columns = (Image.phash_b0, Image.phash_b1, Image.phash_b2, Image.phash_b3)
    conditions = [col.in_(band_neighbours(value, radius)) for col, value in zip(columns, bands(phash))]
    rows = session.execute(
        select(Image.id, Image.phash)
        .where(or_(*conditions), Image.duplicate_of_id.is_(None))
        .order_by(Image.id)
        .limit(NEAR_DUP_CANDIDATES)
    ).all()
    best: NearDuplicate | None = None
    for image_id, other in rows:
        distance = hamming(phash, other)
        if distance <= max_distance and (best is None or distance < best.distance):
            best = NearDuplicate(image_id, distance)
    return best


def insert_if_new(session: Session, *, sha256: str, phash: int, width: int, height: int,
                  fmt: str, byte_size: int, storage_key: str, duplicate_of_id: int | None,
                  job_id: int, source_uri: str) -> tuple[Image, bool]:
    """Insert the image unless its sha256 exists; returns (image, created)."""
    b0, b1, b2, b3 = bands(phash)
    created = insert_ignore(session, Image.__table__, [{
        "sha256": sha256, "phash": to_signed64(phash), "phash_b0": b0, "phash_b1": b1,
        "phash_b2": b2, "phash_b3": b3, "width": width, "height": height, "format": fmt,
        "byte_size": byte_size, "storage_key": storage_key, "duplicate_of_id": duplicate_of_id,
        "first_job_id": job_id, "source_uri": source_uri[:4000],
    }], ["sha256"]) == 1
    image = by_sha256(session, sha256)
    assert image is not None
    return image, created
