"""Which decoded frames are kept (sampling by presentation time) and which sampled frames are the
keyframes (captioned and hashed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from PIL import Image

# timestamps are rounded to their stream's time base (often 1/1000 s): a frame this close before a
# sample time counts as at it
TIME_TOLERANCE = Fraction(1, 1000)


class VideoRejected(Exception):
    """A video that is not mined; ``reason`` is recorded on its item (never the file's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SampledFrame:
    index: int  # 0-based among the sampled frames
    timestamp_s: float  # presentation time, from the video's first frame
    image: Image.Image  # RGB


@dataclass(frozen=True)
class DecodeSummary:
    """What decoding found, once the last frame is read."""

    container: str  # mp4, webm, mov, mkv, frames
    codec: str | None
    width: int
    height: int
    fps: float  # of the source
    duration_s: float
    source_frames: int  # frames decoded
    sampled_frames: int
    byte_size: int


def as_fraction(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(100_000)


class FrameSampler:
    """Keeps the first frame at or after each sample time k / ``sample_fps`` (k = 0, 1, …), times taken
    from the first frame; a source slower than the sample rate keeps every frame."""

    def __init__(self, sample_fps: float) -> None:
        if sample_fps <= 0:
            raise ValueError("sample_fps must be positive")
        self.interval = 1 / as_fraction(sample_fps)
        self._next = Fraction(0)

    def keep(self, t: Fraction) -> bool:
        """Whether the frame at ``t`` seconds (from the first frame, non-decreasing) is sampled."""
        if t + TIME_TOLERANCE < self._next:
            return False
        self._next = (math.floor((t + TIME_TOLERANCE) / self.interval) + 1) * self.interval
        return True


def keyframe_indices(frame_count: int, keyframes: int) -> list[int]:
    """``keyframes`` evenly spaced sampled-frame indices (each at the middle of its equal share of the
    video), fewer when the video has fewer frames; distinct and increasing."""
    if frame_count <= 0:
        return []
    count = min(keyframes, frame_count)
    return sorted({min(frame_count - 1, (2 * i + 1) * frame_count // (2 * count)) for i in range(count)})


def middle(values: list[int]) -> int:
    """The middle keyframe's value (the one the band index holds)."""
    return values[len(values) // 2]
