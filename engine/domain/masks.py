"""Masks as COCO compressed RLE: conversion from COCO segmentations, boxes and areas.

Every mask is validated here before pycocotools' native code sees it (:func:`validate_rle`,
:func:`validate_counts`, :func:`validate_polygons`): a string whose counts do not sum to
height × width, holds characters outside COCO's alphabet or ends inside a number makes the C code
read past its buffer or loop for ever. The compressed string is parsed in numpy, never by
pycocotools. Bounds: at most ``MAX_MASK_PIXELS`` pixels, at most height × width + 1 runs, at most
``MAX_RLE_CHARS`` characters, polygons of at most ``MAX_POLYGON_VALUES`` numbers inside the image
(give or take 1 % of its side, at least one pixel) whose edges total at most ``MAX_POLYGON_PERIMETER``
pixels.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils


class MaskError(ValueError):
    """A segmentation that cannot become a mask of the given size."""


MAX_MASK_PIXELS = 1 << 28  # height × width (pycocotools parses a count's digits in 32-bit int arithmetic)
MAX_RLE_CHARS = 32_000_000  # a compressed RLE string
MAX_RLE_RUNS = 16_000_000  # an uncompressed RLE list
MAX_POLYGON_VALUES = 200_000  # numbers over all polygons of one segmentation
# pycocotools rasterises a polygon through every point of its edges (×5 upsampled): memory and time
# follow the perimeter, not the count of points (measured: a 10,000-point zigzag across a 4000² image,
# perimeter 40 M px, took 2 GB and 10 s). Sum of the edges' L∞ lengths over all polygons, in pixels:
MAX_POLYGON_PERIMETER = 2_000_000
_COCO_ALPHABET = re.compile("[0-o]*")
_MAX_DIGITS = 6  # 5-bit digits of one count: 30 bits, the most pycocotools shifts without overflow


def _check_size(height: Any, width: Any) -> int:
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_) for v in (height, width)) \
            or height < 1 or width < 1:
        raise MaskError(f"mask size {[height, width]!r} is not two positive integers")
    h, w = int(height), int(width)
    if h * w > MAX_MASK_PIXELS:
        raise MaskError(f"mask size {h}×{w} exceeds {MAX_MASK_PIXELS:,} pixels")
    return h * w


def _check_runs(cnts: npt.NDArray[np.int64], pixels: int) -> None:
    if cnts.size > pixels + 1:
        raise MaskError(f"RLE holds {cnts.size} runs, more than {pixels + 1} for {pixels} pixels")
    if cnts.size and int(cnts.min()) < 0:
        raise MaskError("RLE holds a negative count")
    total = int(cnts.sum()) if cnts.size else 0
    if total != pixels:
        raise MaskError(f"RLE counts sum to {total}, not height × width = {pixels}")


def decode_counts_string(counts: str | bytes) -> npt.NDArray[np.int64]:
    """COCO's compressed RLE string → its run lengths (int64), parsed as pycocotools' rleFrString
    does but refusing what the C code would read past or wrap: characters outside ``0``…``o``, a
    string ending inside a number, a number of more than 6 digits."""
    if isinstance(counts, str):
        if not counts.isascii():
            raise MaskError("RLE counts hold a character outside COCO's alphabet")
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise MaskError(f"RLE counts of type {type(counts).__name__} (expected a string or a list)")
    if len(counts) > MAX_RLE_CHARS:
        raise MaskError(f"RLE counts string of {len(counts)} characters exceeds {MAX_RLE_CHARS:,}")
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if int(c.min()) < 0 or int(c.max()) > 63:
        raise MaskError("RLE counts hold a character outside COCO's alphabet ('0'…'o')")
    more = (c & 0x20) != 0
    if more[-1]:
        raise MaskError("RLE counts string ends inside a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    digits = ends - starts + 1
    if int(digits.max()) > _MAX_DIGITS:
        raise MaskError(f"RLE counts hold a number of more than {_MAX_DIGITS} digits")
    position = np.arange(c.size) - np.repeat(starts, digits)
    x = np.add.reduceat((c & 0x1F) << (5 * position), starts)
    negative = (c[ends] & 0x10) != 0
    x = np.where(negative, x - (np.int64(1) << (5 * digits)), x)
    # counts[i] = x[i] + counts[i - 2] for i > 2 (deltas against the run of the same colour)
    cnts = x.copy()
    if cnts.size > 3:
        for parity in (1, 0):
            first = 1 if parity else 2
            cnts[first::2] = np.cumsum(x[first::2])
    return cnts


def validate_rle(counts: Any, height: Any, width: Any) -> None:
    """Raise MaskError unless ``counts`` (a compressed string or an uncompressed list) is a
    well-formed RLE of exactly ``height × width`` pixels."""
    pixels = _check_size(height, width)
    if isinstance(counts, list):
        validate_counts(counts, pixels)
        return
    if isinstance(counts, str | bytes) and len(counts) > min(MAX_RLE_CHARS, _MAX_DIGITS * (pixels + 1)):
        raise MaskError(f"RLE counts string of {len(counts)} characters is too long for {pixels} pixels")
    _check_runs(decode_counts_string(counts), pixels)


def validate_counts(counts: list[Any], pixels: int) -> None:
    """An uncompressed RLE list: integers, non-negative, at most pixels + 1 of them, summing to pixels."""
    if len(counts) > min(MAX_RLE_RUNS, pixels + 1):
        raise MaskError(f"RLE holds {len(counts)} runs, more than {min(MAX_RLE_RUNS, pixels + 1)}")
    if not all(type(v) is int for v in counts):  # noqa: E721 (no bools, no floats)
        raise MaskError("uncompressed RLE counts must be integers")
    if any(v < 0 or v > MAX_MASK_PIXELS for v in counts):
        raise MaskError("RLE holds a negative or too large count")
    _check_runs(np.asarray(counts, dtype=np.int64), pixels)


def validate_polygons(polygons: list[Any], height: int, width: int) -> None:
    """Numbers only, finite, an even count of at least 6 per polygon, inside the image give or take
    1 % of its side (at least one pixel: rounding by the tool that drew it; pycocotools rasterises
    every edge point by point: far-away points cost unbounded memory, hostile ones crash it)."""
    check_polygon_shape(polygons)
    for k, polygon in enumerate(polygons):
        for j, v in enumerate(polygon):
            side = width if j % 2 == 0 else height
            slack = max(1.0, side / 100)  # rounding by the tools that drew it
            if not -slack <= v <= side + slack:
                raise MaskError(f"polygon {k} point {j // 2} lies outside the {height}×{width} image")
    perimeter = 0.0
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        perimeter += float(np.abs(points - np.roll(points, 1, axis=0)).max(axis=1).sum())
    if perimeter > MAX_POLYGON_PERIMETER:
        raise MaskError(f"polygons have a perimeter of {perimeter:,.0f} pixels, more than "
                        f"{MAX_POLYGON_PERIMETER:,} (too costly to rasterise)")


def check_polygon_shape(polygons: Any) -> None:
    """A polygon segmentation's form, before any image size is known: a non-empty list of at most
    ``MAX_POLYGON_VALUES`` numbers in all, each polygon a list of an even count (≥ 6) of finite numbers."""
    if not isinstance(polygons, list) or not polygons:
        raise MaskError("polygon segmentation with no polygon")
    total = 0
    for k, polygon in enumerate(polygons):
        if not isinstance(polygon, list):
            raise MaskError(f"polygon {k} is a {type(polygon).__name__}, not a list of numbers")
        total += len(polygon)
        if total > MAX_POLYGON_VALUES:
            raise MaskError(f"polygons hold more than {MAX_POLYGON_VALUES:,} numbers")
        if len(polygon) < 6:
            raise MaskError(f"polygon {k} holds {len(polygon)} numbers: no polygon of 3 or more points")
        if len(polygon) % 2:
            raise MaskError(f"polygon {k} holds an odd count of numbers")
        for v in polygon:
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                shown = repr(v) if isinstance(v, int | float) else type(v).__name__
                raise MaskError(f"polygon {k} holds {shown}, not a finite number")


def check_segmentation_shape(segmentation: Any) -> None:
    """A COCO segmentation's form before the image is known (polygons, or an RLE object whose
    ``size`` is two positive integers and whose ``counts`` is a string of COCO's alphabet or a list
    of integers, within the bounds above). MaskError with the reason; the geometry is checked
    against the image by :func:`from_coco_segmentation`."""
    if isinstance(segmentation, list):
        check_polygon_shape(segmentation)
        return
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        raise MaskError(f"unsupported segmentation of type {type(segmentation).__name__}")
    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2:
        raise MaskError("RLE size is not [height, width]")
    _check_size(*size)
    counts = segmentation["counts"]
    if isinstance(counts, str):
        if len(counts) > MAX_RLE_CHARS:
            raise MaskError(f"RLE counts string of {len(counts)} characters exceeds {MAX_RLE_CHARS:,}")
        if not _COCO_ALPHABET.fullmatch(counts):
            raise MaskError("RLE counts hold a character outside COCO's alphabet ('0'…'o')")
    elif isinstance(counts, list):
        if len(counts) > MAX_RLE_RUNS:
            raise MaskError(f"RLE holds more than {MAX_RLE_RUNS:,} runs")
        if not all(type(v) is int for v in counts):  # noqa: E721 (no bools, no floats)
            raise MaskError("uncompressed RLE counts must be integers")
    else:
        raise MaskError(f"RLE counts of type {type(counts).__name__} (expected a string or a list)")


def valid_rle(counts: str, height: int, width: int) -> bool:
    """Whether ``counts`` is a valid compressed RLE of a ``height`` × ``width`` mask (see validate_rle)."""
    try:
        validate_rle(counts, height, width)
    except MaskError:
        return False
    return True


def is_valid(mask: RleMask) -> bool:
    return valid_rle(mask.counts, mask.height, mask.width)


def validate_mask(mask: RleMask) -> RleMask:
    """The last gate before storage or native code: the record's string is a valid RLE of its size."""
    validate_rle(mask.counts, mask.height, mask.width)
    return mask


