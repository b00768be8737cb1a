"""Signed, expiring image URLs: an HMAC-SHA256 over the image id and the expiry, so a tool that
cannot sign in (Label Studio's annotators' browsers) can load exactly one image until a given time."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def image_signature(image_id: int, expires: int, secret: str) -> str:
    message = f"image:{image_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_image_url(base_url: str, image_id: int, secret: str, expires: int) -> str:
    """``<base>/api/v1/images/<id>/signed?expires=<unix s>&signature=<hex>``."""
    query = urlencode({"expires": expires, "signature": image_signature(image_id, expires, secret)})
    return f"{base_url.rstrip('/')}/api/v1/images/{image_id}/signed?{query}"


def signature_valid(image_id: int, expires: int, signature: str, secret: str, now: float) -> bool:
    """True when ``signature`` is the image's for ``expires`` and ``expires`` has not passed."""
    if expires < now:
        return False
    return hmac.compare_digest(image_signature(image_id, expires, secret), signature)
