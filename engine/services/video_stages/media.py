"""A video's sampled frames as the models see them: read from the media store one at a time (a few
kept decoded), each downscaled so that its longest side is at most ``models.max_side`` — memory is
bounded whatever the video's length and size. Masks are stored at the sampled frames' own size."""

from __future__ import annotations

import io
from collections import OrderedDict

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Video, VideoFrame
from engine.storage import MediaStore

CACHED_FRAMES = 8  # decoded frames kept (a proposer's window re-reads recent frames)


class StoredVideo:
    """A ``FrameSource`` over a video's stored frames, downscaled to ``max_side``; ``stored_size``
    is the (height, width) of the frames as stored (the size masks are kept at)."""

    def __init__(self, store: MediaStore, keys: list[str], stored_size: tuple[int, int], max_side: int) -> None:
        if not keys:
            raise ValueError("a video has at least one frame")
        self._store, self._keys, self.stored_size = store, keys, stored_size
        height, width = stored_size
        scale = min(1.0, max_side / max(height, width))
        self._size = (max(1, round(width * scale)), max(1, round(height * scale)))
        self._cache: OrderedDict[int, PILImage.Image] = OrderedDict()

    @property
    def frame_count(self) -> int:
        return len(self._keys)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames handed out."""
        return self._size

    def frame(self, index: int) -> PILImage.Image:
        if not 0 <= index < len(self._keys):
            raise IndexError(f"frame {index} of {len(self._keys)}")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        with PILImage.open(io.BytesIO(self._store.open_bytes(self._keys[index]))) as handle:
            image = handle.convert("RGB")
        if image.size != self._size:
            image = image.resize(self._size, PILImage.Resampling.BILINEAR)
        self._cache[index] = image
        while len(self._cache) > CACHED_FRAMES:
            self._cache.popitem(last=False)
        return image


def open_video(session: Session, store: MediaStore, video_id: int, max_side: int) -> StoredVideo | str:
    """The video's frames, or the reason they cannot be read."""
    video = session.get(Video, video_id)
    if video is None:
        return "video row is gone"
    rows = session.execute(select(VideoFrame.storage_key, VideoFrame.height, VideoFrame.width)
                           .where(VideoFrame.video_id == video_id).order_by(VideoFrame.index)).all()
    if not rows:
        return "the video has no sampled frames"
    return StoredVideo(store, [key for key, _, _ in rows], (rows[0][1], rows[0][2]), max_side)


def read_frames(video: StoredVideo, indices: list[int]) -> list[PILImage.Image] | str:
    """The frames at ``indices``, or the reason one cannot be read."""
    try:
        return [video.frame(i) for i in indices]
    except (OSError, ValueError) as exc:
        return f"cannot read a stored frame: {exc}"
