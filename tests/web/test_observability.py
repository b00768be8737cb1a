"""Operators' signals on the served app: request ids in JSON log lines, GET /metrics (who may read it, the
metric families with their values after real verdicts, route templates as labels), the model states."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dataengine.serve import create_app
from engine import model_states
from engine.db.session import session_scope
from engine.settings import Settings
from tests.factories import seed_review_items
from tests.log_capture import json_lines, json_logs  # noqa: F401 (a fixture)

TOKEN = "scrape-" + "x" * 24


def scrape(client: TestClient, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of a scrape (labels matched as a subset)."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match[3])
    raise AssertionError(f"no sample {name}{labels} in the scrape")


def test_a_request_logs_one_json_line_with_its_request_id_and_route(login, json_logs):
    client = login("ann")
    response = client.get("/api/v1/auth/me", headers={"X-Request-ID": "lb-7f3a.42:x"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "lb-7f3a.42:x"
    access = [rec for rec in json_lines(json_logs) if rec["logger"] == "dataengine.access"
              and rec.get("request_id") == "lb-7f3a.42:x"]
    assert len(access) == 1
    rec = access[0]
    assert rec["level"] == "INFO" and rec["route"] == "/api/v1/auth/me" and rec["status"] == 200
    assert rec["method"] == "GET" and rec["duration_ms"] >= 0 and rec["ts"].endswith("Z")
    assert "authorization" not in json_logs.getvalue().lower() and "cookie" not in json_logs.getvalue().lower()


@pytest.mark.parametrize("sent", [b"has space", b"x" * 65, b"<script>", b"", "é".encode("latin-1"), b"a\tb"])
def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(app, sent, json_logs):
    response = TestClient(app).get("/api/v1/auth/me", headers={"X-Request-ID": sent})  # 401, logged
    fresh = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    logged = {rec.get("request_id") for rec in json_lines(json_logs) if rec["logger"] == "dataengine.access"}
    assert logged == {fresh}


def test_without_a_request_id_each_request_gets_its_own(app):
    client = TestClient(app)
    first, second = (client.get("/api/v1/health").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_metrics_may_be_read_by_an_admin_or_with_the_metrics_token(web_settings, login):
    web_settings.observability.metrics_token = SecretStr(TOKEN)
    app = create_app(web_settings)
    anonymous = TestClient(app)
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert "dataengine_database_up 1.0" in scrape(anonymous, Authorization=f"Bearer {TOKEN}")
    # people sign in against the fixture's app: same database, same rules
    assert login("ann").get("/metrics").status_code == 403
    assert login("mle").get("/metrics").status_code == 403
    assert login("root").get("/metrics").status_code == 200


def test_metrics_can_be_switched_off(web_settings, login):
    web_settings.observability.metrics_enabled = False
    client = TestClient(create_app(web_settings))
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_metrics_after_real_verdicts(web_settings, login):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=2, phrases=("dog", "cat"),
                          kinds=("verify_mask",))
    web_settings.observability.metrics_token = SecretStr(TOKEN)
    ann, ann2 = login("ann"), login("ann2")
    app = ann._transport.app  # type: ignore[attr-defined]
    judged = 0
    for client in (ann, ann2):
        task = client.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]}).json()
        assert "id" in task, task
        response = client.post(f"/api/v1/tasks/{task['id']}/verdict",
                               json={"client_id": uuid.uuid4().hex, "label": "accept", "active_ms": 900})
        assert response.status_code in (200, 201), response.text
        judged += 1
    held = ann.post("/api/v1/tasks/next", json={"kinds": ["verify_mask"]}).json()
    assert "id" in held
    ann.get("/api/v1/exemplars/987654")  # a templated route, answered 404

    text = scrape(TestClient(app), Authorization=f"Bearer {TOKEN}")
    assert value(text, "dataengine_database_up") == 1
    assert value(text, "dataengine_verdicts_last_minute", source="human") == judged
    assert value(text, "dataengine_human_tasks", kind="verify_mask", state="leased") == 1
    assert value(text, "dataengine_human_tasks", kind="correct", state="open") == 0
    assert value(text, "dataengine_lease_holders") == 1
    assert value(text, "dataengine_leases_overdue") == 0
    for status in ("listing", "running", "done"):
        value(text, "dataengine_jobs", status=status)
    assert "# TYPE dataengine_job_stage_items gauge" in text
    # the latency histogram: the route template, never the raw path (bounded label values)
    assert value(text, "dataengine_http_request_duration_seconds_count", method="POST",
                 route="/api/v1/tasks/{task_id}/verdict", status="2xx") == judged
    assert value(text, "dataengine_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/exemplars/{request_id}", status="4xx") == 1
    assert "987654" not in text and f"/api/v1/tasks/{held['id']}" not in text
    assert "process_resident_memory_bytes" in text


def test_an_unmatched_path_is_one_label_value(app, web_settings):
    web_settings.observability.metrics_token = SecretStr(TOKEN)
    client = TestClient(app)
    for n in range(3):
        assert client.get(f"/no/such/{n}").status_code == 404
    text = scrape(client, Authorization=f"Bearer {TOKEN}")
    assert value(text, "dataengine_http_request_duration_seconds_count", route="unmatched", status="4xx") == 3
    assert "/no/such" not in text


def test_model_states_are_readable_by_anyone_signed_in(login):
    model_states.forget()
    with model_states.loading("segmenter"):
        during = login("ann").get("/api/v1/models/state").json()
    assert during == {"models": {"segmenter": {"state": "loading", "seconds": None}}}
    after = login("ann").get("/api/v1/models/state").json()["models"]["segmenter"]
    assert after["state"] == "ready" and after["seconds"] >= 0
    assert TestClient(login("ann")._transport.app).get("/api/v1/models/state").status_code == 401  # type: ignore[attr-defined]
    model_states.forget()


def test_served_app_warms_up_the_segmenter_before_the_first_click(web_settings: Settings):
    """`dataengine serve`'s app with warm_up [segmenter]: the model is loaded when the server starts,
    in the background, before any request asks for it (the tiny random-weight segmenter)."""
    model_states.forget()
    web_settings.observability.warm_up = ["segmenter"]
    app = create_app(web_settings)
    assert "segmenter" not in app.state.models._models  # nothing loads before the server starts
    with TestClient(app):
        import threading

        for thread in [t for t in threading.enumerate() if t.name == "dataengine-warm-up"]:
            thread.join(timeout=120)
        assert "segmenter" in app.state.models._models
        assert model_states.snapshot()["segmenter"].state == "ready"
    model_states.forget()


def test_warm_up_none_loads_nothing(web_settings: Settings):
    model_states.forget()
    web_settings.observability.warm_up = "none"
    app = create_app(web_settings)
    with TestClient(app):
        pass
    assert app.state.models._models == {} and model_states.snapshot() == {}
