"""GET /api/v1/images/{id}/similar: roles, bounds, 404s, and the planted twin first (tiny SAM 3 pooled
vision features, a real index file)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from annotators.image_embedder import Sam3ImageEmbedder
from engine.db.models import Image as ImageRow
from engine.db.session import session_scope
from engine.services import embeddings, mine
from engine.storage import LocalMediaStore
from tests.factories import jpeg_bytes, photo


@pytest.fixture
def embedded(web_settings, tmp_path, models_cache_dir):
    web_settings.dedup.near_duplicates = False
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(80, 85):
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed)))
    (src / "twin.jpg").write_bytes(jpeg_bytes(photo(82).resize((300, 225)), quality=70))
    store = LocalMediaStore(web_settings.media_path)
    with session_scope(web_settings.db_url) as s:
        plan = mine.plan_job(s, web_settings, str(src), job_name="web-sim")
    with session_scope(web_settings.db_url) as s:
        mine.mine_batch(s, web_settings, store, plan.job_id, plan.pending)
    embedder = Sam3ImageEmbedder(str(models_cache_dir / "tiny" / "sam3"), device="cpu")
    with session_scope(web_settings.db_url) as s:
        ids = list(s.scalars(select(ImageRow.id)))
        embeddings.embed_images(s, store, embedder, ids, data_dir=web_settings.data_dir)
        twin = s.scalar(select(ImageRow.id).where(ImageRow.width == 300))
    return twin, ids


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_similar_images_by_role_and_bounds(login, embedded):
    twin, ids = embedded
    mle = login("mle")
    answer = mle.get(f"/api/v1/images/{twin}/similar", params={"k": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [n["image_id"] for n in body["neighbours"]][0] != twin and len(body["neighbours"]) == 3
    first = body["neighbours"][0]["image_id"]
    back = login("rev").get(f"/api/v1/images/{first}/similar", params={"k": 1}).json()
    assert back["neighbours"][0]["image_id"] == twin  # the planted pair finds each other
    assert login("root").get(f"/api/v1/images/{twin}/similar").status_code == 200
    # annotators too: the queue's task page shows the current image's neighbours (images by id are theirs to read)
    by_annotator = login("ann").get(f"/api/v1/images/{twin}/similar", params={"k": 1})
    assert by_annotator.status_code == 200 and by_annotator.json()["neighbours"][0]["image_id"] == first
    for bad in ({"k": 0}, {"k": 101}, {"k": "x"}, {"version": 0}):
        assert mle.get(f"/api/v1/images/{twin}/similar", params=bad).status_code == 422
    assert mle.get("/api/v1/images/0/similar").status_code == 422
    assert mle.get("/api/v1/images/999999/similar").status_code == 404
    assert mle.get(f"/api/v1/images/{twin}/similar", params={"version": 999}).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_embeddings_is_404_and_anonymous_is_401(app, login):
    from fastapi.testclient import TestClient

    assert login("mle").get("/api/v1/images/1/similar").status_code == 404
    assert TestClient(app).get("/api/v1/images/1/similar").status_code == 401
