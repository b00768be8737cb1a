"""The approximate nearest-neighbour index of image embeddings (USearch, cosine, HNSW).

One index per embedder model version, persisted at ``<data_dir>/index/<model_version_id>.usearch`` on
each host; the ``image_embeddings`` table is the source of truth it is synced and rebuilt from. Keys are
image ids.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Neighbour:
    image_id: int
    similarity: float  # cosine similarity, 1.0 for the same direction


def index_path(data_dir: Path, model_version_id: int) -> Path:
    return Path(data_dir) / "index" / f"{model_version_id}.usearch"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for one read-add-save (processes of one host adding at once would
    otherwise each save their own copy and lose the other's entries)."""
    lock = Path(path).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SimilarityIndex:
    """A USearch cosine index on disk: add incrementally, search, save atomically."""

    def __init__(self, path: Path, dim: int) -> None:
        from usearch.index import Index

        self.path = Path(path)
        self.dim = dim
        self._index: Any = Index(ndim=dim, metric="cos", dtype="f32")
        if self.path.exists():
            self._index.load(str(self.path))
            if self._index.ndim != dim:
                raise ValueError(f"index {self.path} has {self._index.ndim} dimensions, expected {dim}")

    @classmethod
    def readable(cls, path: Path, dim: int) -> SimilarityIndex | None:
        """The index on disk, or None when the file is missing, unreadable (truncated, not an index) or
        of another dimension: the caller rebuilds it from the table."""
        if not Path(path).is_file():
            return None
        try:
            return cls(path, dim)
        except (RuntimeError, ValueError, OSError):
            return None

    def __len__(self) -> int:
        return int(len(self._index))

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, int) and bool(self._index.contains(image_id))

    def keys(self) -> set[int]:
        return {int(key) for key in self._index.keys}

    def key_sum(self) -> int:
        """The sum of the keys: with the size, a cheap fingerprint to compare with the table's."""
        return int(np.asarray(self._index.keys, dtype=np.uint64).sum(dtype=np.uint64)) if len(self) else 0

    def remove(self, image_ids: list[int]) -> int:
        """Take the vectors of ``image_ids`` out (ids not in the index are ignored); returns how many."""
        present = [key for key in image_ids if self._index.contains(key)]
        for key in present:
            self._index.remove(key)
        return len(present)

    def add(self, image_ids: list[int], vectors: NDArray[np.float32]) -> int:
        """Add (or replace) the vectors of ``image_ids``; returns how many were added."""
        if not image_ids:
            return 0
        keys = np.asarray(image_ids, dtype=np.uint64)
        for key in image_ids:
            if self._index.contains(key):
                self._index.remove(key)
        self._index.add(keys, np.asarray(vectors, dtype=np.float32).reshape(len(image_ids), self.dim))
        return len(image_ids)

    def search(self, vector: NDArray[np.float32], k: int, *, exclude: int | None = None) -> list[Neighbour]:
        """The ``k`` nearest images to ``vector``, most similar first (``exclude``: an id left out)."""
        if len(self) == 0 or k < 1:
            return []
        wanted = min(len(self), k + (1 if exclude is not None else 0))
        matches = self._index.search(np.asarray(vector, dtype=np.float32).reshape(self.dim), wanted)
        found = [Neighbour(int(key), 1.0 - float(distance))
                 for key, distance in zip(matches.keys, matches.distances, strict=True)]
        return [n for n in found if n.image_id != exclude][:k]

    def save(self) -> None:
        """Write the index next to its final path and rename it into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        os.close(handle)
        try:
            self._index.save(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def clear(self) -> None:
        self._index.reset()
