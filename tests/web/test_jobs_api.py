"""Mining jobs through the API: start (embedded thread, Celery), progress, failures, retry, roles,
validation of sources (allowed folders, URL lists)."""

from __future__ import annotations

import os
import time

import pytest
import redis

from dataengine.serve import create_app
from engine.db.models import ItemStatus, JobItem, MiningJob, StageItem, StageStatus
from engine.db.session import session_scope
from engine.sources.roots import source_roots
from tests.conftest import REDIS_HOST, REDIS_PORT
from tests.factories import bad_corpus, jpeg_bytes, photo

REDIS_DB = int(os.environ.get("DATAENGINE_TEST_JOBS_REDIS_DB", "13"))


@pytest.fixture
def sources(web_settings):
    """The default allowed root: <data_dir>/sources."""
    root = web_settings.data_dir / "sources"
    root.mkdir(parents=True, exist_ok=True)
    return root


def photos(folder, seeds):
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed)))
    return folder


def wait_done(client, job_id, timeout=60.0):
    """Poll GET /jobs/{id} until the job is done and this process's runner has finished it."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}")
        assert job.status_code == 200, job.text
        data = job.json()
        if data["status"] == "done" and (data["runner"] or {}).get("state") in ("finished", "failed"):
            assert data["runner"]["state"] == "finished", data["runner"]
            return data
        assert time.monotonic() < deadline, f"job not done after {timeout}s: {data}"
        time.sleep(0.1)


def test_roles(login, sources):
    for user in ("ann", "rev"):
        client = login(user)
        assert client.get("/api/v1/jobs").status_code == 403
        assert client.get("/api/v1/jobs/1").status_code == 403
        assert client.post("/api/v1/jobs", json={"source": str(sources)}).status_code == 403
        assert client.post("/api/v1/jobs/1/retry").status_code == 403
    assert login("mle").get("/api/v1/jobs").json() == {"total": 0, "mode": "in-process", "jobs": []}
    assert login("root").get("/api/v1/jobs/12345").status_code == 404


def test_start_a_folder_job_embedded_runs_it_to_completion(login, sources, web_settings):
    photos(sources / "photos", range(3))
    client = login("mle")
    started = client.post("/api/v1/jobs", json={"source": "photos", "name": "web-photos", "until": "mine",
                                                "model_profile": "sam3"})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["name"] == "web-photos" and body["source_kind"] == "folder" and body["mode"] == "in-process"
    assert (body["items"], body["new_items"], body["pending"]) == (3, 3, 3)
    job = wait_done(client, body["job_id"])
    assert job["name"] == "web-photos" and job["until"] == "mine" and job["planned_stages"] == ["mine"]
    assert job["model_profile"] == "sam3"  # kept on the job: its model stages would use the real checkpoints
    assert job["source_uri"] == str((sources / "photos").resolve())
    mine = job["stages"][0]
    assert mine["stage"] == "mine" and mine["counts"]["done"] == 3 and mine["total"] == 3
    assert [s["stage"] for s in job["stages"]] == ["mine"] and job["failures"] == []
    listed = client.get("/api/v1/jobs").json()
    assert listed["total"] == 1
    row = listed["jobs"][0]
    assert (row["id"], row["status"], row["item_count"], row["until"]) == (body["job_id"], "done", 3, "mine")
    assert row["counts"] == {"pending": 0, "done": 3, "duplicate": 0, "near_duplicate": 0, "failed": 0}
    # starting the same source again reopens the job: nothing new
    again = client.post("/api/v1/jobs", json={"source": str(sources / "photos"), "name": "web-photos",
                                              "until": "mine"}).json()
    assert (again["job_id"], again["new_items"], again["pending"]) == (body["job_id"], 0, 0)
    wait_done(client, body["job_id"])
    assert client.get("/api/v1/jobs").json()["total"] == 1


def test_a_job_can_prioritise_failures(login, sources):
    photos(sources / "ranked", range(2))
    client = login("mle")
    started = client.post("/api/v1/jobs", json={"source": "ranked", "until": "mine", "prioritise_failures": True})
    assert started.status_code == 202, started.text
    job = wait_done(client, started.json()["job_id"])
    assert job["prioritise_failures"] is True and job["stages"][0]["counts"]["done"] == 2
    assert client.post("/api/v1/jobs", json={"source": "ranked", "prioritise_failures": "often"}).status_code == 422


def test_failures_are_listed_with_reasons_and_paged(login, sources, web_settings):
    expected = bad_corpus(sources / "bad")
    client = login("root")
    job_id = client.post("/api/v1/jobs", json={"source": "bad", "until": "mine"}).json()["job_id"]
    job = wait_done(client, job_id)
    failed = sorted(name for name, status in expected.items() if status == "failed")
    assert job["stages"][0]["counts"]["failed"] == len(failed) == 4
    assert sum(g["count"] for g in job["failures"]) == 4
    assert all(g["reason"].startswith("mine: ") for g in job["failures"])
    first = client.get(f"/api/v1/jobs/{job_id}/failures", params={"stage": "mine", "limit": 3}).json()
    rest = client.get(f"/api/v1/jobs/{job_id}/failures", params={"stage": "mine", "limit": 3, "offset": 3}).json()
    assert first["total"] == rest["total"] == 4 and len(first["items"]) == 3 and len(rest["items"]) == 1
    items = first["items"] + rest["items"]
    assert sorted(i["key"] for i in items) == failed
    assert all(i["stage"] == "mine" and i["error"] and i["attempts"] >= 1 for i in items)
    reasons = {i["key"]: i["error"] for i in items}
    assert "decompression bomb" in reasons["bomb.png"]
    everything = client.get(f"/api/v1/jobs/{job_id}/failures").json()
    assert everything["total"] == 4
    assert client.get(f"/api/v1/jobs/{job_id}/failures", params={"stage": "caption"}).json()["total"] == 0
    assert client.get(f"/api/v1/jobs/{job_id}/failures", params={"stage": "nope"}).status_code == 422
    assert client.get(f"/api/v1/jobs/{job_id}/failures", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/jobs/999/failures").status_code == 404
    listed = client.get("/api/v1/jobs").json()["jobs"][0]
    assert listed["counts"]["failed"] == 4 and listed["counts"]["duplicate"] == 1


def test_failures_of_model_stages_are_listed_too(login, sources, web_settings):
    photos(sources / "few", range(2))
    client = login("root")
    job_id = client.post("/api/v1/jobs", json={"source": "few", "until": "mine"}).json()["job_id"]
    wait_done(client, job_id)
    with session_scope(web_settings.db_url) as s:  # as a failed caption batch leaves it
        image_id = s.query(JobItem.image_id).filter(JobItem.job_id == job_id, JobItem.key == "p1.jpg").scalar()
        s.add(StageItem(job_id=job_id, stage="caption", subject_id=image_id, status=StageStatus.FAILED,
                        error="model call failed: CUDA out of memory", attempts=2))
    page = client.get(f"/api/v1/jobs/{job_id}/failures").json()
    assert page["total"] == 1
    assert page["items"] == [{"stage": "caption", "key": "p1.jpg", "image_id": image_id,
                              "error": "model call failed: CUDA out of memory", "attempts": 2,
                              "at": page["items"][0]["at"]}]
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert [s["stage"] for s in job["stages"]] == ["mine", "caption"]
    assert job["failures"][0] == {"reason": "caption: model call failed: CUDA out of memory", "count": 1,
                                  "example_key": f"image {image_id}"}
    assert client.get("/api/v1/jobs").json()["jobs"][0]["stage_failed"] == 1


def test_retry_runs_the_failed_items_again(login, sources, web_settings):
    folder = photos(sources / "retry", range(2))
    good = jpeg_bytes(photo(7))
    (folder / "late.jpg").write_bytes(good[: len(good) // 3])  # truncated: fails
    client = login("mle")
    job_id = client.post("/api/v1/jobs", json={"source": "retry", "until": "mine"}).json()["job_id"]
    job = wait_done(client, job_id)
    assert job["stages"][0]["counts"]["failed"] == 1 and job["stages"][0]["counts"]["done"] == 2
    (folder / "late.jpg").write_bytes(good)  # the file is complete now
    retried = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    assert (retried.json()["job_id"], retried.json()["retried"], retried.json()["pending"]) == (job_id, 1, 1)
    job = wait_done(client, job_id)
    assert job["stages"][0]["counts"] == {"pending": 0, "done": 3, "duplicate": 0, "near_duplicate": 0, "failed": 0}
    assert client.get(f"/api/v1/jobs/{job_id}/failures").json()["total"] == 0
    assert client.post("/api/v1/jobs/4242/retry").status_code == 404


def test_bad_sources_are_clear_422s(login, sources, web_settings, tmp_path):
    client = login("mle")

    def refused(body, *words, status=422):
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        text = detail if isinstance(detail, str) else str(detail)
        for word in words:
            assert word in text, text
        return text

    refused({"source": "missing-folder"}, "not found")
    refused({"source": str(sources / "missing"), "kind": "folder"}, "folder not found")
    # outside the allowed folders: refused without saying whether the path exists
    outside = photos(tmp_path / "elsewhere", range(1))
    a = refused({"source": str(outside)}, "allowed source folder")
    b = refused({"source": str(tmp_path / "no-such-dir")}, "allowed source folder")
    assert a == b
    refused({"source": "/etc/passwd", "kind": "urls"}, "allowed source folder")
    refused({"source": "../../etc"}, "allowed source folder")
    (sources / "link").symlink_to(outside)  # a symlink out of the root is outside too
    refused({"source": "link"}, "allowed source folder")
    refused({"source": "https://example.com/list.txt"}, "not a URL")
    refused({"source": "bad", "until": "export"}, "unknown stage")
    refused({"source": "bad", "kind": "zip"})
    refused({"source": "bad", "model_profile": "huge"}, "model_profile")
    refused({"source": ""})
    # URL lists: http(s) only
    (sources / "urls.txt").write_text("https://example.com/a.jpg\n# comment\nfile:///etc/passwd\n")
    refused({"source": "urls.txt"}, "line 3", "http(s)")
    photos(sources / "ok", range(1))
    refused({"source": "ok", "images_dir": str(outside)}, "images_dir", "allowed source folder")
    # a name taken by another source
    assert client.post("/api/v1/jobs", json={"source": "ok", "name": "taken", "until": "mine"}).status_code == 202
    (sources / "ok2").mkdir()
    refused({"source": "ok2", "name": "taken"}, "already mines", status=409)
    assert client.get("/api/v1/jobs").json()["total"] == 1
    # wait for the started job before the database goes away
    wait_done(client, client.get("/api/v1/jobs").json()["jobs"][0]["id"])


def test_allowed_roots_default_to_data_dir_sources(web_settings):
    assert source_roots(web_settings) == [(web_settings.data_dir / "sources").resolve()]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("shared_redis")
def test_with_a_broker_the_job_is_enqueued_on_celery(web_settings, sources, login, database_url):
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    queue = redis.Redis.from_url(broker)
    queue.flushdb()
    try:
        web_settings.broker_url = broker
        app = create_app(web_settings)
        from fastapi.testclient import TestClient

        from tests.web.conftest import PASSWORD

        client = TestClient(app)
        me = client.post("/api/v1/auth/login", json={"username": "mle", "password": PASSWORD}).json()
        client.headers["X-CSRF-Token"] = me["csrf_token"]
        photos(sources / "celery", range(2))
        started = client.post("/api/v1/jobs", json={"source": "celery", "until": "mine"})
        assert started.status_code == 202, started.text
        assert started.json()["mode"] == "celery" and started.json()["pending"] == 2
        assert queue.llen("cpu") == 1  # one mining batch, waiting for a worker
        job = client.get(f"/api/v1/jobs/{started.json()['job_id']}").json()
        assert job["status"] == "running" and job["runner"] is None
        assert job["stages"][0]["counts"]["pending"] == 2
        with session_scope(web_settings.db_url) as s:
            assert s.query(MiningJob).count() == 1
            assert s.query(JobItem).filter(JobItem.status == ItemStatus.PENDING).count() == 2
        client.close()
    finally:
        queue.flushdb()
        queue.close()