@dataclass(frozen=True)
class RleMask:
    counts: str  # COCO compressed RLE string
    height: int
    width: int
    bbox: tuple[float, float, float, float]  # absolute x, y, w, h
    area: int

    def to_coco(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}


def from_coco_segmentation(segmentation: Any, height: int, width: int, *, allow_empty: bool = True) -> RleMask:
    """Polygons, uncompressed RLE or compressed RLE → one compressed RLE of ``height x width``.
    ``allow_empty=False``: a mask of no pixel (a polygon in the margin outside the image, an RLE of
    zeros) is a MaskError."""
    try:
        _check_size(height, width)
        if isinstance(segmentation, list):
            validate_polygons(segmentation, height, width)  # before any native code sees it
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation, dict) and "counts" in segmentation:
            size = segmentation.get("size")
            if list(size or []) != [height, width]:
                raise MaskError(f"RLE size {size} does not match the image size {[height, width]}")
            counts = segmentation["counts"]
            validate_rle(counts, height, width)  # before any native code sees it
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
            else:
                rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
        else:
            raise MaskError(f"unsupported segmentation of type {type(segmentation).__name__}")
    except MaskError:
        raise
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise MaskError(f"invalid segmentation: {exc}") from None
    counts = rle["counts"]
    area = int(mask_utils.area(rle))
    if area == 0 and not allow_empty:
        raise MaskError("the mask is empty (the segmentation covers no pixel of the image)")
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return RleMask(
        counts=counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
        height=height, width=width, bbox=(x, y, w, h), area=area,
    )


