"""What the AI verifiers look at, rendered as SAM 3's verifiers see it (pure: PIL in, PIL out).

Mask verification: two views side by side: a zoomed-out crop around the mask with its box drawn,
and a zoomed-in crop of the box with the mask overlaid. Exhaustivity verification: the image
with the boxes of all current masks drawn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps

BOX_COLOUR = (255, 40, 40)
MASK_COLOUR = (40, 160, 255)


def mask_box(mask: npt.NDArray[np.generic]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, or None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _expand(box: tuple[int, int, int, int], factor: float, width: int, height: int,
            min_side: int = 16) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max((x1 - x0) * factor, min_side) / 2
    half_h = max((y1 - y0) * factor, min_side) / 2
    return (max(0, int(cx - half_w)), max(0, int(cy - half_h)),
            min(width, int(np.ceil(cx + half_w))), min(height, int(np.ceil(cy + half_h))))


def mask_view(image: Image.Image, mask: npt.NDArray[np.generic], *, size: int = 448, context: float = 3.0,
              zoom: float = 1.2) -> Image.Image:
    """The MV input: [context crop with the box | zoomed crop with the mask], each size×size."""
    image = image.convert("RGB")
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask {mask.shape} does not match the image {(image.height, image.width)}")
    box = mask_box(mask) or (0, 0, image.width, image.height)
    outer = _expand(box, context, image.width, image.height)
    left = image.crop(outer)
    ImageDraw.Draw(left).rectangle(
        (box[0] - outer[0], box[1] - outer[1], box[2] - outer[0] - 1, box[3] - outer[1] - 1),
        outline=BOX_COLOUR, width=max(1, round(max(left.size) / 150)))
    inner = _expand(box, zoom, image.width, image.height)
    crop = np.asarray(image.crop(inner), dtype=np.float32)
    region = mask[inner[1]:inner[3], inner[0]:inner[2]]
    crop[region] = 0.5 * crop[region] + 0.5 * np.asarray(MASK_COLOUR, dtype=np.float32)
    right = Image.fromarray(crop.astype(np.uint8))
    canvas = Image.new("RGB", (2 * size, size))
    canvas.paste(ImageOps.pad(left, (size, size)), (0, 0))
    canvas.paste(ImageOps.pad(right, (size, size)), (size, 0))
    return canvas


def boxes_view(image: Image.Image, boxes: Sequence[tuple[float, float, float, float]], *,
               size: int = 896) -> Image.Image:
    """The EV input: the image (longest side ``size``) with every box (absolute x, y, w, h) drawn."""
    image = image.convert("RGB")
    scale = size / max(image.width, image.height)
    out = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(out)
    for x, y, w, h in boxes:
        draw.rectangle((x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1),
                       outline=BOX_COLOUR, width=max(1, round(size / 300)))
    return out
