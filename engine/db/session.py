"""Engines and sessions. The caller owns the transaction: repositories flush, never commit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def build_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5)
    event.listen(engine, "checkin", _idle_from)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


#: a pooled connection unused for this long is tested before it is handed out
PING_AFTER_IDLE_S = 10.0


def _idle_from(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry,
                  _proxy: PoolProxiedConnection) -> None:
    """Pessimistic disconnect handling, but only for connections that sat idle: a server restart or
    an idle-connection timeout is caught before a request uses the connection, while a busy server
    (connections back in the pool within milliseconds) pays no extra round trip per checkout, as
    ``pool_pre_ping`` would. A dead connection is replaced (DisconnectionError makes the pool retry)."""
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
        return
    try:
        _ping(dbapi_connection)
    except Exception as error:  # noqa: BLE001 - any failure means: do not hand this one out
        raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _ping(dbapi_connection: DBAPIConnection) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()
    dbapi_connection.rollback()  # leave no transaction open (the driver began one)


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """One engine per URL per process (worker processes create theirs after the fork)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = build_engine(url)
    return engine


def dispose_engines(close: bool = False) -> None:
    """Forget this process's engines. ``close=False`` (in a child right after fork): leave the
    parent's connections alone; ``close=True``: close them (e.g. before dropping a database)."""
    for engine in _ENGINES.values():
        engine.dispose(close=close)
    _ENGINES.clear()
    _FACTORIES.clear()


_FACTORIES: dict[str, sessionmaker[Session]] = {}


def session_factory(url: str) -> sessionmaker[Session]:
    factory = _FACTORIES.get(url)
    if factory is None:  # dispose_engines forgets the factories with their engines
        factory = _FACTORIES[url] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return factory


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
