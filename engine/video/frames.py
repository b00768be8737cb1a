"""Frame sources (engine.ports.FrameSource): the sampled frames of one video, read one at a time."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image


class ListFrames:
    """Frames already in memory (tests, benchmarks, a short clip)."""

    def __init__(self, frames: Sequence[Image.Image]) -> None:
        if not frames:
            raise ValueError("a video has at least one frame")
        self._frames = list(frames)
        self._size = self._frames[0].size

    @property
    def frame_count(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def frame(self, index: int) -> Image.Image:
        if not 0 <= index < len(self._frames):
            raise IndexError(f"frame {index} of {len(self._frames)}")
        return self._frames[index].convert("RGB")
