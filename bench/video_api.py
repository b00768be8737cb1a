"""The page's click latency through the web API: POST /api/video/tasks/{id}/track, then GET
/api/video/track/{id}?after=SEQ polled until a frame other than the clicked one arrives."""

from __future__ import annotations

import importlib.util
from typing import Any


def api_available() -> str | None:
    """None when the video API is in this checkout, else why the API run is skipped."""
    if importlib.util.find_spec("web.routers.video") is None:
        return "the video API (web/routers/video.py) is not in this checkout"
    return None


def api_click(spec: dict[str, Any]) -> dict[str, Any]:
    raise NotImplementedError("the API click run lands with web/routers/video.py")
