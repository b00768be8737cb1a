"""The two endpoints Label Studio uses without a log-in are off until their secrets are set, and then
refuse requests without the secret or a valid signature (the bridge tests cover the working paths)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from dataengine.serve import create_app
from engine.db.models import Image
from engine.db.session import session_scope
from engine.domain.signing import image_signature
from tests.factories import seed_review_items

EVENT = {"action": "ANNOTATION_CREATED", "task": {"id": 1}, "annotation": {"id": 1}}


def test_off_without_secrets(app):
    with TestClient(app) as client:
        assert client.post("/api/v1/labelstudio/webhook", json=EVENT).status_code == 404
        assert client.get(f"/api/v1/images/1/signed?expires={int(time.time()) + 60}&signature={'0' * 64}"
                          ).status_code == 404


def test_webhook_checks_the_secret_and_the_event(web_settings):
    web_settings.labelstudio.url = "http://127.0.0.1:9"
    web_settings.labelstudio.webhook_secret = SecretStr("s" * 24)
    with TestClient(create_app(web_settings)) as client:
        url = "/api/v1/labelstudio/webhook"
        assert client.post(url, json=EVENT).status_code == 403
        assert client.post(url, json=EVENT, headers={"X-DataEngine-Webhook-Secret": "t" * 24}).status_code == 403
        good = {"X-DataEngine-Webhook-Secret": "s" * 24}
        assert client.post(url, json={"action": "ANNOTATION_CREATED"}, headers=good).status_code == 422
        assert client.post(url, json={"task": {"id": 1}}, headers=good).status_code == 422
        assert client.post(url, json={**EVENT, "task": {"id": "x"}}, headers=good).status_code == 422
        assert client.post(url, json=EVENT, headers=good).json()["status"] == "unknown"  # not a pushed task


def test_signed_image_link(web_settings):
    web_settings.labelstudio.signing_secret = SecretStr("k" * 32)
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=0, kinds=())
        image_id = s.scalars(select(Image.id)).one()
    expires = int(time.time()) + 60
    with TestClient(create_app(web_settings)) as client:
        ok = client.get(f"/api/v1/images/{image_id}/signed",
                        params={"expires": expires, "signature": image_signature(image_id, expires, "k" * 32)})
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
        past = expires - 120
        expired = client.get(f"/api/v1/images/{image_id}/signed",
                             params={"expires": past, "signature": image_signature(image_id, past, "k" * 32)})
        assert expired.status_code == 403
        assert client.get(f"/api/v1/images/{image_id}/signed", params={"expires": expires, "signature": "ab"}
                          ).status_code == 422
