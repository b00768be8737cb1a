import io

import pytest
from PIL import Image

from engine.domain.hashing import hamming, sha256_hex
from engine.domain.images import ImageRejected, prepare_image
from tests.factories import bomb_png, jpeg_bytes, photo, png_bytes, rotated_jpeg

LIMIT = 64_000_000


def prepare(data, **kw):
    return prepare_image(data, max_pixels=kw.pop("max_pixels", LIMIT), **kw)


def test_good_jpeg_is_kept_byte_for_byte():
    data = jpeg_bytes(photo(1, (1024, 768)))
    out = prepare(data)
    assert out.data == data
    assert out.sha256 == sha256_hex(data)
    assert (out.width, out.height, out.format, out.extension) == (1024, 768, "JPEG", "jpg")
    assert not out.reoriented
    assert set(out.timings) >= {"decode", "hash", "phash"}


def test_png_is_kept_and_hash_matches_jpeg_version():
    image = photo(2)
    png = prepare(png_bytes(image))
    jpg = prepare(jpeg_bytes(image, quality=70))
    assert png.format == "PNG" and png.extension == "png"
    assert hamming(png.phash, jpg.phash) <= 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"just some text renamed to .jpg\n" * 10, "not an image: unrecognised file format"),
        (jpeg_bytes(photo(3))[:-2000], "corrupt or truncated image"),
        (png_bytes(photo(4))[:-500], "corrupt or truncated image"),
    ],
    ids=["zero-bytes", "text", "truncated-jpeg", "truncated-png"],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected) as info:
        prepare(data)
    assert str(info.value).startswith(reason)


def test_decompression_bomb_over_our_cap():
    with pytest.raises(ImageRejected, match=r"decompression bomb: 10000x10000 = 100,000,000 pixels"):
        prepare(bomb_png(10_000, 10_000), max_pixels=50_000_000)


def test_decompression_bomb_over_pillows_own_cap():
    with pytest.raises(ImageRejected, match="decompression bomb"):
        prepare(bomb_png(20_000, 20_000), max_pixels=10**12)


def test_too_small_image_is_rejected():
    with pytest.raises(ImageRejected, match="image too small: 4x4"):
        prepare(png_bytes(Image.new("RGB", (4, 4))), min_side=8)


def test_exif_orientation_is_applied():
    image = photo(5, (400, 200))
    out = prepare(rotated_jpeg(image, orientation=6))  # 6: rotate 90° clockwise to display
    assert out.reoriented
    assert (out.width, out.height) == (200, 400)
    stored = Image.open(io.BytesIO(out.data))
    assert stored.size == (200, 400)
    assert stored.getexif().get(0x0112, 1) == 1
    upright = image.transpose(Image.Transpose.ROTATE_270)
    assert hamming(out.phash, prepare(jpeg_bytes(upright)).phash) <= 4


def test_bmp_is_converted_to_png():
    buf = io.BytesIO()
    photo(6).save(buf, "BMP")
    out = prepare(buf.getvalue())
    assert out.format == "PNG" and out.extension == "png"
    assert Image.open(io.BytesIO(out.data)).format == "PNG"


def test_unsupported_format_is_rejected():
    buf = io.BytesIO()
    photo(7).save(buf, "PDF")
    with pytest.raises(ImageRejected, match="not an image|unsupported image format"):
        prepare(buf.getvalue())
