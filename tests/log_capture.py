"""The records of this process as engine/logs.py's JSON format writes them, for tests of the log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.logs import make_handler


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """A JSON handler of ours on the root logger (at INFO meanwhile); the stream holds its lines."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def json_lines(stream: io.StringIO) -> list[dict]:
    """The JSON records written to ``stream``."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
