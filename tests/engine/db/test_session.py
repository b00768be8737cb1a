"""Engines and sessions: a pooled PostgreSQL connection that died while idle is replaced before a
request uses it, and a busy pool pays no ping per checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from engine.db import session as db_session
from engine.db.session import session_scope
from tests.conftest import pg_admin


def _backend_pid(url: str) -> int:
    with session_scope(url) as s:
        return s.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_killed_while_idle_is_replaced(fresh_pg_url, monkeypatch):
    first = _backend_pid(fresh_pg_url)
    with pg_admin() as admin:  # the server drops it (a restart, an idle timeout, an operator)
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # it has been idle "long enough"
    second = _backend_pid(fresh_pg_url)
    assert second != first


def test_without_the_ping_the_dead_connection_would_fail_the_request(fresh_pg_url, monkeypatch):
    """The control for the test above: the pool really hands out the killed connection otherwise."""
    first = _backend_pid(fresh_pg_url)
    with pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 1e9)
    with pytest.raises(Exception, match="terminat|closed|connection"):
        _backend_pid(fresh_pg_url)


def test_a_busy_pool_sends_no_ping(fresh_pg_url, monkeypatch):
    pings: list[object] = []
    real_ping = db_session._ping
    monkeypatch.setattr(db_session, "_ping", lambda conn: (pings.append(conn), real_ping(conn)))
    _backend_pid(fresh_pg_url)
    for _ in range(5):  # checked out again within milliseconds
        _backend_pid(fresh_pg_url)
    assert pings == []
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)
    for _ in range(3):
        _backend_pid(fresh_pg_url)
    assert len(pings) == 3
