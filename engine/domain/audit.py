"""The audit sample: a deterministic, uniform share of auto-decided items that still go to a human.

Membership is a pure function of (seed, item key): ``sha256(f"{seed}:{key}")`` read as a number
uniform in [0, 1), compared with the rate. Re-running the router never changes who is audited,
any worker decides the same without coordination, and a new seed draws a fresh, independent sample.
Keys should be stable and name the kind of item (``mask_key(12)`` → ``"mask:12"``), so a mask and a
pair with the same id are drawn independently.
"""

from __future__ import annotations

import hashlib
import math

_DENOMINATOR = float(1 << 53)  # 53 bits: every value is an exact double in [0, 1)


def audit_draw(item_key: str, seed: int) -> float:
    """The item's uniform draw in [0, 1) for this seed."""
    digest = hashlib.sha256(f"{seed}:{item_key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _DENOMINATOR


def in_audit_sample(item_key: str, rate: float, seed: int) -> bool:
    """True for a share ``rate`` of keys, the same keys every time for the same seed."""
    r = float(rate)
    if not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise ValueError(f"audit rate must lie in [0, 1], got {rate!r}")
    if r == 0.0:
        return False
    return audit_draw(item_key, seed) < r


def mask_key(mask_id: int) -> str:
    return f"mask:{mask_id}"


def pair_key(pair_id: int) -> str:
    return f"pair:{pair_id}"
