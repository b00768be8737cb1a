"""Synthetic videos for the tests: moving shapes on a plain background, encoded with PyAV (mp4/H.264,
webm/VP9, mov, mkv) or written as a folder of JPEG frames. Deterministic: the same arguments give the
same frames. ``shape_boxes`` tells where each shape is on a frame (ground truth for the tests)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}


@dataclass(frozen=True)
class Shape:
    kind: str  # "circle" | "square"
    color: tuple[int, int, int]
    size: int  # diameter / side, px
    start: tuple[float, float]  # centre at frame 0, as fractions of (width, height)
    velocity: tuple[float, float]  # px per frame


DEFAULT_SHAPES = (
    Shape("circle", (220, 40, 40), 24, (0.25, 0.5), (2.0, 0.5)),
    Shape("square", (40, 80, 220), 20, (0.75, 0.3), (-1.5, 1.0)),
)


def shape_boxes(index: int, width: int, height: int,
                shapes: tuple[Shape, ...] = DEFAULT_SHAPES) -> list[tuple[float, float, float, float]]:
    """Each shape's box (x0, y0, x1, y1) on frame ``index``, clipped to the frame."""
    out = []
    for s in shapes:
        cx = s.start[0] * width + s.velocity[0] * index
        cy = s.start[1] * height + s.velocity[1] * index
        half = s.size / 2
        out.append((max(0.0, cx - half), max(0.0, cy - half),
                    min(float(width), cx + half), min(float(height), cy + half)))
    return out


def frames(count: int, width: int = 160, height: int = 120,
           shapes: tuple[Shape, ...] = DEFAULT_SHAPES) -> Iterator[Image.Image]:
    for i in range(count):
        image = Image.new("RGB", (width, height), (235, 235, 225))
        draw = ImageDraw.Draw(image)
        for s, box in zip(shapes, shape_boxes(i, width, height, shapes), strict=True):
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            (draw.ellipse if s.kind == "circle" else draw.rectangle)(box, fill=s.color)
        yield image


def write_video(path: Path, count: int = 24, fps: int = 12, width: int = 160, height: int = 120,
                shapes: tuple[Shape, ...] = DEFAULT_SHAPES, codec: str | None = None) -> Path:
    """Encode ``count`` frames at ``fps`` into ``path`` (the container from its suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or CODECS.get(path.suffix, "libx264")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for image in frames(count, width, height, shapes):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, count: int = 24, width: int = 160, height: int = 120,
                       shapes: tuple[Shape, ...] = DEFAULT_SHAPES) -> Path:
    """``count`` JPEG frames named 00000.jpg, 00001.jpg … (one folder = one video)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(frames(count, width, height, shapes)):
        image.save(folder / f"{i:05d}.jpg", quality=92)
    return folder


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a video file to a fraction of its bytes (a truncated download)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path
