from fastapi.testclient import TestClient

from tests.web.conftest import PASSWORD


def test_login_sets_a_hardened_session_cookie(app):
    client = TestClient(app)
    response = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "de_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert response.json()["role"] == "annotator" and len(response.json()["csrf_token"]) > 20
    assert client.get("/api/v1/auth/me").json()["username"] == "ann"


def test_wrong_password_and_unknown_user_get_the_same_answer(app):
    client = TestClient(app)
    a = client.post("/api/v1/auth/login", json={"username": "ann", "password": "nope"})
    b = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_login_is_rate_limited_per_user_name(app, web_settings):
    client = TestClient(app)
    for _ in range(web_settings.serve.login_max_failures):
        assert client.post("/api/v1/auth/login", json={"username": "ann", "password": "bad"}).status_code == 401
    blocked = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


def test_state_changing_requests_need_the_csrf_header(login):
    client = login("ann")
    token = client.headers.pop("X-CSRF-Token")
    assert client.post("/api/v1/tasks/next").status_code == 403
    assert client.post("/api/v1/tasks/next", headers={"X-CSRF-Token": "forged"}).status_code == 403
    empty = client.post("/api/v1/tasks/next", headers={"X-CSRF-Token": token})  # accepted: an empty queue
    assert empty.status_code == 200 and empty.json()["task"] is None


def test_api_tokens_work_without_cookies_and_can_be_revoked(login, app):
    made = login("mle").post("/api/v1/auth/tokens", json={"name": "nightly export"})
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    script = TestClient(app)
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/v1/auth/me", headers=bearer).json()["username"] == "mle"
    # no CSRF needed for a bearer token; the role still applies
    assert script.post("/api/v1/tasks/next", headers=bearer).status_code == 403
    listed = login("mle").get("/api/v1/auth/tokens").json()
    assert [t["id"] for t in listed] == [token_id] and "token" not in listed[0]
    assert login("mle").delete(f"/api/v1/auth/tokens/{token_id}").status_code == 204
    assert script.get("/api/v1/auth/me", headers=bearer).status_code == 401


def test_a_disabled_user_loses_their_session_at_once(login):
    client = login("ann")
    assert login("root").patch("/api/v1/users/ann", json={"is_active": False}).status_code == 200
    assert client.get("/api/v1/auth/me").status_code == 401


def test_logout_ends_the_session(login):
    client = login("ann")
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_unauthenticated_calls_are_refused(app):
    client = TestClient(app)
    for method, path in [("GET", "/api/v1/auth/me"), ("POST", "/api/v1/tasks/next"), ("GET", "/api/v1/images/1"),
                         ("GET", "/api/v1/users"), ("GET", "/api/v1/gold")]:
        assert client.request(method, path).status_code == 401, path


def test_each_role_is_refused_what_it_must_not_do(login):
    expectations = [
        # (method, path, body, roles allowed)
        ("POST", "/api/v1/tasks/next", None, {"ann", "rev", "root"}),
        ("GET", "/api/v1/users", None, {"root"}),
        ("POST", "/api/v1/users", {"username": "new1", "password": "longenough", "role": "annotator"}, {"root"}),
        ("GET", "/api/v1/gold", None, {"rev", "root"}),
    ]
    for method, path, body, allowed in expectations:
        for user in ("ann", "rev", "mle", "root"):
            status = login(user).request(method, path, json=body).status_code
            if user in allowed:
                assert status in (200, 201, 204), (user, path, status)
            else:
                assert status == 403, (user, path, status)


def test_security_headers_and_body_limit(app, web_settings):
    client = TestClient(app)
    response = client.get("/api/v1/health")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    big = b"x" * (web_settings.serve.max_body_bytes + 1)
    assert client.post("/api/v1/auth/login", content=big,
                       headers={"content-type": "application/json"}).status_code == 413


def test_expired_sessions_are_refused_and_purged(login, web_settings):
    import datetime as dt

    from sqlalchemy import func, select

    from engine.db.models import AuthSession
    from engine.db.session import session_scope
    from engine.services.auth import purge_expired_sessions

    client = login("ann")
    with session_scope(web_settings.db_url) as s:
        for row in s.scalars(select(AuthSession)):
            row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert client.get("/api/v1/auth/me").status_code == 401
    with session_scope(web_settings.db_url) as s:
        assert purge_expired_sessions(s) == 1
        assert s.scalar(select(func.count()).select_from(AuthSession)) == 0
