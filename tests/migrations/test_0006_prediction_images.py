"""Revision 0006 records, for imports made before it, the images of their rows as the images they
ran on (their masks' images); other versions' masks are not imports."""

from __future__ import annotations

from sqlalchemy import text

import migrations
from engine.db.session import get_engine
from tests.migrations.test_migrations import empty_url  # noqa: F401 - the fixture


def test_upgrade_backfills_the_images_of_earlier_imports(empty_url):  # noqa: F811
    migrations.upgrade(empty_url, "0005")
    with get_engine(empty_url).begin() as conn:
        for vid, kind in ((1, "external"), (2, "proposer")):
            conn.execute(text("INSERT INTO model_versions (id, kind, name, version, params, params_hash, "
                              "random_weights, is_promoted, metrics, created_at) VALUES "
                              "(:id, :kind, :name, '1', '{}', 'h', false, false, '{}', CURRENT_TIMESTAMP)"),
                         {"id": vid, "kind": kind, "name": f"m{vid}"})
        for iid in (1, 2, 3):
            conn.execute(text("INSERT INTO images (id, sha256, phash, phash_b0, phash_b1, phash_b2, phash_b3, width, "
                              "height, format, byte_size, storage_key, created_at) VALUES (:id, :sha, 0, 0, 0, 0, 0, "
                              "4, 4, 'png', 1, 'k', CURRENT_TIMESTAMP)"), {"id": iid, "sha": str(iid) * 64})
        conn.execute(text("INSERT INTO concepts (id, text, created_at) VALUES (1, 'dog', CURRENT_TIMESTAMP)"))
        for pid, iid in ((1, 1), (2, 2), (3, 3)):
            conn.execute(text("INSERT INTO image_concepts (id, image_id, concept_id, polarity, origin, created_at) "
                              "VALUES (:id, :image, 1, 'unknown', 'external', CURRENT_TIMESTAMP)"),
                         {"id": pid, "image": iid})
        # the import left two masks on image 1 and one on image 2; the proposer one on image 3
        for mid, pid, vid in ((1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 3, 2)):
            conn.execute(text("INSERT INTO masks (id, pair_id, model_version_id, rle_counts, height, width, bbox_x, "
                              "bbox_y, bbox_w, bbox_h, area, is_crowd, state, created_at) VALUES (:id, :pair, :v, "
                              "'04', 4, 4, 0, 0, 1, 1, 1, false, 'candidate', CURRENT_TIMESTAMP)"),
                         {"id": mid, "pair": pid, "v": vid})
    migrations.upgrade(empty_url)
    with get_engine(empty_url).connect() as conn:
        rows = conn.execute(text("SELECT model_version_id, image_id FROM prediction_images "
                                 "ORDER BY model_version_id, image_id")).all()
    assert [tuple(r) for r in rows] == [(1, 1), (1, 2)]
