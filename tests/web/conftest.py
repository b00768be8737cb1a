"""An app on a fresh database with one user per role, and clients signed in as each."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dataengine.serve import create_app
from engine.db.models import User
from engine.db.session import session_scope
from engine.domain.passwords import hash_password
from engine.domain.vocabulary import Role
from engine.settings import Settings
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
ROLES = {"ann": Role.ANNOTATOR, "ann2": Role.ANNOTATOR, "rev": Role.REVIEWER, "mle": Role.ML_ENGINEER,
         "root": Role.ADMIN}


@functools.cache
def password_hash(username: str) -> str:
    """``PASSWORD``'s stored form for ``username``, hashed once per session (scrypt is slow on purpose:
    five users per test cost a fifth of a second)."""
    return hash_password(PASSWORD, username)


@pytest.fixture
def web_settings(database_url: str, tmp_path: Path) -> Settings:
    settings = make_settings(database_url, tmp_path)
    settings.queue.gold_rate = 0.0
    settings.queue.multi_review_rate = 0.0
    with session_scope(settings.db_url) as s:
        s.add_all(User(username=name, password_hash=password_hash(name), role=role, is_active=True)
                  for name, role in ROLES.items())
    return settings


@pytest.fixture
def app(web_settings: Settings) -> FastAPI:
    return create_app(web_settings)


@pytest.fixture
def login(app: FastAPI) -> Iterator[Callable[..., TestClient]]:
    """login("ann") → a TestClient with that user's session cookie and CSRF header."""
    clients: list[TestClient] = []

    def sign_in(username: str, password: str = PASSWORD) -> TestClient:
        client = TestClient(app)
        clients.append(client)
        response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    yield sign_in
    for client in clients:
        client.close()
