import random

import pytest

from engine.domain.hashing import (
    MAX_SEARCH_DISTANCE,
    band_neighbours,
    band_radius,
    bands,
    hamming,
    phash,
    sha256_hex,
    to_signed64,
    to_unsigned64,
)
from tests.factories import photo


def test_sha256_of_known_bytes():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_phash_is_stable_under_resize_and_close_under_recompression():
    image = photo(7, (640, 480))
    base = phash(image)
    assert phash(image.copy()) == base
    assert hamming(base, phash(image.resize((320, 240)))) <= 4
    grey = image.convert("L")
    assert hamming(base, phash(grey)) <= 2  # the hash is computed on luminance


def test_phash_separates_different_images():
    hashes = [phash(photo(seed)) for seed in range(12)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(distances) > 11  # farther than any near-duplicate threshold we allow


@pytest.mark.parametrize("value", [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_signed_round_trip(value):
    signed = to_signed64(value)
    assert -(1 << 63) <= signed < (1 << 63)
    assert to_unsigned64(signed) == value


def test_bands_cover_the_hash():
    value = 0x0123_4567_89AB_CDEF
    assert bands(value) == (0x0123, 0x4567, 0x89AB, 0xCDEF)
    assert bands(to_signed64(0xFFFF_0000_0000_0001)) == (0xFFFF, 0, 0, 1)


def test_band_neighbour_counts():
    assert band_neighbours(5, 0) == [5]
    assert len(set(band_neighbours(5, 1))) == 17
    assert len(set(band_neighbours(5, 2))) == 1 + 16 + 120
    assert all(hamming(5, n) <= 2 for n in band_neighbours(5, 2))


def test_band_radius_limits():
    assert band_radius(3) == 0 and band_radius(4) == 1 and band_radius(11) == 2
    with pytest.raises(ValueError):
        band_radius(MAX_SEARCH_DISTANCE + 1)


@pytest.mark.parametrize("distance", [0, 3, 4, 6, 8, 11])
def test_band_search_finds_every_hash_within_distance(distance):
    """Pigeonhole: any hash within ``distance`` shares some band within the search radius."""
    rng = random.Random(distance)
    radius = band_radius(distance)
    for _ in range(300):
        a = rng.getrandbits(64)
        flips = rng.sample(range(64), distance)
        b = a
        for bit in flips:
            b ^= 1 << bit
        assert hamming(a, b) == distance
        assert any(bb in set(band_neighbours(ba, radius)) for ba, bb in zip(bands(a), bands(b), strict=True))
