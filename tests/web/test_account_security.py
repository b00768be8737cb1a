"""Accounts against hostile users (issue #15): the log-in rate limit holds under parallel attempts, a
password change or reset ends every old credential at once, one password policy everywhere, and no
error body carries a password back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.db.models import LoginAttempt
from engine.db.session import session_scope
from engine.domain.passwords import MAX_LENGTH, MIN_LENGTH
from engine.settings import Settings
from tests.web.conftest import PASSWORD
from tests.web.live import live_server  # noqa: F401 (fixture)

PARALLEL = 30
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(web_settings: Settings) -> Settings:
    return web_settings


def _attempts(settings: Settings, **where: str) -> tuple[int, int]:
    """(failed, succeeded) log-in attempt rows matching ``where``."""
    with session_scope(settings.db_url) as s:
        query = select(LoginAttempt.succeeded, func.count()).group_by(LoginAttempt.succeeded)
        for column, value in where.items():
            query = query.where(getattr(LoginAttempt, column) == value)
        counts = dict(s.execute(query).all())
    return counts.get(False, 0), counts.get(True, 0)


def _in_parallel(calls: list) -> list[int]:  # type: ignore[type-arg]
    """Run the calls at once (a barrier releases them together); their status codes."""
    barrier = threading.Barrier(len(calls))

    def run(call) -> int:  # type: ignore[no-untyped-def]
        barrier.wait()
        return call().status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


# ---------------------------------------------------------------------------------- rate limit
def test_parallel_wrong_passwords_for_one_user_from_many_addresses(app, web_settings):
    """30 wrong passwords for one user at once, each from its own address: only the per-user-name
    limit can stop them, and at most serve.login_max_failures passwords are evaluated."""
    limit = web_settings.serve.login_max_failures
    clients = [TestClient(app, client=(f"10.0.0.{i + 1}", 40000 + i)) for i in range(PARALLEL)]
    wrong = {"username": "ann", "password": "wrong guess 1"}
    codes = _in_parallel([lambda c=c: c.post("/api/v1/auth/login", json=wrong) for c in clients])
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == limit and codes.count(429) == PARALLEL - limit
    assert _attempts(web_settings, username="ann") == (limit, 0)  # refused attempts are not kept
    # the right password is refused too until the window has passed
    assert TestClient(app, client=("10.0.1.1", 1)).post(
        "/api/v1/auth/login", json={"username": "ann", "password": PASSWORD}).status_code == 429


def test_parallel_wrong_passwords_from_one_address_against_a_live_server(live_server, web_settings):
    """30 log-ins at once from 127.0.0.1 for 30 different user names, against real uvicorn: the
    per-address limit lets at most serve.login_max_failures through to a password check."""
    limit = web_settings.serve.login_max_failures
    names = [f"ghost{i}" for i in range(PARALLEL)]
    with httpx.Client(base_url=live_server, timeout=60) as client:
        codes = _in_parallel([lambda n=n: client.post("/api/v1/auth/login",
                                                      json={"username": n, "password": "wrong guess 2"})
                              for n in names])
        assert codes.count(401) == limit and codes.count(429) == PARALLEL - limit
        assert _attempts(web_settings, ip="127.0.0.1") == (limit, 0)
        refused = client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_a_successful_log_in_does_not_count_as_a_failure(app, web_settings):
    limit = web_settings.serve.login_max_failures
    client = TestClient(app)
    for _ in range(limit - 1):
        wrong = client.post("/api/v1/auth/login", json={"username": "ann", "password": "wrong guess 3"})
        assert wrong.status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD}).status_code == 200
    assert _attempts(web_settings, username="ann") == (limit - 1, 1)
    assert client.post("/api/v1/auth/login", json={"username": "ann", "password": "wrong guess 4"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD}).status_code == 429


# ---------------------------------------------------------------------------------- revocation
def _credentials(login, app) -> tuple[TestClient, TestClient, TestClient]:  # type: ignore[no-untyped-def]
    """ann signed in twice (two cookie sessions) and an API token of hers used without cookies."""
    first, second = login("ann"), login("ann")
    token = first.post("/api/v1/auth/tokens", json={"name": "script"}).json()["token"]
    script = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    for client in (first, second, script):
        assert client.get("/api/v1/auth/me").status_code == 200  # and remembered by the principal cache
    return first, second, script


def test_an_admin_password_reset_ends_every_session_and_token(login, app):
    first, second, script = _credentials(login, app)
    root = login("root")
    assert root.patch("/api/v1/users/ann", json={"password": NEW_PASSWORD}).status_code == 200
    for client in (first, second, script):
        assert client.get("/api/v1/auth/me").status_code == 401
    assert root.get("/api/v1/auth/me").status_code == 200  # nobody else's
    fresh = TestClient(app)
    assert fresh.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD}).status_code == 401
    assert fresh.post("/api/v1/auth/login", json={"username": "ann", "password": NEW_PASSWORD}).status_code == 200
    tokens = fresh.get("/api/v1/auth/tokens").json()
    assert tokens and all(t["revoked_at"] is not None for t in tokens)


def test_a_password_change_by_the_user_ends_every_old_session_and_token(login, app):
    first, second, script = _credentials(login, app)
    other = login("ann2")
    wrong = first.post("/api/v1/auth/password",
                       json={"current_password": "not my password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and "not my password" not in wrong.text
    assert second.get("/api/v1/auth/me").status_code == 200  # a refused change changes nothing

    changed = first.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.text
    assert NEW_PASSWORD not in changed.text and PASSWORD not in changed.text
    for client in (second, script):
        assert client.get("/api/v1/auth/me").status_code == 401
    # the browser that changed it got a new session (the cookie jar took it) and CSRF token
    first.headers["X-CSRF-Token"] = changed.json()["csrf_token"]
    assert first.get("/api/v1/auth/me").json()["username"] == "ann"
    assert first.post("/api/v1/auth/tokens", json={"name": "after"}).status_code == 201
    assert other.get("/api/v1/auth/me").status_code == 200
    assert login("ann", NEW_PASSWORD).get("/api/v1/auth/me").status_code == 200


# ---------------------------------------------------------------------------------- policy
WEAK = [
    ("short", "short1", "at least 10 characters"),
    ("common", "Password123!", "too common"),
    ("keyboard walk", "qwertyuiop", "too common"),
    ("contains the user name", "my-newbie-secret", "user name"),
    ("too long", "x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
]


@pytest.mark.parametrize(("case", "password", "message"), WEAK, ids=[w[0] for w in WEAK])
def test_weak_passwords_are_refused_everywhere_without_echo(login, case, password, message):
    root = login("root")
    created = root.post("/api/v1/users", json={"username": "newbie", "password": password, "role": "annotator"})
    root.post("/api/v1/users", json={"username": "newbie", "password": "a fine passphrase", "role": "annotator"})
    reset = root.patch("/api/v1/users/newbie", json={"password": password})
    newbie = login("newbie", "a fine passphrase")
    changed = newbie.post("/api/v1/auth/password",
                          json={"current_password": "a fine passphrase", "new_password": password})
    for response in (created, reset, changed):
        assert response.status_code == 422, response.text
        assert message in response.text
        assert password not in response.text


def test_no_validation_error_carries_a_password_back(app, login):
    secret = "s3cret-" + "y" * 1100
    for body in ({"username": "ann", "password": secret}, {"username": "", "password": secret},
                 {"username": "ann", "password": ""}):
        response = TestClient(app).post("/api/v1/auth/login", json=body)
        assert response.status_code == 422 and (not body["password"] or body["password"] not in response.text)
    root = login("root")
    bad = root.post("/api/v1/users", json={"username": "x" * 300, "password": "another secret phrase", "role": "nope"})
    assert bad.status_code == 422 and "another secret phrase" not in bad.text
    # a missing field: pydantic's error carries the whole body, the error contract drops it
    missing = root.post("/api/v1/users", json={"username": "zz", "password": "another secret phrase"})
    assert missing.status_code == 422 and "another secret phrase" not in missing.text
    missing = login("ann").post("/api/v1/auth/password", json={"current_password": PASSWORD})
    assert missing.status_code == 422 and PASSWORD not in missing.text
    bad = root.patch("/api/v1/users/ann", json={"password": "another secret phrase", "role": "nope"})
    assert bad.status_code == 422 and "another secret phrase" not in bad.text


def test_the_schemas_state_the_servers_policy(app):
    schemas = TestClient(app).get("/openapi.json").json()["components"]["schemas"]
    fields = [schemas["UserIn"]["properties"]["password"], schemas["UserPatch"]["properties"]["password"],
              schemas["PasswordChange"]["properties"]["new_password"]]
    for field in fields:
        assert field["minLength"] == MIN_LENGTH and field["maxLength"] == MAX_LENGTH
