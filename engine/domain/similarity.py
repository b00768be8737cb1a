"""Pure helpers for image embeddings: L2-normalise, and pack/unpack float32 little-endian vectors
(the ``image_embeddings.vector`` column)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatVector = NDArray[np.float32]


def normalise(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 length (float32); an all-zero row stays zero."""
    array = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    out: NDArray[np.float32] = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return out


def pack(vector: NDArray[np.floating[Any]]) -> bytes:
    """One vector as float32 little-endian bytes."""
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def unpack(data: bytes, dim: int) -> FloatVector:
    """The float32 vector stored by :func:`pack`; ``dim`` must match its length."""
    vector = np.frombuffer(data, dtype="<f4")
    if vector.size != dim:
        raise ValueError(f"stored vector has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)
