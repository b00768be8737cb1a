"""Videos and their sampled frames: lookups by content, the near-duplicate search over keyframe
hashes, the rows of a mined video, and a video's frames as a FrameSource (``frames_of``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, select, union_all
from sqlalchemy.orm import Session

from engine.db.models import Caption, Video, VideoFrame
from engine.db.upsert import insert_ignore, insert_ignore_returning
from engine.domain.hashing import MAX_SEARCH_DISTANCE, band_neighbours, band_radius, bands, hamming, to_signed64
from engine.storage import MediaStore
from engine.video.frames import StoredFrames

NEAR_DUP_CANDIDATES = 2000
FRAME_INSERT_CHUNK = 500


@dataclass(frozen=True)
class NearDuplicateVideo:
    video_id: int
    distance: int  # the largest keyframe-to-keyframe pHash distance


@dataclass(frozen=True)
class FrameRow:
    index: int
    timestamp_s: float
    storage_key: str
    width: int
    height: int


def _band_query() -> CompoundSelect[int, Any, int | None]:
    """One indexed lookup per band of the middle keyframe's hash, united (as for images; UNION ALL: the
    JSON column has no equality operator on PostgreSQL, a video found twice is just compared twice)."""
    columns = (Video.phash_b0, Video.phash_b1, Video.phash_b2, Video.phash_b3)
    arms = [select(Video.id, Video.keyframe_phashes, Video.duplicate_of_id)
            .where(col.in_(bindparam(f"b{i}", expanding=True))) for i, col in enumerate(columns)]
    return union_all(*arms).limit(NEAR_DUP_CANDIDATES)


_NEAR_DUP_QUERY = _band_query()


def id_by_sha256(session: Session, sha256: str) -> int | None:
    return session.scalar(select(Video.id).where(Video.sha256 == sha256))


def find_near_duplicate(session: Session, keyframe_hashes: Sequence[int], middle_hash: int,
                        max_distance: int) -> NearDuplicateVideo | None:
    """The closest kept (canonical) video whose keyframes are, one by one, within ``max_distance``
    bits of these (same number of keyframes); lowest id on ties. Candidates come from the band index
    of the middle keyframe (exact up to distance 11, the bands' pigeonhole bound; a larger setting
    searches with radius 2 per band)."""
    radius = band_radius(min(max_distance, MAX_SEARCH_DISTANCE))
    params = {f"b{i}": band_neighbours(value, radius) for i, value in enumerate(bands(middle_hash))}
    best: NearDuplicateVideo | None = None
    for video_id, others, duplicate_of in session.execute(_NEAR_DUP_QUERY, params).all():
        if duplicate_of is not None or not isinstance(others, list) or len(others) != len(keyframe_hashes):
            continue
        distance = max(hamming(a, int(b)) for a, b in zip(keyframe_hashes, others, strict=True))
        if distance <= max_distance and (best is None or (distance, video_id) < (best.distance, best.video_id)):
            best = NearDuplicateVideo(video_id, distance)
    return best


def insert_if_new(session: Session, *, sha256: str, keyframe_hashes: Sequence[int], middle_hash: int,
                  **fields: Any) -> tuple[int, bool]:
    """Insert the video unless its sha256 exists; returns (video id, created). ``fields``: the other
    columns of :class:`Video`."""
    b0, b1, b2, b3 = bands(middle_hash)
    row = {"sha256": sha256, "phash": to_signed64(middle_hash), "phash_b0": b0, "phash_b1": b1,
           "phash_b2": b2, "phash_b3": b3, "keyframe_phashes": [to_signed64(h) for h in keyframe_hashes], **fields}
    inserted = insert_ignore_returning(session, Video.__table__, [row], ["sha256"])
    if inserted:
        return inserted[0], True
    existing = id_by_sha256(session, sha256)
    assert existing is not None
    return existing, False


def add_frames(session: Session, video_id: int, frames: Sequence[FrameRow]) -> None:
    """The video's sampled-frame rows (already there: left alone)."""
    rows = [{"video_id": video_id, "index": f.index, "timestamp_s": f.timestamp_s, "storage_key": f.storage_key,
             "width": f.width, "height": f.height} for f in frames]
    for start in range(0, len(rows), FRAME_INSERT_CHUNK):
        insert_ignore(session, VideoFrame.__table__, rows[start:start + FRAME_INSERT_CHUNK], ["video_id", "index"])


def add_captions(session: Session, video_id: int, model_version_id: int, texts: Sequence[str]) -> int:
    rows = [{"video_id": video_id, "model_version_id": model_version_id, "text": text,
             "text_sha256": hashlib.sha256(text.encode()).hexdigest()} for text in texts]
    return insert_ignore(session, Caption.__table__, rows, ["video_id", "model_version_id", "text_sha256"])


def named_storage_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """The keys among ``keys`` that a video (its original file) or a sampled frame names."""
    if not keys:
        return set()
    named = set(session.scalars(select(Video.storage_key).where(Video.storage_key.in_(keys))))
    named.update(session.scalars(select(VideoFrame.storage_key).where(VideoFrame.storage_key.in_(keys))))
    return {key for key in named if key is not None}


def frame_keys(session: Session, video_id: int) -> list[str]:
    return list(session.scalars(select(VideoFrame.storage_key).where(VideoFrame.video_id == video_id)
                                .order_by(VideoFrame.index)))


def frames_of(session: Session, store: MediaStore, video_id: int, cache: int = 8) -> StoredFrames:
    """The video's sampled frames as a FrameSource reading from ``store`` (no session kept)."""
    video = session.get(Video, video_id)
    if video is None:
        raise LookupError(f"no video {video_id}")
    return StoredFrames(store, frame_keys(session, video_id), (video.width, video.height), cache=cache)
