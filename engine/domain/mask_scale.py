"""Masks between the image's original size and the model side's bounded size (pure).

The model side sees a downscaled image (``models.max_side``): its masks are upsampled here by
nearest neighbour, one mask at a time, straight into the column-major layout COCO RLE reads
(``encode_at``), and stored masks are shown to it at its size (``decode_at``); at most one
full-resolution mask (one byte per pixel) exists at any moment.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.domain.masks import MaskError, RleMask, decode_mask, encode_mask


def nearest_index(source: int, target: int) -> npt.NDArray[np.int64]:
    """For each of ``target`` output positions, the source position whose centre it falls in."""
    return ((2 * np.arange(target, dtype=np.int64) + 1) * source) // (2 * target)


def encode_at(mask: npt.NDArray[np.generic], height: int, width: int) -> RleMask:
    """The binary mask ``mask`` (h×w) as COCO RLE of a height×width image, upsampled by nearest
    neighbour (exact: a pixel is inside when the mask pixel its centre falls in is)."""
    if mask.ndim != 2:
        raise MaskError(f"a mask must be 2-D, got shape {mask.shape}")
    if height < 1 or width < 1:
        raise MaskError(f"target size must be positive, got {height}×{width}")
    if mask.shape == (height, width):
        return encode_mask(mask)
    small = (mask if mask.dtype == bool else mask != 0).view(np.uint8)
    columns = small.T[nearest_index(small.shape[1], width)]  # (width, h): the source column of each column
    full = columns[:, nearest_index(small.shape[0], height)]  # (width, height), C order
    return encode_mask(full.T)  # (height, width) in Fortran order: no copy before encoding


def decode_at(mask: RleMask, height: int, width: int) -> npt.NDArray[np.bool_]:
    """The stored mask decoded (validated first) and resized by nearest neighbour to height×width:
    what a model that sees the downscaled image is shown. One full-size mask exists meanwhile."""
    full = decode_mask(mask)
    if full.shape == (height, width):
        return full
    return full[nearest_index(mask.height, height)][:, nearest_index(mask.width, width)]
