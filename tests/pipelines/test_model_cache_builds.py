"""Model builds are serialised process-wide: transformers' lazily imported classes are not safe to import
from two threads at once (a server's warm-up thread and its exemplar runner's thread each building with
their own ModelCache raced), while a model already built is handed out without waiting for a load."""

from __future__ import annotations

import threading
import time

import annotators.registry as registry
from pipelines.models import ModelCache
from tests.conftest import make_settings


def test_two_caches_never_build_at_once_and_a_built_model_does_not_wait(tmp_path, monkeypatch):
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    running, peak, lock = 0, 0, threading.Lock()
    slow_started = threading.Event()

    def slow_build(_settings):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        slow_started.set()
        time.sleep(0.3)
        with lock:
            running -= 1
        return object()

    monkeypatch.setattr(registry, "make_parser", slow_build)
    monkeypatch.setattr(registry, "make_embedder", slow_build)
    first, second, ready = ModelCache(settings), ModelCache(settings), ModelCache(settings)
    monkeypatch.setattr(registry, "make_parser", lambda _s: "built")
    assert ready.parser() == "built"
    monkeypatch.setattr(registry, "make_parser", slow_build)
    threads = [threading.Thread(target=first.parser), threading.Thread(target=second.embedder)]
    for t in threads:
        t.start()
    assert slow_started.wait(5)
    started = time.monotonic()
    assert ready.parser() == "built"  # built before: handed out while the others load
    assert time.monotonic() - started < 0.2
    for t in threads:
        t.join(5)
    assert peak == 1
    assert first.parser() is first.parser()  # kept once built
