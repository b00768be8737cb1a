"""GET /api/v1/dashboard/quality: roles, input checks and the figures of engine/services/quality.py."""

from __future__ import annotations

import pytest

from engine.db.session import session_scope
from tests.factories import seed_labelled


@pytest.fixture
def labelled(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_labelled(s, web_settings.media_path)


def test_quality_api_roles_and_figures(login, labelled):
    for user in ("ann", "rev"):
        assert login(user).get("/api/v1/dashboard/quality").status_code == 403
    client = login("mle")
    for bad in (0, 169, "x"):
        assert client.get("/api/v1/dashboard/quality", params={"hours": bad}).status_code == 422
    data = client.get("/api/v1/dashboard/quality", params={"hours": 3}).json()
    assert set(data) == {"generated_at", "proposers", "verifiers", "acceptance", "stages", "human_per_hour"}
    (proposer,) = data["proposers"]
    assert proposer["model"] == "test-proposer:1" and proposer["pairs"] == 3
    # TP 2, FP 2, FN 1 at every τ: 4/7 with the official evaluator's smoothing (engine/domain/metrics.py)
    p, r = 2 / 4.0001, 2 / 3.0001
    assert proposer["pm_f1"] == pytest.approx(2 * p * r / (p + r + 1e-4), abs=1e-12) and proposer["cg_f1"] == 0.0
    assert {a["model"] for a in data["acceptance"]} >= {"test-proposer:1", "test-mv:1", "test-ev:1"}
    assert len(data["human_per_hour"]) == 3
    assert login("root").get("/api/v1/dashboard/quality").status_code == 200


def test_quality_api_needs_a_session(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        assert anonymous.get("/api/v1/dashboard/quality").status_code == 401
