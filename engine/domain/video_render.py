"""What the AI verifiers are shown of a video (pure: PIL and numpy in, PIL out).

MV judges a masklet on a few of its frames: :func:`evenly_spaced` picks them, and each frame with
its mask is one ordinary mask query (rendered by ``engine.domain.render.mask_view`` as for an image);
the answers are averaged (:func:`mean_probabilities`). EV judges a video–phrase pair on one contact
sheet: a few keyframes tiled in a grid (:func:`contact_sheet`) with every masklet's box on each
keyframe moved onto its tile, so one exhaustivity question sees the whole clip."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from engine.domain import masklets

Box = tuple[float, float, float, float]  # absolute x, y, w, h
GAP = 4  # pixels between two tiles of a contact sheet
GAP_COLOUR = (0, 0, 0)


def evenly_spaced(items: Sequence[int], n: int) -> list[int]:
    """``n`` of ``items`` spread evenly, the first and the last included (all of them when there are
    not more than ``n``), in their order — the positions of ``engine.domain.masklets.evenly_spaced``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [items[i] for i in masklets.evenly_spaced(len(items), n)]


def mean_probabilities(answers: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of several answers' probabilities, label by label (a label an answer lacks counts 0),
    normalised to sum to 1."""
    if not answers:
        raise ValueError("no answer to average")
    labels = list(dict.fromkeys(label for answer in answers for label in answer))
    means = {label: sum(float(a.get(label, 0.0)) for a in answers) / len(answers) for label in labels}
    total = sum(means.values())
    return {label: (p / total if total > 0 else 1.0 / len(labels)) for label, p in means.items()}


@dataclass(frozen=True)
class Sheet:
    """A contact sheet and where each tile lies on it."""

    image: Image.Image
    offsets: list[tuple[int, int]]  # per tile: its top-left corner on the sheet
    scale: float  # tile pixels per frame pixel

    def boxes(self, tile: int, boxes: Sequence[Box]) -> list[Box]:
        """Boxes in a frame's pixels → on the sheet, on that frame's tile."""
        ox, oy = self.offsets[tile]
        s = self.scale
        return [(ox + x * s, oy + y * s, w * s, h * s) for x, y, w, h in boxes]


def contact_sheet(frames: Sequence[Image.Image], *, max_side: int | None = None) -> Sheet:
    """The frames (all of one size) tiled in a near-square grid, row by row, ``GAP`` pixels apart;
    with ``max_side`` each tile is scaled down so that the sheet's longest side is at most that."""
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    width, height = frames[0].size
    if any(f.size != (width, height) for f in frames):
        raise ValueError("the frames of a contact sheet must share one size")
    columns = math.ceil(math.sqrt(len(frames)))
    rows = math.ceil(len(frames) / columns)
    scale = 1.0
    if max_side is not None:  # each axis's tiles and gaps fit in max_side
        scale = min(1.0, (max_side - (columns - 1) * GAP) / (columns * width),
                    (max_side - (rows - 1) * GAP) / (rows * height))
    tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    sheet = Image.new("RGB", (columns * tile_w + (columns - 1) * GAP, rows * tile_h + (rows - 1) * GAP), GAP_COLOUR)
    offsets = []
    for k, frame in enumerate(frames):
        offset = ((k % columns) * (tile_w + GAP), (k // columns) * (tile_h + GAP))
        tile = frame.convert("RGB")
        sheet.paste(tile if scale == 1.0 else tile.resize((tile_w, tile_h)), offset)
        offsets.append(offset)
    return Sheet(sheet, offsets, tile_w / width)
