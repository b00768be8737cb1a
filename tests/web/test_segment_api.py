"""Click to segment through the API on the tiny random-weight SAM 3 tracker (its masks are noise:
only shapes, sizes, caching and validation are asserted)."""

from __future__ import annotations

from pycocotools import mask as mask_utils

from engine.db.session import session_scope
from tests.factories import seed_review_items


def test_clicks_return_image_sized_masks_and_reuse_the_embedding(login, web_settings, app, models_cache_dir):
    web_settings.models.cache_dir = models_cache_dir
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), size=(96, 64),
                          kinds=("correct",))
    client = login("ann")
    task = client.post("/api/v1/tasks/next").json()
    url = f"/api/v1/tasks/{task['id']}/segment"
    first = client.post(url, json={"points": [[40, 30, 1]]})
    assert first.status_code == 200, first.text
    rle = first.json()["rle"]
    assert rle["size"] == [64, 96]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert decoded.shape == (64, 96) and int(decoded.sum()) == first.json()["area"]
    second = client.post(url, json={"points": [[40, 30, 1], [10, 10, 0]]})
    assert second.status_code == 200
    info = app.state.models.segmenter().cache_info()
    assert (info["misses"], info["hits"]) == (1, 1)  # one embedding for two clicks
    boxed = client.post(url, json={"points": [], "box": [5, 5, 60, 40]})
    assert boxed.status_code == 200 and boxed.json()["rle"]["size"] == [64, 96]


def test_bad_clicks_are_refused(login, web_settings, models_cache_dir):
    web_settings.models.cache_dir = models_cache_dir
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("correct",))
    client, other = login("ann"), login("ann2")
    task = client.post("/api/v1/tasks/next").json()
    url = f"/api/v1/tasks/{task['id']}/segment"
    assert client.post(url, json={"points": []}).status_code == 422
    assert client.post(url, json={"points": [[10, 10, 7]]}).status_code == 422
    assert client.post(url, json={"points": [[500, 10, 1]]}).status_code == 422  # outside the image
    nan = client.post(url, content=b'{"points": [[NaN, 1, 1]]}', headers={"content-type": "application/json"})
    assert nan.status_code == 422
    assert other.post(url, json={"points": [[10, 10, 1]]}).status_code == 409  # not their lease


def test_a_later_click_is_one_statement_no_image_read_and_says_where_its_time_went(
        login, web_settings, app, models_cache_dir):
    """Issue 21: a click on an image whose embedding is cached reads the lease, the image and its hash
    in one statement, never reads the image file, and reports db / model / encode in Server-Timing."""
    from pathlib import Path

    from sqlalchemy import event

    from engine.db.session import get_engine

    web_settings.models.cache_dir = models_cache_dir
    with session_scope(web_settings.db_url) as s:
        seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), size=(96, 64),
                          kinds=("correct",))
    client = login("ann")
    task = client.post("/api/v1/tasks/next").json()
    url = f"/api/v1/tasks/{task['id']}/segment"
    first = client.post(url, json={"points": [[40, 30, 1]]})
    assert first.status_code == 200, first.text
    for path in Path(web_settings.media_path).rglob("*"):  # the embedding is cached: the file is not needed
        if path.is_file():
            path.unlink()
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = get_engine(web_settings.db_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        later = client.post(url, json={"points": [[20, 10, 1]]})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert later.status_code == 200, later.text
    assert len(statements) == 1, statements
    parts = dict(p.strip().split(";dur=") for p in later.headers["server-timing"].split(","))
    assert set(parts) == {"db", "model", "encode"} and all(float(v) >= 0 for v in parts.values())
    body = later.json()
    assert set(body) == {"rle", "bbox", "area", "score"} and body["rle"]["size"] == [64, 96]
    assert mask_utils.area({"size": [64, 96], "counts": body["rle"]["counts"].encode()}) == body["area"]
