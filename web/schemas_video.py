"""Request and response types of the video page's endpoints (web/routers/video.py), bounded like
web/schemas.py's: a value the database cannot hold is a 422, never a 500."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from web.schemas import Count, Finite, Id


class TrackIn(BaseModel):
    frame_index: Count = Field(description="the sampled frame clicked on (0-based)")
    points: list[tuple[Finite, Finite, Literal[0, 1]]] = Field(
        min_length=1, max_length=256,
        description="(x, y, label) in the frame's pixels; 1 positive, 0 negative (at most video.max_track_points)")
    mask_id: Id | None = Field(None, description="the masklet this click fixes (a masklet of the task's pair)")


class TrackAccepted(BaseModel):
    request_id: int
    state: str = Field(description="queued: a worker (or this server's tracker thread) will run it")
    window: tuple[int, int] = Field(description="first and last frame the click is propagated over, inclusive")


class Rle(BaseModel):
    size: tuple[int, int] = Field(description="[height, width]")
    counts: str = Field(description="COCO compressed RLE")


class MaskletFrameOut(BaseModel):
    frame_index: int
    rle: Rle
    bbox: tuple[float, float, float, float] = Field(description="x, y, w, h")
    area: int
    score: float | None


class MaskletFramesOut(BaseModel):
    mask_id: int
    frames: list[MaskletFrameOut]
    next: int | None = Field(description="the start to ask from for the rest (null: no more in the range)")


class TrackFrameOut(BaseModel):
    seq: int = Field(description="the order it arrived in; ask for frames after the last seq seen")
    frame_index: int
    rle: Rle | None = Field(description="null: the object is absent on this frame")
    bbox: tuple[float, float, float, float] | None
    score: float | None


class TrackFramesOut(BaseModel):
    request_id: int
    state: str = Field(description="queued, running, done or failed")
    error: str | None
    window: tuple[int, int]
    frames_done: int
    frames: list[TrackFrameOut]
