"""Exports through the API: roles, starting one, listing snapshots, manifests, validation."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from pycocotools.coco import COCO

from engine.db.session import session_scope
from tests.factories import seed_labelled


def seed(web_settings):
    with session_scope(web_settings.db_url) as s:
        return seed_labelled(s, web_settings.media_path)


def test_roles(app, login, web_settings):
    seed(web_settings)
    assert TestClient(app).get("/api/v1/exports").status_code == 401
    for user in ("ann", "rev"):
        client = login(user)
        assert client.get("/api/v1/exports").status_code == 403
        assert client.get("/api/v1/exports/1").status_code == 403
        assert client.post("/api/v1/exports", json={"format": "coco"}).status_code == 403
    assert not (web_settings.data_dir / "exports").exists()
    assert login("root").post("/api/v1/exports", json={"format": "saco"}).status_code == 201
    assert login("mle").get("/api/v1/exports").json()["total"] == 1


def test_start_list_and_read_an_export(login, web_settings):
    ids = seed(web_settings)
    client = login("mle")
    body = {"format": "coco", "filters": {"label_source": "human", "val_percent": 0, "concepts": ["dog", "cat"]}}
    started = client.post("/api/v1/exports", json=body)
    assert started.status_code == 201, started.text
    data = started.json()
    snapshot = data["snapshot"]
    assert data["reused"] is False and snapshot["format"] == "coco" and snapshot["present"] is True
    assert snapshot["name"].startswith("coco-") and snapshot["folder"] == f"exports/{snapshot['name']}"
    folder = web_settings.data_dir / snapshot["folder"]
    coco = COCO(str(folder / "instances_train.json"))
    assert set(coco.getAnnIds()) == {ids[k] for k in ("dog0_m0", "dog2_m0", "dog2_drawn", "dog3_m0")}
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == data["manifest"] and on_disk["filters"]["concepts"] == ["cat", "dog"]
    assert [p.name for p in folder.parent.iterdir()] == [snapshot["name"]]  # no staging left over
    again = client.post("/api/v1/exports", json=body).json()
    assert again["reused"] is True and again["snapshot"]["id"] == snapshot["id"]
    got = client.get(f"/api/v1/exports/{snapshot['id']}", params={"verify": "true"}).json()
    assert got["manifest"] == data["manifest"] and got["mismatched_files"] == []
    assert got["created_by_id"] is not None
    (folder / "instances_train.json").write_text("{}")
    tampered = client.get(f"/api/v1/exports/{snapshot['id']}", params={"verify": "true"}).json()
    assert tampered["mismatched_files"] == ["instances_train.json"]
    named = client.post("/api/v1/exports", json={"format": "verifier", "name": "verifier-v1"})
    assert named.status_code == 201 and (web_settings.data_dir / "exports" / "verifier-v1" / "mv.train.jsonl").is_file()
    listing = client.get("/api/v1/exports").json()
    assert listing["total"] == 2 and [s["name"] for s in listing["snapshots"]] == ["verifier-v1", snapshot["name"]]
    assert client.get("/api/v1/exports/999").status_code == 404


def test_validation(login, web_settings):
    seed(web_settings)
    client = login("mle")
    for body in ({"format": "yolo"}, {"format": "coco", "name": "../../etc"}, {"format": "coco", "name": ".hidden"},
                 {"format": "coco", "filters": {"label_source": "robots"}},
                 {"format": "coco", "filters": {"min_agreement": 2}},
                 {"format": "coco", "filters": {"val_percent": -1}}):
        assert client.post("/api/v1/exports", json=body).status_code == 422, body
    unknown = client.post("/api/v1/exports", json={"format": "coco", "filters": {"concepts": ["unicorn"]}})
    assert unknown.status_code == 422 and "unknown concept" in unknown.json()["detail"]
    job = client.post("/api/v1/exports", json={"format": "coco", "filters": {"jobs": ["nope"]}})
    assert job.status_code == 422 and "no mining job" in job.json()["detail"]
    assert client.post("/api/v1/exports", json={"format": "coco", "name": "v1"}).status_code == 201
    taken = client.post("/api/v1/exports", json={"format": "saco", "name": "v1"})
    assert taken.status_code == 409 and "other contents" in taken.json()["detail"]
    assert client.get("/api/v1/exports").json()["total"] == 1
    assert sorted(p.name for p in (web_settings.data_dir / "exports").iterdir()) == ["v1"]
