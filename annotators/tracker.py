"""Click to segment with SAM 3's tracker (transformers' Sam3TrackerModel / Sam3TrackerProcessor).

An image is embedded once per key (``get_image_embeddings``) and kept, with its original size, in a
bounded LRU cache; each click then runs only the prompt encoder and the mask decoder on the cached
embedding, and the low-resolution mask is resized to the image (``post_process_masks``). The web
server calls from several threads: one lock serialises the model calls, and concurrent misses of
one key compute its embedding once (the other callers wait for it).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from annotators.loading import load_pretrained, stamp_for
from engine.domain.vocabulary import ModelKind
from engine.ports import ClickMask

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Embedding:
    """One image's cached embedding: the feature levels on the model's device, and its size."""

    features: list[Any]  # get_image_embeddings' levels (high-resolution first, the decoder's input last)
    size: tuple[int, int]  # original (height, width)


@dataclass(frozen=True)
class _Prompt:
    """Validated clicks: pixel coordinates, labels (1 positive, 0 negative) and an optional box."""

    coords: list[list[float]]
    labels: list[int]
    box: list[float] | None


class Sam3TrackerSegmenter:
    """The engine's PointSegmenter on a SAM 3 (tracker) checkpoint.

    ``last_timing`` holds the milliseconds of the latest ``segment`` call: ``load_ms`` (``load_image``),
    ``embed_ms`` (pre-processing and image encoder; 0 on a cache hit, the wait when another thread was
    computing it), ``decode_ms`` (prompt encoder and mask decoder) and ``post_ms`` (resize to the image).
    """

    def __init__(self, ref: str, *, embedding_cache_size: int = 32, mask_threshold: float = 0.0,
                 device: str = "auto") -> None:
        import torch
        from transformers import Sam3TrackerModel, Sam3TrackerProcessor

        if embedding_cache_size < 1:
            raise ValueError(f"embedding_cache_size must be at least 1, got {embedding_cache_size}")
        loaded = load_pretrained(ref, Sam3TrackerProcessor, Sam3TrackerModel, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        self.mask_threshold = mask_threshold
        self.embedding_cache_size = embedding_cache_size
        self.stamp = stamp_for(ModelKind.TRACKER, ref, loaded, {"mask_threshold": mask_threshold})
        self.last_timing: dict[str, float] = {}
        self._model_lock = threading.Lock()  # every call into the model
        self._cache_lock = threading.Lock()  # the cache, the in-flight table and the counters
        self._cache: OrderedDict[str, _Embedding] = OrderedDict()
        self._pending: dict[str, Future[_Embedding]] = {}
        self._hits = 0
        self._misses = 0

    # -- the engine's port
    def segment(self, image_key: str, load_image: Callable[[], Image.Image],
                points: Sequence[tuple[float, float, int]], box: Box | None = None) -> ClickMask:
        """The mask for the clicks (x, y, label) and optional box (x0, y0, x1, y1), in the original
        image's pixels, at the image's size."""
        prompt = _checked_prompt(points, box)
        timing = {"load_ms": 0.0, "embed_ms": 0.0, "decode_ms": 0.0, "post_ms": 0.0}
        entry = self._embedding(image_key, load_image, timing)
        _check_inside(prompt, entry.size)
        sizes = [list(entry.size)]
        with self.torch.inference_mode():
            start = time.perf_counter()
            inputs = self.processor(
                input_points=[[prompt.coords]] if prompt.coords else None,
                input_labels=[[prompt.labels]] if prompt.coords else None,
                input_boxes=[[prompt.box]] if prompt.box is not None else None,
                original_sizes=sizes, return_tensors="pt",
            )
            prompts = {name: inputs[name].to(self.device)
                       for name in ("input_points", "input_labels", "input_boxes") if name in inputs}
            with self._model_lock:
                out = self.model(image_embeddings=entry.features, multimask_output=False, **prompts)
                self._synchronize()
            timing["decode_ms"] = _ms_since(start)
            start = time.perf_counter()
            masks = self.processor.post_process_masks(out.pred_masks, sizes, mask_threshold=self.mask_threshold)
            mask = masks[0][0, 0].to("cpu").numpy().astype(bool)
            score = float(out.iou_scores[0, 0, 0])
            timing["post_ms"] = _ms_since(start)
        self.last_timing = timing
        return ClickMask(mask=np.ascontiguousarray(mask), score=score)

    def cache_info(self) -> dict[str, int]:
        """hits (clicks served without computing an embedding), misses (embeddings computed), size,
        capacity."""
        with self._cache_lock:
            return {"hits": self._hits, "misses": self._misses, "size": len(self._cache),
                    "capacity": self.embedding_cache_size}

    # -- the embedding cache
    def _embedding(self, key: str, load_image: Callable[[], Image.Image], timing: dict[str, float]) -> _Embedding:
        """The cached embedding of ``key``; on a miss this thread computes it, unless another thread
        already is, in which case this one waits for that result."""
        start = time.perf_counter()
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return entry
            pending = self._pending.get(key)
            if pending is not None:
                self._hits += 1
            else:
                owned: Future[_Embedding] = Future()
                self._pending[key] = owned
                self._misses += 1
        if pending is not None:
            entry = pending.result()
            timing["embed_ms"] = _ms_since(start)
            return entry
        try:
            entry = self._compute(load_image, timing)
        except BaseException as exc:
            with self._cache_lock:
                del self._pending[key]
            owned.set_exception(exc)
            raise
        with self._cache_lock:
            self._cache[key] = entry
            while len(self._cache) > self.embedding_cache_size:
                self._cache.popitem(last=False)
            del self._pending[key]
        owned.set_result(entry)
        return entry

    def _compute(self, load_image: Callable[[], Image.Image], timing: dict[str, float]) -> _Embedding:
        start = time.perf_counter()
        image = load_image()
        timing["load_ms"] = _ms_since(start)
        start = time.perf_counter()
        with self.torch.inference_mode():
            pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, dtype=self.model.dtype)
            with self._model_lock:
                features = self.model.get_image_embeddings(pixel_values=pixels)
                self._synchronize()
        timing["embed_ms"] = _ms_since(start)
        return _Embedding(features=list(features), size=(image.height, image.width))

    def _synchronize(self) -> None:
        """Wait for queued GPU work, so that the timings are the work's own."""
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)


