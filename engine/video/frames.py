"""Frame sources (engine.ports.FrameSource): the sampled frames of one video, read one at a time."""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence

from PIL import Image

from engine.storage import MediaStore


class ListFrames:
    """Frames already in memory (tests, benchmarks, a short clip)."""

    def __init__(self, frames: Sequence[Image.Image]) -> None:
        if not frames:
            raise ValueError("a video has at least one frame")
        self._frames = list(frames)
        self._size = self._frames[0].size

    @property
    def frame_count(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def frame(self, index: int) -> Image.Image:
        if not 0 <= index < len(self._frames):
            raise IndexError(f"frame {index} of {len(self._frames)}")
        return self._frames[index].convert("RGB")


class StoredFrames:
    """A video's sampled frames in the media store (its ``VideoFrame`` storage keys in index order),
    read one at a time; the last few decoded frames are kept (an LRU of ``cache`` frames). Holds no
    database session: build it with ``engine.repositories.videos.frames_of``."""

    def __init__(self, store: MediaStore, keys: Sequence[str], size: tuple[int, int], cache: int = 8) -> None:
        if not keys:
            raise ValueError("a video has at least one frame")
        self._store = store
        self._keys = list(keys)
        self._size = size
        self._cache: OrderedDict[int, Image.Image] = OrderedDict()
        self._cache_size = max(1, cache)

    @property
    def frame_count(self) -> int:
        return len(self._keys)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def frame(self, index: int) -> Image.Image:
        if not 0 <= index < len(self._keys):
            raise IndexError(f"frame {index} of {len(self._keys)}")
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        with Image.open(io.BytesIO(self._store.open_bytes(self._keys[index]))) as raw:
            image = raw.convert("RGB")
        self._cache[index] = image
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return image
