"""The CLI reads its settings from the environment: a fresh database and data folders per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_database(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``dataengine`` pointed at a fresh migrated database (each backend), media and data under
    ``tmp_path``; returns the database URL."""
    monkeypatch.setenv("DATAENGINE_DATABASE_URL", database_url)
    monkeypatch.setenv("DATAENGINE_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    return database_url