def _checked_prompt(points: Sequence[tuple[float, float, int]], box: Box | None) -> _Prompt:
    """The clicks and box as plain lists; a ValueError saying what is wrong otherwise."""
    coords: list[list[float]] = []
    labels: list[int] = []
    for i, point in enumerate(points):
        if len(point) != 3:
            raise ValueError(f"point {i}: expected (x, y, label), got {point!r}")
        x, y, label = point
        if label not in (0, 1):
            raise ValueError(f"point {i}: label must be 1 (positive) or 0 (negative), got {label!r}")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point {i}: coordinates must be finite numbers, got ({x}, {y})")
        coords.append([float(x), float(y)])
        labels.append(int(label))
    corners: list[float] | None = None
    if box is not None:
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise ValueError(f"box: expected four finite numbers (x0, y0, x1, y1), got {box!r}")
        corners = [float(v) for v in box]
        if not (corners[0] < corners[2] and corners[1] < corners[3]):
            raise ValueError(f"box: expected x0 < x1 and y0 < y1, got {box!r}")
    if not coords and corners is None:
        raise ValueError("a prompt needs at least one point or a box")
    return _Prompt(coords, labels, corners)


def _check_inside(prompt: _Prompt, size: tuple[int, int]) -> None:
    height, width = size
    for i, (x, y) in enumerate(prompt.coords):
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"point {i}: ({x}, {y}) lies outside the {width}×{height} image")
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
            raise ValueError(f"box: {tuple(prompt.box)} reaches outside the {width}×{height} image")


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
