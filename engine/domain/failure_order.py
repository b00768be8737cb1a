"""The order a failure-mined pool is taken in (pure: numpy only).

Each pool image is scored by its highest cosine similarity to any recent failure image (exact, in
blocks, so memory stays bounded for any pool); the order is the scores, highest first, with a share
``explore_rate`` of the places given to the remaining images in a seeded random order, spread evenly
through the order, so that failures unlike any found so far are still met (the simulation in
bench/failure_mining_sim.py measures the trade-off). An image without an embedding scores nothing and
comes after every scored one, unless an explore place takes it earlier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

BLOCK = 4096  # pool rows scored at once: BLOCK × failures floats in memory


def failure_scores(pool: NDArray[np.float32], failures: NDArray[np.float32]) -> NDArray[np.float32]:
    """For each pool row, its highest dot product with a failure row (cosine similarity for unit
    rows); all −1 without failures."""
    n = int(pool.shape[0]) if pool.ndim == 2 else 0
    if n == 0 or failures.size == 0:
        return np.full(n, -1.0, dtype=np.float32)
    if pool.shape[1] != failures.shape[1]:
        raise ValueError(f"pool vectors have {pool.shape[1]} dimensions, failure vectors {failures.shape[1]}")
    out = np.empty(n, dtype=np.float32)
    f = np.ascontiguousarray(failures.T, dtype=np.float32)
    for start in range(0, n, BLOCK):
        out[start:start + BLOCK] = (pool[start:start + BLOCK].astype(np.float32) @ f).max(axis=1)
    return out


def priority_order(ids: Sequence[int], scores: Sequence[float | None], *, explore_rate: float,
                   seed: int) -> list[int]:
    """``ids`` ordered most-similar-to-failures first (ties and unscored images by id), with every
    ``1/explore_rate``-th place (rounded) given to a seeded random pick of the images not placed yet."""
    if len(ids) != len(scores):
        raise ValueError("ids and scores differ in length")
    if not 0 <= explore_rate <= 1:
        raise ValueError("explore_rate must be within [0, 1]")
    ranked = [i for _, i in sorted(
        ((-(s if s is not None and math.isfinite(s) else -math.inf), i) for i, s in zip(ids, scores, strict=True)))]
    if explore_rate == 0 or len(ranked) < 2:
        return ranked
    rng = np.random.default_rng(seed)
    explore = [ranked[k] for k in rng.permutation(len(ranked))]
    every = max(1, round(1 / explore_rate))
    placed: set[int] = set()
    order: list[int] = []
    best, rand = iter(ranked), iter(explore)
    for place in range(len(ranked)):
        source = rand if (place + 1) % every == 0 else best
        for candidate in source:
            if candidate not in placed:
                placed.add(candidate)
                order.append(candidate)
                break
    return order
