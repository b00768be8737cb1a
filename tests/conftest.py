"""Shared fixtures: real PostgreSQL and SQLite databases migrated with Alembic, settings, media;
the test tiers.

Every test that takes ``database_url`` runs on both databases; each test gets a fresh database
(PostgreSQL: a copy of a migrated template database; SQLite: a copy of a migrated file).

Tiers: a test that needs no service runs with none up. The fixtures that reach the shared
PostgreSQL or Redis check once that it answers and fail with :data:`START_HINT` if not, and
:func:`pytest_collection_modifyitems` marks each test with what it needs (``postgres``, ``redis``,
``rabbitmq``, ``browser``, ``label_studio``, ``models``) from its fixtures and parameters, so that
``-m "not postgres and not redis and not rabbitmq and not browser and not label_studio"`` selects
the tests that run with no service up; ``scripts/test.sh --fast`` also leaves out ``models`` and
``slow`` (the pure and SQLite tier in about two minutes).
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.orm import Session

import migrations
from engine.db.session import dispose_engines, session_scope
from engine.observability_settings import ObservabilitySettings
from engine.settings import FetchSettings, Settings
from tests.httpserver import TestServer

PG_HOST = os.environ.get("DATAENGINE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DATAENGINE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("DATAENGINE_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("DATAENGINE_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("DATAENGINE_TEST_REDIS_PORT", "6379"))

START_HINT = (
    "The test-suite needs the real services. Start them with\n"
    "  pg_ctlcluster --skip-systemctl-redirect 15 main start\n"
    '  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no\n'
    "  rabbitmq-server -detached   (for the tests on the RabbitMQ broker; or run scripts/services.sh)\n"
    "or `docker compose up -d postgres redis`, or point DATAENGINE_TEST_PG_HOST/PORT/USER and\n"
    "DATAENGINE_TEST_REDIS_HOST/PORT at running servers."
)
_counter = itertools.count()


def pg_url(dbname: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def pg_admin() -> psycopg.Connection:
    require_service("postgres")
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


@functools.cache
def _service_problem(service: str) -> str | None:
    """Why the shared ``service`` ("postgres" or "redis") cannot be used; ``None`` when it answers.
    Asked once per test session."""
    if service == "postgres":
        try:
            with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                 connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001
            return f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc}"
        return None
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=3):
            return None
    except OSError:
        return f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable"


def require_service(service: str) -> None:
    """Fail the calling test, with how to start the services, unless the shared ``service`` answers."""
    problem = _service_problem(service)
    if problem is not None:
        pytest.fail(problem + "\n\n" + START_HINT, pytrace=False)


def pytest_sessionstart(session: pytest.Session) -> None:
    for var in [v for v in os.environ if v.startswith("DATAENGINE_") and not v.startswith("DATAENGINE_TEST_")]:
        del os.environ[var]
    os.environ["HF_HUB_OFFLINE"] = "1"


# what a fixture in a test's closure needs (the fixtures it requests, directly or through others)
FIXTURE_MARKERS = {
    "pg_template": "postgres", "fresh_pg_url": "postgres", "private_pg": "postgres",
    "shared_redis": "redis", "private_redis": "redis", "private_rabbitmq": "rabbitmq",
    "browser_page": "browser", "label_studio": "label_studio",
    "models_cache_dir": "models", "tiny": "models",
}
# what a parameter of a fixture that picks its backend at run time needs (``database_url``: "postgresql")
PARAM_MARKERS = {
    "database_url": {"postgresql": "postgres"},
    "empty_url": {"postgresql": "postgres"},
    "broker": {"redis": "redis", "rabbitmq": "rabbitmq"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the services and tools its fixtures and parameters need."""
    for item in items:
        needs = {FIXTURE_MARKERS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_MARKERS}
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            for name, value in callspec.params.items():
                marker = PARAM_MARKERS.get(name, {}).get(value) if isinstance(value, str) else None
                if marker is not None:
                    needs.add(marker)
        for marker in sorted(needs - {mark.name for mark in item.iter_markers()}):
            item.add_marker(marker)


def drop_pg_database(name: str) -> None:
    dispose_engines()
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_pg_database(name: str, template: str | None = None) -> str:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return pg_url(name)


@pytest.fixture(scope="session")
def shared_redis() -> str:
    """The shared Redis server's URL without a database number (the test picks its own)."""
    require_service("redis")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"de_tmpl_{os.getpid()}"
    url = create_pg_database(name)
    migrations.upgrade(url)
    dispose_engines()  # a template must have no open connections
    yield name
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrations.upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


@pytest.fixture
def fresh_pg_url(pg_template: str) -> Iterator[str]:
    name = f"de_t_{os.getpid()}_{next(_counter)}"
    url = create_pg_database(name, template=pg_template)
    yield url
    drop_pg_database(name)


@pytest.fixture
def fresh_sqlite_url(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "dataengine.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database, once per backend."""
    fixture = "fresh_sqlite_url" if request.param == "sqlite" else "fresh_pg_url"
    return request.getfixturevalue(fixture)


# the outbound-fetch policy refuses loopback by default: tests fetch from their own 127.0.0.1 servers
LOCAL_FETCH: dict[str, list[str]] = {"allow_networks": ["127.0.0.0/8"], "allow_ports": ["1-65535"]}
LOCAL_FETCH_ENV = {"DATAENGINE_FETCH__ALLOW_NETWORKS": '["127.0.0.0/8"]',
                   "DATAENGINE_FETCH__ALLOW_PORTS": '["1-65535"]'}


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "media_root": tmp_path / "media",
        "fetch": FetchSettings(connect_timeout_s=1, read_timeout_s=1, retries=1, backoff_s=0.01, concurrency=4,
                               allow_networks=LOCAL_FETCH["allow_networks"],
                               allow_ports=list(LOCAL_FETCH["allow_ports"])),
        # a served app started in a test loads no model in the background unless the test asks
        "observability": ObservabilitySettings(warm_up="none"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with session_scope(settings.db_url) as s:
        yield s


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    server = TestServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def models_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models cache dir (``settings.models.cache_dir``) holding the tiny random-weight models,
    built once per test session."""
    from annotators.tiny import ensure_tiny_models

    root = tmp_path_factory.mktemp("models-cache")
    ensure_tiny_models(root / "tiny")
    return root
