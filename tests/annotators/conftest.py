"""The adapter tests' models: the session's tiny random-weight models (test_tiny.py builds its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotators.tiny import ensure_tiny_models


@pytest.fixture(scope="session")
def tiny(models_cache_dir: Path) -> dict[str, Path]:
    """The tiny models of ``models_cache_dir`` (tests/conftest.py): built once per session, read only."""
    return ensure_tiny_models(models_cache_dir / "tiny")
