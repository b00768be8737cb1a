"""The error contract (issue #15): every 4xx/5xx is JSON {detail: str, code: snake_case} (+ errors on
422), the code also in X-Error-Code; bad input gets 4xx, never 500. One test per case seen."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dataengine.serve import create_app
from engine.db.session import session_scope
from tests.factories import seed_review_items

CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert CODE.match(body["code"]) and response.headers["x-error-code"] == body["code"]
    if code is not None:
        assert body["code"] == code, body
    if status == 422:
        assert body["errors"] and all(set(e) == {"loc", "msg"} for e in body["errors"]), body
    else:
        assert "errors" not in body
    return body


@pytest.fixture
def seeded(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",),
                                 kinds=("verify_mask", "correct"))


def lease(client, kind):
    response = client.post("/api/v1/tasks/next", json={"kinds": [kind]})
    assert response.status_code == 200 and "id" in response.json(), response.text
    return response.json()


def verdict(client, task_id, **extra):
    return client.post(f"/api/v1/tasks/{task_id}/verdict",
                       json={"client_id": uuid.uuid4().hex, "label": "accept", "active_ms": 1000, **extra})


# ---------------------------------------------------------------------------------------- shapes
def test_401_403_404_405_shapes(app, login):
    anonymous = TestClient(app)
    assert_error(anonymous.get("/api/v1/auth/me"), 401, "unauthorized")
    ann = login("ann")
    assert_error(ann.get("/api/v1/users"), 403, "forbidden")
    no_csrf = TestClient(app, cookies=ann.cookies)
    assert_error(no_csrf.post("/api/v1/tasks/next"), 403, "forbidden")
    assert_error(ann.get("/api/v1/no-such-endpoint"), 404, "not_found")
    assert_error(ann.get("/api/v1/images/99999"), 404, "not_found")
    assert_error(ann.delete("/api/v1/auth/me"), 405, "method_not_allowed")
    assert_error(login("root").patch("/api/v1/users/~nosuchuser", json={"disabled": True}), 404, "not_found")
    assert anonymous.get("/~nosuchuser").status_code == 404


def test_409_keeps_the_routers_codes(login, seeded):
    ann = login("ann")
    assert_error(ann.post(f"/api/v1/tasks/{seeded['tasks'][0]}/heartbeat"), 409, "lease_lost")
    task = lease(ann, "verify_mask")
    client_id = uuid.uuid4().hex
    assert verdict(ann, task["id"], client_id=client_id).status_code == 201
    other = lease(ann, "correct")
    reused = ann.post(f"/api/v1/tasks/{other['id']}/verdict",
                      json={"client_id": client_id, "label": "done", "active_ms": 1})
    assert_error(reused, 409, "client_id_conflict")


def test_422_lists_where_and_why_without_echoing_values(login):
    secret = "hunter2-" + "x" * 2000
    response = login("root").post("/api/v1/users", json={"username": "a", "password": secret, "role": "nope"})
    body = assert_error(response, 422, "invalid")
    assert body["detail"].startswith("invalid request: ")
    assert ["body", "role"] in [e["loc"] for e in body["errors"]]
    assert "hunter2" not in response.text and "nope" not in response.text.replace("invalid", "")


def test_router_422_has_the_shape(login, seeded):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    body = assert_error(verdict(ann, task["id"], label="no-such-label"), 422, "invalid")
    assert body["errors"][0]["msg"] == body["detail"]


def test_500_is_internal_error_and_logged(app, login, caplog):
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM users -- internal text")

    app.add_api_route("/api/v1/boom", boom, methods=["GET"])
    with caplog.at_level("ERROR", logger="web.app"):
        response = TestClient(app, raise_server_exceptions=False).get("/api/v1/boom")
    assert_error(response, 500, "internal_error")
    assert response.json()["detail"] == "internal error" and "SELECT" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "SELECT secret" in caplog.text


# ---------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("value", [2**31, 2**63, 2**64, 0, -1])
def test_out_of_range_ids_are_422(login, value):
    ann = login("ann")
    assert_error(ann.get(f"/api/v1/tasks/{value}"), 422, "invalid")
    assert_error(ann.get(f"/api/v1/images/{value}"), 422, "invalid")
    assert_error(login("root").delete(f"/api/v1/gold/{value}"), 422, "invalid")
    assert_error(login("mle").get(f"/api/v1/jobs/{value}"), 422, "invalid")
    assert_error(login("mle").get(f"/api/v1/exports/{value}"), 422, "invalid")
    assert_error(ann.delete(f"/api/v1/auth/tokens/{value}"), 422, "invalid")


def test_largest_id_is_a_plain_404_or_409(login):
    ann = login("ann")
    assert_error(ann.get(f"/api/v1/images/{2**31 - 1}"), 404, "not_found")
    assert_error(ann.get(f"/api/v1/tasks/{2**31 - 1}"), 409, "lease_lost")


@pytest.mark.parametrize("field", [{"active_ms": 2**31}, {"active_ms": 2**63}, {"masks": [{"mask_id": 2**63}]}])
def test_out_of_range_body_integers_are_422(login, seeded, field):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    assert_error(verdict(ann, task["id"], **field), 422, "invalid")


def test_out_of_range_query_integers_are_422(login):
    mle = login("mle")
    assert_error(mle.get(f"/api/v1/jobs?offset={2**63}"), 422, "invalid")
    assert_error(mle.get(f"/api/v1/exports?offset={2**31}"), 422, "invalid")


def test_nul_in_a_comment_is_422_and_the_task_stays_usable(login, seeded):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    body = assert_error(verdict(ann, task["id"], comment="fine\x00 really"), 422, "invalid")
    assert ["body", "comment"] in [e["loc"] for e in body["errors"]]
    assert verdict(ann, task["id"], comment="fine").status_code == 201


def test_nan_and_infinity_are_422(login, seeded):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    for literal in ("NaN", "Infinity", "-Infinity"):
        response = ann.post(f"/api/v1/tasks/{task['id']}/segment", content=f'{{"points": [[{literal}, 1, 1]]}}',
                            headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid")
    mle = login("mle")
    response = mle.post("/api/v1/exports", content='{"format": "coco", "filters": {"min_agreement": NaN}}',
                        headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid")


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "1999-12-31T23:59:59+00:00"])
def test_dates_out_of_range_are_422(login, seeded, date):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    assert_error(verdict(ann, task["id"], started_at=date), 422, "invalid")
    response = login("mle").post("/api/v1/exports", json={"format": "coco", "filters": {"since": date}})
    assert_error(response, 422, "invalid")


def test_a_sane_date_is_accepted(login, seeded):
    ann = login("ann")
    task = lease(ann, "verify_mask")
    assert verdict(ann, task["id"], started_at="2026-01-02T03:04:05Z").status_code == 201


def test_a_mask_of_the_wrong_size_is_4xx(login, seeded):
    ann = login("ann")
    task = lease(ann, "correct")
    rle = {"size": [7, 5], "counts": [35]}
    response = verdict(ann, task["id"], label="done", masks=[{"rle": rle, "tool": "brush"}])
    assert_error(response, 422, "invalid")


def test_non_ascii_signature_is_422_not_500(web_settings):
    web_settings.labelstudio.signing_secret = SecretStr("k" * 32)
    client = TestClient(create_app(web_settings), raise_server_exceptions=False)
    expires = int(time.time()) + 60
    response = client.get(f"/api/v1/images/1/signed?expires={expires}&signature={'é' * 64}")
    assert_error(response, 422, "invalid")
    response = client.get(f"/api/v1/images/1/signed?expires={expires}&signature={'0' * 64}")
    assert_error(response, 403, "forbidden")


def test_non_ascii_webhook_secret_header_is_403(web_settings):
    web_settings.labelstudio.url = "http://labelstudio.invalid"
    web_settings.labelstudio.webhook_secret = SecretStr("s" * 32)
    client = TestClient(create_app(web_settings), raise_server_exceptions=False)
    response = client.post("/api/v1/labelstudio/webhook", json={"action": "ANNOTATION_CREATED"},
                           headers=[("X-DataEngine-Webhook-Secret", "é".encode("latin-1"))])
    assert_error(response, 403, "forbidden")


def test_too_large_bodies_are_413(app, login, web_settings):
    ann = login("ann")
    limit = web_settings.serve.max_body_bytes
    big = b'{"kinds": ["' + b"x" * (limit + 10) + b'"]}'
    assert_error(ann.post("/api/v1/tasks/next", content=big, headers={"content-type": "application/json"}),
                 413, "too_large")

    def chunks():  # no Content-Length: the size is seen only while streaming
        yield big[: len(big) // 2]
        yield big[len(big) // 2:]

    response = ann.post("/api/v1/tasks/next", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "too_large")


def test_a_source_under_an_unknown_home_directory_is_422(login):
    mle = login("mle")
    for source in ("~nosuchuser/images", "~nosuchuser"):
        body = assert_error(mle.post("/api/v1/jobs", json={"source": source}), 422, "invalid")
        assert "home directory" in body["detail"]


def test_a_failed_runs_reason_carries_no_sql(web_settings):
    import sqlalchemy

    from pipelines.jobs import failure_reason

    engine = sqlalchemy.create_engine(web_settings.db_url)
    with pytest.raises(sqlalchemy.exc.SQLAlchemyError) as caught, engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT password_hash FROM no_such_table WHERE name = 'x'"))
    engine.dispose()
    reason = failure_reason(caught.value)
    assert "SELECT" not in reason and "password_hash" not in reason and "server log" in reason
    assert failure_reason(ValueError("folder not found: /x\nmore")) == "ValueError: folder not found: /x"


def test_refused_values_are_not_echoed(login):
    mle = login("mle")
    value = "SECRET-" + "x" * 5000
    assert_error(mle.post("/api/v1/jobs", json={"source": "bad", "until": value}), 422, "invalid")
    assert_error(mle.get("/api/v1/jobs/1/failures", params={"stage": value}), 404)
    for response in (mle.post("/api/v1/jobs", json={"source": "bad", "until": value}),
                     mle.get(f"/api/v1/images/{value}"), mle.get("/api/v1/jobs", params={"offset": value})):
        assert "SECRET" not in response.text, response.text[:300]


def test_nul_in_names_is_422(app, login):
    root = login("root")
    assert_error(root.patch("/api/v1/users/a%00b", json={"is_active": False}), 422, "invalid")
    assert_error(root.post("/api/v1/auth/tokens", json={"name": "a\x00b"}), 422, "invalid")
    response = TestClient(app).post("/api/v1/auth/login", json={"username": "a\x00b", "password": "x" * 12})
    assert_error(response, 422, "invalid")
    assert "xxxxxxxxxxxx" not in response.text


def test_409_decision_conflict_has_the_shape_and_its_fields(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), masks_per_pair=2,
                          kinds=("verify_mask", "check_exhaustivity"))
    a, b = login("ann"), login("ann2")
    verify, check = lease(a, "verify_mask"), lease(b, "check_exhaustivity")
    assert verdict(b, check["id"], label="not_present").status_code == 201
    body = assert_error(verdict(a, verify["id"], label="accept"), 409, "decision_conflict")
    assert body["verdict_id"] and body["task_state"]


@pytest.mark.parametrize("name", [" ", "\t \n"])
def test_a_token_name_of_spaces_only_is_422(login, name):
    """Found by the fuzz run in a fresh-clone CI: the service refused the stripped, empty name with a
    ValueError that reached the client as a 500."""
    body = assert_error(login("ann").post("/api/v1/auth/tokens", json={"name": name}), 422, "invalid")
    assert "token name" in body["detail"]
