"""Masks as COCO compressed RLE: conversion from COCO segmentations, boxes and areas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


class MaskError(ValueError):
    """A segmentation that cannot become a mask of the given size."""


@dataclass(frozen=True)
class RleMask:
    counts: str  # COCO compressed RLE string
    height: int
    width: int
    bbox: tuple[float, float, float, float]  # absolute x, y, w, h
    area: int

    def to_coco(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}


def from_coco_segmentation(segmentation: Any, height: int, width: int) -> RleMask:
    """Polygons, uncompressed RLE or compressed RLE → one compressed RLE of ``height x width``."""
    try:
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
            if not polygons:
                raise MaskError("polygon segmentation with no polygon of 3 or more points")
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and "counts" in segmentation:
            size = segmentation.get("size")
            if list(size or []) != [height, width]:
                raise MaskError(f"RLE size {size} does not match the image size {[height, width]}")
            counts = segmentation["counts"]
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
                mask_utils.decode(rle)  # validates the string
        else:
            raise MaskError(f"unsupported segmentation of type {type(segmentation).__name__}")
    except MaskError:
        raise
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise MaskError(f"invalid segmentation: {exc}") from None
    counts = rle["counts"]
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return RleMask(
        counts=counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
        height=height, width=width, bbox=(x, y, w, h), area=int(mask_utils.area(rle)),
    )


def encode_mask(mask: np.ndarray) -> RleMask:
    """A binary H×W array → compressed RLE with its box and area."""
    arr = np.asfortranarray(mask.astype(np.uint8, copy=False))
    if arr.ndim != 2:
        raise MaskError(f"a mask must be 2-D, got shape {mask.shape}")
    rle = mask_utils.encode(arr)
    counts = rle["counts"]
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return RleMask(counts=counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
                   height=int(arr.shape[0]), width=int(arr.shape[1]), bbox=(x, y, w, h),
                   area=int(mask_utils.area(rle)))


def decode_mask(mask: RleMask) -> np.ndarray:
    return mask_utils.decode({"size": [mask.height, mask.width], "counts": mask.counts.encode()}).astype(bool)


def iou_matrix(a: list[RleMask], b: list[RleMask]) -> np.ndarray:
    """Mask IoU between every mask of ``a`` and every mask of ``b`` (len(a) × len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    to_rle = lambda m: {"size": [m.height, m.width], "counts": m.counts.encode()}  # noqa: E731
    return np.asarray(mask_utils.iou([to_rle(m) for m in a], [to_rle(m) for m in b], [0] * len(b)))


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
