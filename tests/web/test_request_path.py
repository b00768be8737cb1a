"""The per-request path (web/deps.py): the transaction commits before the response is sent, and
the principal cache trades a bounded delay for one database round trip fewer per request."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dataengine.serve import create_app
from engine.db.models import ApiToken, Role, User
from engine.db.session import session_scope
from engine.services.auth import Principal
from web.deps import PrincipalCache, SessionDep, UnitOfWorkRoute, get_session


def test_a_failed_commit_is_an_error_not_a_success(app):
    """A change that only fails when the transaction commits must not be answered 2xx: the commit
    runs before the response goes out (a client told "stored" has it stored)."""

    def broken(session: SessionDep) -> dict[str, bool]:
        session.add(User(username=None, password_hash="x", role=Role.ANNOTATOR))  # NOT NULL, seen at commit
        return {"stored": True}

    app.add_api_route("/api/v1/test-broken", broken, methods=["POST"])
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/api/v1/test-broken").status_code == 500


def test_a_change_is_committed_when_its_answer_arrives(login, web_settings):
    client = login("root")
    made = client.post("/api/v1/users", json={"username": "newbie", "password": "longenough1", "role": "annotator"})
    assert made.status_code == 201
    with session_scope(web_settings.db_url) as s:  # another connection sees it at once
        assert s.scalars(select(User.id).where(User.username == "newbie")).first() is not None


def test_cached_principals_outlive_a_change_made_elsewhere_at_most_the_cache_time(web_settings):
    """A user disabled by another process (the CLI, another worker) keeps a cached session for at most
    serve.auth_cache_s; with 0 the database is asked on every request."""
    for ttl, still_in in ((60.0, True), (0.0, False)):
        with session_scope(web_settings.db_url) as s:
            s.execute(update(User).where(User.username == "ann").values(is_active=True))
        web_settings.serve.auth_cache_s = ttl
        client = TestClient(create_app(web_settings))
        r = client.post("/api/v1/auth/login", json={"username": "ann", "password": "correct horse battery"})
        assert r.status_code == 200
        assert client.get("/api/v1/auth/me").status_code == 200
        with session_scope(web_settings.db_url) as s:  # as `dataengine users disable ann` does
            s.execute(update(User).where(User.username == "ann").values(is_active=False))
        assert client.get("/api/v1/auth/me").status_code == (200 if still_in else 401), ttl
        client.close()


def test_changes_made_through_the_server_take_effect_at_once(login, app):
    """Log-out, a revoked token and a disabled user are refused on the very next request, cache or not."""
    assert app.state.principals.ttl_s > 0
    made = login("mle").post("/api/v1/auth/tokens", json={"name": "script"})
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    script = TestClient(app)
    assert script.get("/api/v1/auth/me", headers=bearer).status_code == 200  # cached now
    assert login("mle").delete(f"/api/v1/auth/tokens/{made.json()['id']}").status_code == 204
    assert script.get("/api/v1/auth/me", headers=bearer).status_code == 401

    ann = login("ann")
    assert ann.get("/api/v1/auth/me").status_code == 200
    assert login("root").patch("/api/v1/users/ann", json={"role": "ml_engineer"}).status_code == 200
    assert ann.post("/api/v1/tasks/next").status_code == 403  # the new role, not the cached one


def test_the_cache_keeps_no_credential_and_never_outlives_a_session(web_settings):
    now = [100.0]
    cache = PrincipalCache(ttl_s=5.0, clock=lambda: now[0])
    who = Principal(1, "ann", Role.ANNOTATOR, None, "session", "csrf", 7)
    cache.put("digest-a", who, expires_in_s=2.0)  # the log-in session ends in 2 s
    cache.put("digest-b", who)
    assert cache.get("digest-a") == who and cache.get("digest-b") == who
    now[0] += 2.5
    assert cache.get("digest-a") is None and cache.get("digest-b") == who
    now[0] += 3.0
    assert cache.get("digest-b") is None
    cache.put("digest-c", who, expires_in_s=-1)  # already expired: not remembered
    assert cache.get("digest-c") is None
    small = PrincipalCache(ttl_s=5.0, max_entries=3, clock=lambda: now[0])
    for i in range(10):
        small.put(f"k{i}", who)
    assert len(small._entries) <= 3 and small.get("k9") == who
    assert PrincipalCache(ttl_s=0).get("x") is None


def test_token_use_is_still_recorded_with_the_cache(login, app, web_settings):
    made = login("mle").post("/api/v1/auth/tokens", json={"name": "script"})
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert TestClient(app).get("/api/v1/auth/me", headers=bearer).status_code == 200
    with session_scope(web_settings.db_url) as s:
        assert s.scalars(select(ApiToken.last_used_at).where(ApiToken.id == made.json()["id"])).one() is not None


def test_the_transaction_ends_in_the_endpoints_own_thread_call(app):
    """A transaction never waits for a free worker thread while it holds locks: the commit (or the
    rollback) runs in the thread that ran the endpoint, before the thread is given back."""
    import threading

    from fastapi import APIRouter, HTTPException
    from sqlalchemy import event

    seen: dict[str, int] = {}
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.post("/api/v1/test-commit")
    def commit_here(session: SessionDep) -> dict[str, bool]:
        seen["endpoint"] = threading.get_ident()
        event.listen(session, "after_commit", lambda _s: seen.__setitem__("commit", threading.get_ident()))
        session.execute(update(User).where(User.username == "ann").values(is_active=True))
        return {"ok": True}

    @router.post("/api/v1/test-rollback")
    def roll_back_here(session: SessionDep) -> None:
        seen["endpoint"] = threading.get_ident()
        event.listen(session, "after_rollback", lambda _s: seen.__setitem__("rollback", threading.get_ident()))
        session.execute(update(User).where(User.username == "ann").values(is_active=False))
        raise HTTPException(409, "no")

    app.include_router(router)
    client = TestClient(app)
    assert client.post("/api/v1/test-commit").status_code == 200
    assert seen["commit"] == seen["endpoint"]
    assert client.post("/api/v1/test-rollback").status_code == 409
    assert seen["rollback"] == seen["endpoint"]
    with session_scope(app.state.settings.db_url) as s:  # the failed request changed nothing
        assert s.scalars(select(User.is_active).where(User.username == "ann")).one() is True


def test_every_route_with_a_session_ends_its_transaction_in_its_thread(app):
    from fastapi.routing import APIRoute

    def uses_session(dependant) -> bool:  # type: ignore[no-untyped-def]
        return any(d.call is get_session or uses_session(d) for d in dependant.dependencies)

    def walk(routes):  # type: ignore[no-untyped-def]
        for r in routes:
            inner = getattr(r, "original_router", None)  # an included router (FastAPI >= 0.160)
            yield from walk(inner.routes) if inner is not None else [r]

    routes = [r for r in walk(app.routes) if isinstance(r, APIRoute) and uses_session(r.dependant)]
    assert len(routes) > 20
    assert [r.path for r in routes if not isinstance(r, UnitOfWorkRoute)] == []
