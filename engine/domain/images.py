"""Decode, validate and normalise one image from its bytes (pure: bytes in, record out).

What is kept: JPEG, PNG, WebP and GIF bytes as they came, unless the EXIF orientation says the
pixels are not upright, in which case the image is rotated and re-encoded so that masks and
pixels agree everywhere. BMP and TIFF are converted to PNG. JPEGs are validated with a
reduced-size (draft) decode, which still reads the whole entropy-coded stream and so still
detects truncation, at about half the cost of a full decode.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.domain.hashing import phash, sha256_hex

KEEP_AS_IS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
              "WEBP": ("webp", "image/webp"), "GIF": ("gif", "image/gif")}
CONVERT_TO_PNG = {"BMP", "TIFF", "MPO", "PPM", "TGA", "ICO"}
EXIF_ORIENTATION = 0x0112
DRAFT_SIZE = (64, 64)


class ImageRejected(ValueError):
    """The bytes are not an image we keep; the message is the reason shown to operators."""


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    sha256: str
    phash: int
    width: int
    height: int
    format: str
    extension: str
    reoriented: bool
    timings: dict[str, float] = field(default_factory=dict, compare=False)


def prepare_image(data: bytes, *, max_pixels: int, min_side: int = 1) -> PreparedImage:
    """Validate ``data`` and return what is to be stored, or raise :class:`ImageRejected`."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    image = _open(data, max_pixels)
    fmt = image.format or ""
    if fmt not in KEEP_AS_IS and fmt not in CONVERT_TO_PNG:
        raise ImageRejected(f"unsupported image format {fmt or 'unknown'}")
    width, height = image.size
    if min(width, height) < min_side:
        raise ImageRejected(f"image too small: {width}x{height} (minimum side {min_side} px)")
    orientation = _orientation(image)
    needs_pixels = orientation != 1 or fmt in CONVERT_TO_PNG
    if fmt == "JPEG" and not needs_pixels:
        image.draft("L", DRAFT_SIZE)
    _load(image)
    timings["decode"] = time.perf_counter() - t0

    out_format = fmt if fmt in KEEP_AS_IS and not (needs_pixels and fmt == "GIF") else "PNG"
    extension = KEEP_AS_IS[out_format][0]
    stored = data
    if needs_pixels:
        t = time.perf_counter()
        image = ImageOps.exif_transpose(image) if orientation != 1 else image
        stored = _encode(image, out_format)
        width, height = image.size
        timings["normalise"] = time.perf_counter() - t

    t = time.perf_counter()
    digest = sha256_hex(stored)
    timings["hash"] = time.perf_counter() - t
    t = time.perf_counter()
    perceptual = phash(_first_frame(image))
    timings["phash"] = time.perf_counter() - t
    return PreparedImage(
        data=stored, sha256=digest, phash=perceptual, width=width, height=height,
        format=out_format, extension=extension, reoriented=orientation != 1, timings=timings,
    )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow's own warning threshold is ignored: our max_pixels check below decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected("not an image: unrecognised file format") from None
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"decompression bomb: {exc}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(f"corrupt image header: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(
            f"decompression bomb: {width}x{height} = {width * height:,} pixels "
            f"exceeds the limit of {max_pixels:,}"
        )
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _load(image: Image.Image) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            raise ImageRejected(f"corrupt or truncated image: {reason}") from None


def _first_frame(image: Image.Image) -> Image.Image:
    if getattr(image, "is_animated", False):
        image.seek(0)
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    params: dict[str, object] = {}
    icc = image.info.get("icc_profile")
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        params["quality"] = 95
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
