"""The video benchmark's frames: a synthetic video of moving shapes rendered one frame at a time.

``StreamedFrames`` is an ``engine.ports.FrameSource`` that draws frame ``i`` when it is asked for it
and keeps nothing, so a 1,000-frame video costs no more memory than a 100-frame one: whatever grows
with the number of frames in a run is the model's doing. The shapes are those of ``tests/video_synth.py``
(a red circle and a blue square moving at constant speed), but their positions wrap around the frame,
so a long video keeps both shapes in view instead of emptying after a few dozen frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

BACKGROUND = (235, 235, 225)
PHRASES = ["red circle", "blue square", "green triangle", "yellow star"]


@dataclass(frozen=True)
class MovingShape:
    kind: str  # "circle" | "square"
    color: tuple[int, int, int]
    size: float  # diameter / side as a fraction of the frame's height
    start: tuple[float, float]  # centre at frame 0, fractions of (width, height)
    velocity: tuple[float, float]  # fractions of (width, height) per frame


SHAPES = (
    MovingShape("circle", (220, 40, 40), 0.2, (0.25, 0.5), (0.0125, 0.004)),
    MovingShape("square", (40, 80, 220), 0.17, (0.75, 0.3), (-0.009, 0.008)),
)


def shape_box(shape: MovingShape, index: int, width: int, height: int) -> tuple[float, float, float, float]:
    """The shape's box (x0, y0, x1, y1) on frame ``index``; its centre wraps around the frame."""
    cx = ((shape.start[0] + shape.velocity[0] * index) % 1.0) * width
    cy = ((shape.start[1] + shape.velocity[1] * index) % 1.0) * height
    half = shape.size * height / 2
    return cx - half, cy - half, cx + half, cy + half


def render(index: int, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in SHAPES:
        box = shape_box(shape, index, width, height)
        (draw.ellipse if shape.kind == "circle" else draw.rectangle)(box, fill=shape.color)
    return image


class StreamedFrames:
    """``count`` frames of ``width`` x ``height``, each drawn on request (nothing is kept). Counts the
    frames handed out (``requests``), so a run can say how often the model asked for a frame."""

    def __init__(self, count: int, width: int, height: int) -> None:
        if count < 1:
            raise ValueError("a video has at least one frame")
        self._count, self._size = count, (width, height)
        self.requests = 0

    @property
    def frame_count(self) -> int:
        return self._count

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def frame(self, index: int) -> Image.Image:
        if not 0 <= index < self._count:
            raise IndexError(f"frame {index} of {self._count}")
        self.requests += 1
        return render(index, *self._size)
