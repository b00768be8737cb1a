"""A job started over HTTP names a source inside ``sources.allowed_roots``; a source outside them
(also through a symlink or '..'), a brace range beyond ``sources.max_shard_names`` → 422 with the
reason, and nothing is created. The setting is the real one: DATAENGINE_SOURCES__ALLOWED_ROOTS."""

from __future__ import annotations

import json
import os
import time

import pytest
from fastapi.testclient import TestClient

from dataengine.serve import create_app
from engine.db.session import session_scope
from engine.domain.vocabulary import Role
from engine.services.users import create_user
from engine.sources.roots import source_roots
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo, write_shard
from tests.web.conftest import PASSWORD


@pytest.fixture
def roots(tmp_path):
    made = [tmp_path / "allowed-a", tmp_path / "allowed-b"]
    for root in made:
        root.mkdir()
    return made


@pytest.fixture
def web_settings(web_settings, roots):
    web_settings.sources.allowed_roots = roots
    web_settings.sources.max_shard_names = 50
    return web_settings


def wait_done(client, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/api/v1/jobs/{job_id}").json()
        if data["status"] == "done" and (data["runner"] or {}).get("state") in ("finished", "failed"):
            return data
        assert time.monotonic() < deadline, data
        time.sleep(0.1)


def test_configured_roots_are_used(web_settings, roots):
    assert source_roots(web_settings) == [r.resolve() for r in roots]


def test_sources_outside_the_allowed_roots_are_refused(login, roots, tmp_path, web_settings):
    client = login("mle")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "p.jpg").write_bytes(jpeg_bytes(photo(1)))
    (outside / "secret.txt").write_text("SECRET=1\n")
    os.symlink(outside, roots[0] / "link-out")
    os.symlink(outside / "secret.txt", roots[0] / "list.txt")

    def refused(body, *words):
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 422, response.text
        text = response.text
        for word in words:
            assert word in text, (word, text)
        assert "SECRET" not in text
        return text

    refused({"source": str(outside)}, "allowed source folder", str(roots[0].resolve()), str(roots[1].resolve()))
    refused({"source": str(outside / "missing")}, "allowed source folder")  # existence is not revealed
    refused({"source": "link-out"}, "allowed source folder")  # a symlink inside leading out
    refused({"source": "../outside"}, "allowed source folder")
    refused({"source": "list.txt", "kind": "urls"}, "allowed source folder")
    refused({"source": "/etc/passwd", "kind": "urls"}, "allowed source folder")
    (roots[0] / "urls.txt").write_text("SECRET=1\n")
    refused({"source": "urls.txt"}, "line 1", "http(s)")  # the reason, not the line
    refused({"source": str(roots[0] / "shards" / "{0..2000000}.tar")}, "too many shards", "at most 50")
    assert client.get("/api/v1/jobs").json()["total"] == 0
    # inside either root: accepted
    (roots[1] / "photos").mkdir()
    (roots[1] / "photos" / "p.jpg").write_bytes(jpeg_bytes(photo(2)))
    started = client.post("/api/v1/jobs", json={"source": str(roots[1] / "photos"), "until": "mine"})
    assert started.status_code == 202, started.text
    job = wait_done(client, started.json()["job_id"])
    assert job["stages"][0]["counts"]["done"] == 1


def test_a_brace_range_inside_the_bound_is_accepted(login, roots):
    for n in range(3):
        write_shard(roots[0] / f"s-{n}.tar", [{"__key__": f"k{n}", "jpg": jpeg_bytes(photo(10 + n))}])
    client = login("mle")
    started = client.post("/api/v1/jobs", json={"source": "s-{0..2}.tar", "until": "mine"})
    assert started.status_code == 202, started.text
    assert started.json()["source_kind"] == "webdataset" and started.json()["items"] == 3
    wait_done(client, started.json()["job_id"])


def test_the_environment_variable_restricts_the_job_endpoint(database_url, tmp_path, monkeypatch):
    """DATAENGINE_SOURCES__ALLOWED_ROOTS, read like every setting, is what POST /api/v1/jobs enforces."""
    allowed, other = tmp_path / "env-allowed", tmp_path / "data" / "sources"  # other: the default root
    for folder in (allowed / "photos", other / "photos"):
        folder.mkdir(parents=True)
        (folder / "p.jpg").write_bytes(jpeg_bytes(photo(3)))
    monkeypatch.setenv("DATAENGINE_SOURCES__ALLOWED_ROOTS", json.dumps([str(allowed)]))
    settings = make_settings(database_url, tmp_path)
    assert settings.sources.allowed_roots == [allowed]
    with session_scope(settings.db_url) as s:
        create_user(s, "ops", PASSWORD, Role.ML_ENGINEER)
    with TestClient(create_app(settings)) as client:
        me = client.post("/api/v1/auth/login", json={"username": "ops", "password": PASSWORD}).json()
        client.headers["X-CSRF-Token"] = me["csrf_token"]
        refused = client.post("/api/v1/jobs", json={"source": str(other / "photos"), "until": "mine"})
        assert refused.status_code == 422 and str(allowed.resolve()) in refused.json()["detail"], refused.text
        assert client.get("/api/v1/jobs").json()["total"] == 0
        started = client.post("/api/v1/jobs", json={"source": "photos", "until": "mine"})
        assert started.status_code == 202, started.text
        wait_done(client, started.json()["job_id"])
