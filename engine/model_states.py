"""Which models this process is loading and which it holds, by role ("segmenter", "exemplar_proposer", …).

The model cache (pipelines/models.py) marks a role loading while it builds the model and ready once
built; the web app reads the snapshot (GET /api/v1/models/state) so a page can say "loading the
model" instead of a bare "Segmenting…" while the first click waits for it, and the warm-up
(pipelines/warmup.py) logs what it loaded and how long it took. Process-wide, thread-safe."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

State = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class ModelState:
    role: str
    state: State
    since: float  # time.time() of the last change
    seconds: float | None = None  # how long the load took (ready or failed)
    error: str | None = None


_lock = threading.Lock()
_states: dict[str, ModelState] = {}


@contextlib.contextmanager
def loading(role: str) -> Iterator[None]:
    """Mark ``role`` loading for the block; ready when it returns, failed (with the reason) when it raises."""
    started = time.monotonic()
    _set(ModelState(role, "loading", time.time()))
    try:
        yield
    except BaseException as exc:
        _set(ModelState(role, "failed", time.time(), time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:500]))
        raise
    _set(ModelState(role, "ready", time.time(), time.monotonic() - started))


def _set(state: ModelState) -> None:
    with _lock:
        _states[state.role] = state


def snapshot() -> dict[str, ModelState]:
    """The roles this process has loaded or is loading, by role."""
    with _lock:
        return dict(_states)


def forget(role: str | None = None) -> None:
    """Drop one role's state (all: None) — a cache that lets its model go, and tests."""
    with _lock:
        if role is None:
            _states.clear()
        else:
            _states.pop(role, None)
