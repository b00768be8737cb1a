"""Video files (mp4, webm, mov, mkv …) decoded with PyAV (FFmpeg), streamed frame by frame and
sampled by presentation time: never more than one decoded frame in memory, never past the caps.

Every way a file is refused raises :class:`VideoRejected` with its reason: not a video (or corrupt),
an empty file, no video stream, zero frames, an unsupported codec, a cap broken (duration declared
or decoded, source frames, width / height, sampled frames), a decode error mid-stream, or a stream
that ends well before the duration its container declares (a truncated download)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.video.sampling import DecodeSummary, FrameSampler, SampledFrame, VideoRejected, as_fraction
from engine.video_settings import VideoLimits

if TYPE_CHECKING:
    import av.container
    import av.video.stream

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv"})
# a decoded stream shorter than this share of the duration its container declares is truncated
MIN_DECLARED_SHARE = 0.9
_STILL_IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")


def container_name(extension: str | None, format_name: str) -> str:
    """mp4 / webm / mov / mkv from the file's extension, else FFmpeg's first name for the format."""
    ext = (extension or "").lower().lstrip(".")
    if f".{ext}" in VIDEO_EXTENSIONS:
        return ext
    first = format_name.split(",")[0]
    return {"matroska": "mkv"}.get(first, first)[:32]


class VideoFileDecoder:
    """One video file (a path, or its bytes): ``frames()`` yields the sampled frames, then
    ``summary`` says what was decoded. Raises VideoRejected."""

    def __init__(self, source: bytes | str | Path, limits: VideoLimits, sample_fps: float,
                 extension: str | None = None) -> None:
        self._source = source
        self._limits = limits
        self._sample_fps = sample_fps
        self._extension = extension or (None if isinstance(source, bytes) else Path(source).suffix)
        self.summary: DecodeSummary | None = None

    def _byte_size(self) -> int:
        return len(self._source) if isinstance(self._source, bytes) else Path(self._source).stat().st_size

    def frames(self) -> Iterator[SampledFrame]:
        import av

        if self._byte_size() == 0:
            raise VideoRejected("empty file (0 bytes)")
        container = _open(self._source)
        try:
            fmt = str(container.format.name)
            if any(still in fmt for still in _STILL_IMAGE_FORMATS):
                raise VideoRejected(f"not a video: a still image ({fmt})")
            if not container.streams.video:
                raise VideoRejected("no video stream (a container without video)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = self._check_header(container, stream)
            run = _DecodeRun(self._limits, FrameSampler(self._sample_fps))
            try:
                for frame in container.decode(stream):
                    sampled = run.add(frame)
                    if sampled is not None:
                        yield sampled
            except av.FFmpegError as exc:
                raise VideoRejected(f"truncated or corrupt: decode error after {run.count} frames "
                                    f"({_ffmpeg_reason(exc)})") from None
            run.check_end(declared)
            self.summary = run.summary(container_name(self._extension, fmt), stream.codec_context.name,
                                       _rate(stream), self._byte_size())
        finally:
            container.close()

    def _check_header(self, container: av.container.InputContainer,
                      stream: av.video.stream.VideoStream) -> float | None:
        """The caps the header can break (codec, size, declared duration) checked before any frame is
        decoded; returns the declared duration (seconds, None when unknown)."""
        limits = self._limits
        codec = stream.codec_context.name
        if codec not in limits.codecs:
            raise VideoRejected(f"unsupported codec {codec!r} (mined: {', '.join(limits.codecs)})")
        if stream.codec_context.width > 0 and stream.codec_context.height > 0:  # else known at the first frame
            _check_size(stream.codec_context.width, stream.codec_context.height, limits)
        declared = declared_duration(container, stream)
        if declared is not None and declared > limits.max_duration_s:
            raise VideoRejected(f"over the duration cap: {declared:.1f} s > {limits.max_duration_s:g} s")
        frames = stream.frames
        if frames and frames > limits.max_source_frames:
            raise VideoRejected(f"over the frame cap: {frames} frames > {limits.max_source_frames}")
        return declared


class _DecodeRun:
    """The state of one decoding pass: counts, times, the size every frame must have."""

    def __init__(self, limits: VideoLimits, sampler: FrameSampler) -> None:
        self.limits = limits
        self.sampler = sampler
        self.count = 0
        self.sampled = 0
        self.first: Fraction | None = None
        self.last = Fraction(0)
        self.size: tuple[int, int] | None = None

    def add(self, frame: Any) -> SampledFrame | None:
        limits = self.limits
        self.count += 1
        if self.count > limits.max_source_frames:
            raise VideoRejected(f"over the frame cap: more than {limits.max_source_frames} frames")
        size = (int(frame.width), int(frame.height))
        if self.size is None:
            _check_size(size[0], size[1], limits)
            self.size = size
        elif size != self.size:
            raise VideoRejected(f"frame size changes at frame {self.count - 1}: {size[0]}x{size[1]} after "
                                f"{self.size[0]}x{self.size[1]}")
        t = self._time(frame)
        if t > limits.max_duration_s:
            raise VideoRejected(f"over the duration cap: more than {limits.max_duration_s:g} s decoded")
        if not self.sampler.keep(t):
            return None
        self.sampled += 1
        if self.sampled > limits.max_sampled_frames:
            raise VideoRejected(f"over the sampled-frame cap: more than {limits.max_sampled_frames} sampled frames")
        return SampledFrame(self.sampled - 1, float(t), frame.to_image().convert("RGB"))

    def _time(self, frame: Any) -> Fraction:
        """Seconds from the first frame (frames without a timestamp follow the last one)."""
        if frame.pts is None or frame.time_base is None:
            absolute = self.last + (self.first or 0) + self.sampler.interval / 1000
        else:
            absolute = Fraction(frame.pts) * Fraction(frame.time_base)
        if self.first is None:
            self.first = absolute
        t = max(absolute - self.first, self.last)
        self.last = t
        return t

    def check_end(self, declared: float | None) -> None:
        if self.count == 0:
            raise VideoRejected("zero frames: the video stream holds no decodable frame")
        if declared is not None and declared > 0 and self.count > 1:
            step = float(self.last) / (self.count - 1)
            decoded = float(self.last) + step
            if decoded < MIN_DECLARED_SHARE * declared - step:
                raise VideoRejected(f"truncated: decoding ended at {decoded:.2f} s after {self.count} frames, "
                                    f"the container declares {declared:.2f} s")

    def summary(self, container: str, codec: str, rate: float | None, byte_size: int) -> DecodeSummary:
        assert self.size is not None
        span = float(self.last)
        fps = rate or ((self.count - 1) / span if span > 0 else 1.0)
        return DecodeSummary(container=container, codec=codec, width=self.size[0], height=self.size[1],
                             fps=fps, duration_s=round(span + 1 / fps, 4), source_frames=self.count,
                             sampled_frames=self.sampled, byte_size=byte_size)


def _open(source: bytes | str | Path) -> av.container.InputContainer:
    import av

    try:
        handle: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        return cast("av.container.InputContainer", av.open(handle, mode="r"))
    except av.error.EOFError:
        raise VideoRejected("zero frames: the file ends before its first frame") from None
    except av.FFmpegError as exc:
        raise VideoRejected(f"corrupt or not a video ({_ffmpeg_reason(exc)})") from None


def _check_size(width: int, height: int, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        raise VideoRejected("no frame size in the video stream")
    if width > limits.max_width or height > limits.max_height:
        raise VideoRejected(f"over the resolution cap: {width}x{height} > {limits.max_width}x{limits.max_height}")


def declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's duration from the header, else the container's; None when neither says."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / 1_000_000
    return None


def _rate(stream: av.video.stream.VideoStream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(as_fraction(float(rate))) if rate else None


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's message without the file name it appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text)[:300]
