import pytest

from annotators.tiny import ensure_tiny_models


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny random-weight models, built once for the adapter tests (test_tiny.py builds its own)."""
    return ensure_tiny_models(tmp_path_factory.mktemp("models"))
