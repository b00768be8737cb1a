"""Masks validated at every web door (issue #15, item 1): a correction carrying a malformed RLE is
refused with 422 and stores nothing; a malformed mask planted in the database past every door no
longer freezes GET /api/v1/dashboard/quality (pycocotools' IoU looped for ever on it); the
quality report is computed by one request at a time and kept a while."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
from fastapi import HTTPException
from sqlalchemy import func, select

from engine.db.models import HumanTask, Mask, TaskState, Verdict
from engine.db.session import session_scope
from engine.domain.masks import encode_mask
from tests.factories import seed_labelled, seed_review_items
from web.routers.dashboard import QualityCache


def _counts(session):
    return session.scalar(select(func.count(Mask.id))), session.scalar(select(func.count(Verdict.id)))


@pytest.mark.parametrize("rle", [
    {"size": [64, 96], "counts": "95"},  # counts sum to 14, not 64 × 96: the IoU that froze the server
    {"size": [64, 96], "counts": "1o"},  # ends inside a number: the C decoder read past the string
    {"size": [64, 96], "counts": "0@" + "0" * 10},  # a negative count
    {"size": [64, 96], "counts": [6144, -1, 1]},
    {"size": [64, 96], "counts": [10, 10]},
    {"size": [64, 96], "counts": "x" * 100_000},  # too long for 6144 pixels
    {"size": [64, 96], "counts": 12},
    {"size": ["64", 96], "counts": "95"},
])
def test_a_correction_with_a_bad_rle_is_422_and_stores_nothing(login, web_settings, rle):
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("correct",))
    client = login("ann")
    task = client.post("/api/v1/tasks/next", json={"kinds": ["correct"]}).json()
    with session_scope(web_settings.db_url) as s:
        before = _counts(s)
    body = {"client_id": uuid.uuid4().hex, "label": "corrected", "active_ms": 1500,
            "masks": [{"rle": rle, "tool": "brush"}]}
    response = client.post(f"/api/v1/tasks/{task['id']}/verdict", json=body)
    assert response.status_code == 422, response.text
    with session_scope(web_settings.db_url) as s:
        assert _counts(s) == before
        assert s.get(HumanTask, task["id"]).state == TaskState.LEASED  # still the annotator's to finish
    good = encode_mask(np.pad(np.ones((10, 10), bool), ((5, 49), (5, 81)))).to_coco()
    body["masks"] = [{"rle": good, "tool": "brush"}]
    assert client.post(f"/api/v1/tasks/{task['id']}/verdict", json=body).status_code == 201


@pytest.mark.timeout(60)
def test_a_bad_stored_mask_does_not_freeze_the_quality_report(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        ids = seed_labelled(s, web_settings.media_path)
        # planted past every door (add_mask refuses it): before, pycocotools' IoU spun for ever here
        s.get(Mask, ids["dog2_drawn"]).rle_counts = "95"  # a ground-truth mask
        s.get(Mask, ids["dog0_m1"]).rle_counts = "1o"  # a proposer's mask
    response = login("mle").get("/api/v1/dashboard/quality")
    assert response.status_code == 200, response.text
    (proposer,) = response.json()["proposers"]
    assert proposer["model"] == "test-proposer:1" and proposer["pairs"] == 3


def test_quality_cache_computes_once_per_window_and_hours():
    now = [0.0]
    cache = QualityCache(ttl_s=30, wait_s=0, clock=lambda: now[0])
    calls: list[int] = []

    def compute(hours):
        return lambda: calls.append(hours) or {"hours": hours, "n": len(calls)}

    assert cache.get(24, compute(24)) == {"hours": 24, "n": 1}
    assert cache.get(24, compute(24)) == {"hours": 24, "n": 1}  # kept
    assert cache.get(6, compute(6)) == {"hours": 6, "n": 2}  # another window
    now[0] = 31.0
    assert cache.get(24, compute(24)) == {"hours": 24, "n": 3}  # expired: computed again
    assert calls == [24, 6, 24]


def test_quality_cache_lets_one_request_compute_the_others_get_503():
    cache = QualityCache(ttl_s=30, wait_s=0)
    started, release = threading.Event(), threading.Event()
    results: list[dict] = []

    def slow():
        started.set()
        release.wait()
        return {"slow": True}

    worker = threading.Thread(target=lambda: results.append(cache.get(24, slow)))
    worker.start()
    started.wait()
    with pytest.raises(HTTPException) as refused:  # does not wait behind it, does not compute twice
        cache.get(24, lambda: pytest.fail("computed twice"))
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "30"}
    release.set()
    worker.join()
    assert results == [{"slow": True}] and cache.get(24, lambda: pytest.fail("not kept")) == {"slow": True}
