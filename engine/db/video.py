"""The video tables: a mined video and its sampled frames, the per-frame masks of a masklet, and the
tracker requests of the video page (a click on a frame, propagated on a worker, frame by frame).

A video pair is an ``image_concepts`` row with ``video_id`` set, and its masklets are ``masks`` rows
(so tasks, verdicts, routing and the decision model treat them as they treat an image's masks); the
rows here hold what only video has."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, portable_enum, utcnow
from engine.domain.vocabulary import TrackState


class Video(Base):
    """A mined video: content-addressed by the sha256 of its bytes (a frame folder: of its frames'
    hashes in order), described by what was decoded, sampled into ``VideoFrame`` rows."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # perceptual hash of the middle keyframe, cut into bands as for images (near-duplicate search);
    # every keyframe's hash is in ``keyframe_phashes``
    phash: Mapped[int] = mapped_column(BigInteger)
    phash_b0: Mapped[int] = mapped_column(Integer, index=True)
    phash_b1: Mapped[int] = mapped_column(Integer, index=True)
    phash_b2: Mapped[int] = mapped_column(Integer, index=True)
    phash_b3: Mapped[int] = mapped_column(Integer, index=True)
    keyframe_phashes: Mapped[list[int]] = mapped_column(JSON, default=list)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)  # of the source (a frame folder: the job's frame rate)
    duration_s: Mapped[float] = mapped_column(Float)
    source_frames: Mapped[int] = mapped_column(Integer)  # frames decoded from the source
    sample_fps: Mapped[float] = mapped_column(Float)  # the rate the frames below were sampled at
    frame_count: Mapped[int] = mapped_column(Integer)  # sampled frames (VideoFrame rows)
    container: Mapped[str] = mapped_column(String(32))  # mp4, webm, mov, mkv, frames
    codec: Mapped[str | None] = mapped_column(String(32))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    # the original file (None: a frame folder); indexed: `dataengine check` asks which stored files rows name
    storage_key: Mapped[str | None] = mapped_column(String(255), index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="SET NULL"), index=True)
    first_job_id: Mapped[int | None] = mapped_column(ForeignKey("mining_jobs.id", ondelete="SET NULL"))
    source_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class VideoFrame(Base):
    """One sampled frame of a video, stored as an image in the media store."""

    __tablename__ = "video_frames"
    __table_args__ = (UniqueConstraint("video_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)  # 0-based among the sampled frames
    timestamp_s: Mapped[float] = mapped_column(Float)  # presentation time in the source
    storage_key: Mapped[str] = mapped_column(String(255), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class MaskletFrame(Base):
    """A masklet's mask on one sampled frame (compressed COCO RLE); frames where the object is absent
    have no row."""

    __tablename__ = "masklet_frames"

    mask_id: Mapped[int] = mapped_column(ForeignKey("masks.id", ondelete="CASCADE"), primary_key=True)
    frame_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    rle_counts: Mapped[str] = mapped_column(Text)
    bbox_x: Mapped[float] = mapped_column(Float)
    bbox_y: Mapped[float] = mapped_column(Float)
    bbox_w: Mapped[float] = mapped_column(Float)
    bbox_h: Mapped[float] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)


class TrackRequest(Base):
    """A click (positive / negative points on one frame) on the video page, to add or fix an object:
    queued by the web process, run by the tracker on a worker, its frames written as they come."""

    __tablename__ = "track_requests"
    __table_args__ = (Index("ix_track_requests_task_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    frame_index: Mapped[int] = mapped_column(Integer)
    points: Mapped[list[list[float]]] = mapped_column(JSON)  # [[x, y, label], ...], label 1 positive / 0 negative
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="SET NULL"))  # the masklet fixed
    state: Mapped[TrackState] = mapped_column(portable_enum(TrackState, "track_state"))
    error: Mapped[str | None] = mapped_column(Text)
    window_start: Mapped[int | None] = mapped_column(Integer)  # the frames propagated over
    window_end: Mapped[int | None] = mapped_column(Integer)
    frames_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # timings
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class TrackFrame(Base):
    """One propagated frame of a tracker request (what the page polls for)."""

    __tablename__ = "track_frames"

    request_id: Mapped[int] = mapped_column(ForeignKey("track_requests.id", ondelete="CASCADE"), primary_key=True)
    frame_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)  # the order it arrived in (the page asks for seq > n)
    rle_counts: Mapped[str | None] = mapped_column(Text)  # None: the object is absent on this frame
    bbox_x: Mapped[float | None] = mapped_column(Float)
    bbox_y: Mapped[float | None] = mapped_column(Float)
    bbox_w: Mapped[float | None] = mapped_column(Float)
    bbox_h: Mapped[float | None] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float | None] = mapped_column(Float)
