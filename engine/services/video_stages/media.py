"""A video's sampled frames as the models see them: ``engine.repositories.videos.frames_of`` (read
from the media store one at a time, a few kept decoded), each downscaled so that its longest side is
at most ``models.max_side`` — memory is bounded whatever the video's length and size. Masks are
stored at the video's own frame size (``stored_size``)."""

from __future__ import annotations

from PIL import Image as PILImage
from sqlalchemy.orm import Session

from engine.ports import FrameSource
from engine.repositories import videos as videos_repo
from engine.storage import MediaStore


class StoredVideo:
    """A ``FrameSource`` over a video's stored frames, downscaled to ``max_side``; ``stored_size``
    is the (height, width) of the frames as stored (the size masks are kept at)."""

    def __init__(self, frames: FrameSource, max_side: int) -> None:
        self._frames = frames
        width, height = frames.size
        self.stored_size = (height, width)
        scale = min(1.0, max_side / max(height, width))
        self._size = (max(1, round(width * scale)), max(1, round(height * scale)))

    @property
    def frame_count(self) -> int:
        return self._frames.frame_count

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames handed out."""
        return self._size

    def frame(self, index: int) -> PILImage.Image:
        image = self._frames.frame(index)
        if image.size != self._size:
            image = image.resize(self._size, PILImage.Resampling.BILINEAR)
        return image


def open_video(session: Session, store: MediaStore, video_id: int, max_side: int) -> StoredVideo | str:
    """The video's frames, or the reason they cannot be read."""
    try:
        return StoredVideo(videos_repo.frames_of(session, store, video_id), max_side)
    except LookupError:
        return "video row is gone"
    except ValueError:
        return "the video has no sampled frames"


def read_frames(video: StoredVideo, indices: list[int]) -> list[PILImage.Image] | str:
    """The frames at ``indices``, or the reason one cannot be read."""
    try:
        return [video.frame(i) for i in indices]
    except (OSError, ValueError) as exc:
        return f"cannot read a stored frame: {exc}"
