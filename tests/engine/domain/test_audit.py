import pytest

from engine.domain.audit import audit_draw, in_audit_sample, mask_key, pair_key

N_KEYS = 100_000


def test_reproducible_from_the_seed():
    keys = [mask_key(i) for i in range(2000)]
    first = [in_audit_sample(k, 0.1, seed=7) for k in keys]
    again = [in_audit_sample(k, 0.1, seed=7) for k in keys]
    assert first == again
    assert audit_draw("mask:1", 7) == audit_draw("mask:1", 7)


def test_different_seeds_draw_different_samples():
    keys = [mask_key(i) for i in range(2000)]
    a = {k for k in keys if in_audit_sample(k, 0.1, seed=1)}
    b = {k for k in keys if in_audit_sample(k, 0.1, seed=2)}
    assert a and b and a != b
    # independent draws: the overlap is about rate² of the keys, far from all of them
    assert len(a & b) < 0.5 * min(len(a), len(b))


def test_mask_and_pair_keys_are_drawn_independently():
    assert mask_key(5) == "mask:5" and pair_key(5) == "pair:5"
    assert audit_draw(mask_key(5), 0) != audit_draw(pair_key(5), 0)


def test_draw_is_the_sha256_of_seed_and_key():
    import hashlib

    digest = hashlib.sha256(b"3:pair:42").digest()
    assert audit_draw("pair:42", 3) == (int.from_bytes(digest[:8], "big") >> 11) / 2**53


@pytest.mark.parametrize("rate", [0.02, 0.3])
def test_realised_share_is_within_one_percent_of_the_rate(rate):
    share = sum(in_audit_sample(f"item-{i}", rate, seed=11) for i in range(N_KEYS)) / N_KEYS
    assert abs(share - rate) <= 0.01
    assert abs(share - rate) <= 5 * (rate * (1 - rate) / N_KEYS) ** 0.5  # and within 5 standard errors


def test_draws_are_uniform_across_ten_buckets():
    counts = [0] * 10
    for i in range(N_KEYS):
        draw = audit_draw(f"item-{i}", 2024)
        assert 0.0 <= draw < 1.0
        counts[int(draw * 10)] += 1
    expected = N_KEYS / 10
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.88  # chi-square, 9 degrees of freedom, p = 0.001


def test_edge_rates():
    assert not any(in_audit_sample(f"k{i}", 0.0, 1) for i in range(500))
    assert all(in_audit_sample(f"k{i}", 1.0, 1) for i in range(500))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            in_audit_sample("k", bad, 1)


def test_the_sample_grows_monotonically_with_the_rate():
    keys = [f"k{i}" for i in range(3000)]
    small = {k for k in keys if in_audit_sample(k, 0.05, 9)}
    large = {k for k in keys if in_audit_sample(k, 0.2, 9)}
    assert small <= large
