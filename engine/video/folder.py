"""A folder of frames (one folder = one video): its image files in name order, decoded one at a
time at the job's frame rate (``video.frames_fps``) and sampled as a video file is.

Its identity is the sha256 over its frames' sha256s in order (renaming the files keeps it). A frame
that does not decode fails the video with the frame's name; so does a frame whose size differs from
the first's."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from fractions import Fraction

from PIL import Image, UnidentifiedImageError

from engine.video.sampling import DecodeSummary, FrameSampler, SampledFrame, VideoRejected, as_fraction
from engine.video_settings import VideoLimits


class FrameFolderDecoder:
    """``files``: (name, bytes) of each frame in order (read lazily, one at a time). ``frames()`` yields
    the sampled frames; then ``summary`` and ``sha256`` are set."""

    def __init__(self, files: Iterable[tuple[str, bytes]], limits: VideoLimits, frames_fps: float,
                 sample_fps: float) -> None:
        self._files = files
        self._limits = limits
        self._rate = as_fraction(frames_fps)
        self._sample_fps = sample_fps
        self.summary: DecodeSummary | None = None
        self.sha256: str | None = None

    def frames(self) -> Iterator[SampledFrame]:
        limits, sampler = self._limits, FrameSampler(self._sample_fps)
        digest = hashlib.sha256()
        size: tuple[int, int] | None = None
        count = sampled = byte_size = 0
        codec: str | None = None
        for name, data in self._files:
            count += 1
            if count > limits.max_source_frames:
                raise VideoRejected(f"over the frame cap: more than {limits.max_source_frames} frames")
            digest.update(hashlib.sha256(data).hexdigest().encode())
            byte_size += len(data)
            header, fmt = _open_frame(name, data, limits)
            image = _decoded(name, header)  # every frame decodes, sampled or not
            codec = codec or fmt
            if size is None:
                size = image.size
            elif image.size != size:
                raise VideoRejected(f"frame {name} is {image.size[0]}x{image.size[1]}, the first frame is "
                                    f"{size[0]}x{size[1]}: frames of one video must have one size")
            t = Fraction(count - 1) / self._rate
            if t > limits.max_duration_s:
                raise VideoRejected(f"over the duration cap: more than {limits.max_duration_s:g} s of frames at "
                                    f"{float(self._rate):g} fps")
            if not sampler.keep(t):
                continue
            sampled += 1
            if sampled > limits.max_sampled_frames:
                raise VideoRejected(f"over the sampled-frame cap: more than {limits.max_sampled_frames} "
                                    "sampled frames")
            yield SampledFrame(sampled - 1, float(t), image)
        if size is None:
            raise VideoRejected("zero frames: the folder holds no frame")
        fps = float(self._rate)
        duration = count / fps
        self.sha256 = digest.hexdigest()
        self.summary = DecodeSummary(container="frames", codec=codec, width=size[0], height=size[1], fps=fps,
                                     duration_s=round(duration, 4), source_frames=count, sampled_frames=sampled,
                                     byte_size=byte_size)


def _open_frame(name: str, data: bytes, limits: VideoLimits) -> tuple[Image.Image, str | None]:
    """The frame's header read (size checked against the caps before its pixels are decoded)."""
    if not data:
        raise VideoRejected(f"frame {name}: empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VideoRejected(f"frame {name}: not a readable image ({type(exc).__name__})") from None
    width, height = image.size
    if width > limits.max_width or height > limits.max_height:
        raise VideoRejected(f"frame {name}: over the resolution cap: {width}x{height} > "
                            f"{limits.max_width}x{limits.max_height}")
    return image, (image.format or "").lower() or None


def _decoded(name: str, image: Image.Image) -> Image.Image:
    try:
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise VideoRejected(f"frame {name}: corrupt or truncated image ({exc})"[:500]) from None