def encode_mask(mask: npt.NDArray[np.generic]) -> RleMask:
    """A binary H×W array → compressed RLE with its box and area."""
    # a bool array is read as bytes without a copy (same item size): one copy, into column order, not two
    arr = np.asfortranarray(mask.view(np.uint8) if mask.dtype == np.bool_ else mask.astype(np.uint8, copy=False))
    if arr.ndim != 2:
        raise MaskError(f"a mask must be 2-D, got shape {mask.shape}")
    rle = mask_utils.encode(arr)
    counts = rle["counts"]
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return RleMask(counts=counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
                   height=int(arr.shape[0]), width=int(arr.shape[1]), bbox=(x, y, w, h),
                   area=int(mask_utils.area(rle)))


def decode_mask(mask: RleMask) -> npt.NDArray[np.bool_]:
    validate_mask(mask)
    decoded: npt.NDArray[np.uint8] = mask_utils.decode(_coco_rle(mask))
    return decoded.astype(bool)


def _coco_rle(mask: RleMask) -> dict[str, Any]:
    """The mask as pycocotools' RLE object (counts as bytes)."""
    return {"size": [mask.height, mask.width], "counts": mask.counts.encode()}


def iou_matrix(a: list[RleMask], b: list[RleMask]) -> npt.NDArray[np.float64]:
    """Mask IoU between every mask of ``a`` and every mask of ``b`` (len(a) × len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou([_coco_rle(validate_mask(m)) for m in a],
                                     [_coco_rle(validate_mask(m)) for m in b], [0] * len(b)), dtype=np.float64)


def dedup_by_iou(masks: list[RleMask], scores: list[float], threshold: float) -> list[int]:
    """Greedy mask NMS: indices to keep, best score first; a mask overlapping a kept one with
    IoU above ``threshold`` is dropped."""
    order = sorted(range(len(masks)), key=lambda i: -scores[i])
    ious = iou_matrix(masks, masks)
    kept: list[int] = []
    for i in order:
        if masks[i].area == 0:
            continue
        if all(ious[i, j] <= threshold for j in kept):
            kept.append(i)
    return kept
