"""Content hashes and perceptual hashes, and the band scheme for near-duplicate search."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from itertools import combinations

import numpy as np
import numpy.typing as npt
from PIL import Image

PHASH_BANDS = 4
BAND_BITS = 16
_BAND_MASK = (1 << BAND_BITS) - 1
MAX_SEARCH_DISTANCE = 11  # 4 bands x radius 2 + 3


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> npt.NDArray[np.float64]:
    """Orthonormal DCT-II matrix: coefficients = D @ x @ D.T."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    mat: npt.NDArray[np.float64] = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    mat[0, :] = np.sqrt(1.0 / n)
    return mat


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash as an unsigned int.

    The image is reduced to 32x32 grey, the top-left 8x8 DCT coefficients are compared with
    their median; bit 63 is the first coefficient. Robust to re-encoding and resizing.
    """
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=2.0)
    pixels = np.asarray(grey, dtype=np.float64)
    dct = _dct_matrix()
    low = (dct @ pixels @ dct.T)[:8, :8].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def to_signed64(value: int) -> int:
    """Unsigned 64-bit hash → signed BIGINT for the database."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def hamming(a: int, b: int) -> int:
    return (to_unsigned64(a) ^ to_unsigned64(b)).bit_count()


def bands(value: int) -> tuple[int, ...]:
    """The hash cut into four 16-bit bands, most significant first."""
    value = to_unsigned64(value)
    return tuple(
        (value >> (BAND_BITS * (PHASH_BANDS - 1 - i))) & _BAND_MASK for i in range(PHASH_BANDS)
    )


def band_radius(distance: int) -> int:
    """Pigeonhole: two hashes within ``distance`` agree on some band within this radius."""
    if not 0 <= distance <= MAX_SEARCH_DISTANCE:
        raise ValueError(f"near-duplicate distance must be 0..{MAX_SEARCH_DISTANCE}, got {distance}")
    return distance // PHASH_BANDS


def band_neighbours(band: int, radius: int) -> list[int]:
    """Every 16-bit value within Hamming ``radius`` of ``band`` (itself included)."""
    out = [band]
    for r in range(1, radius + 1):
        for positions in combinations(range(BAND_BITS), r):
            flipped = band
            for pos in positions:
                flipped ^= 1 << pos
            out.append(flipped)
    return out
