"""The mining service on SQLite and PostgreSQL: statuses, dedup, atomicity, idempotency."""

from __future__ import annotations

import json

import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import func, select

from engine.db.models import (
    Caption,
    Concept,
    Image,
    ImageConcept,
    ItemStatus,
    JobItem,
    JobStatus,
    Mask,
    MiningJob,
)
from engine.db.session import session_scope
from engine.services import flow, mine
from engine.storage import LocalMediaStore
from tests.factories import bad_corpus, jpeg_bytes, photo, rotated_jpeg, write_coco, write_shard
from tests.httpserver import flaky, send, slow


def mine_all(settings, source, batch_size=3, **kwargs):
    """Plan in one transaction, then each batch in its own, as the task wrapper does."""
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(source), until="mine", **kwargs)
    store = LocalMediaStore(settings.media_path)
    for i in range(0, len(plan.pending), batch_size):
        with session_scope(settings.db_url) as s:
            mine.mine_batch(s, settings, store, plan.job_id, plan.pending[i:i + batch_size])
    with session_scope(settings.db_url) as s:
        flow.finish_if_complete(s, plan.job_id)
    return plan


def statuses(session, job_id):
    return dict(session.execute(select(JobItem.key, JobItem.status).where(JobItem.job_id == job_id)).all())


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def stored_files(settings):
    return sorted(p for p in settings.media_path.rglob("*") if p.is_file())


def test_bad_corpus_yields_the_right_statuses(settings, tmp_path):
    expected = bad_corpus(tmp_path / "src")
    plan = mine_all(settings, tmp_path / "src")
    with session_scope(settings.db_url) as s:
        assert {k: v.value for k, v in statuses(s, plan.job_id).items()} == expected
        items = {i.key: i for i in s.scalars(select(JobItem).where(JobItem.job_id == plan.job_id))}
        assert items["empty.jpg"].error == "empty file (0 bytes)"
        assert items["text.jpg"].error == "not an image: unrecognised file format"
        assert items["truncated.jpg"].error.startswith("corrupt or truncated image")
        assert items["bomb.png"].error.startswith("decompression bomb")
        # duplicates are linked to the kept image, not dropped
        assert items["zz-copy-of-good.jpg"].image_id == items["good.jpg"].image_id
        near = s.get(Image, items["zz-reencoded-good.jpg"].image_id)
        assert near.duplicate_of_id == items["good.jpg"].image_id
        assert 0 <= items["zz-reencoded-good.jpg"].duplicate_distance <= settings.dedup.phash_distance
        assert all(i.attempts == 1 for i in items.values())
        # exactly the kept images exist, as rows and as files
        assert count(s, Image) == 3
        keys = sorted(settings.media_path / img.storage_key for img in s.scalars(select(Image)))
        job = s.get(MiningJob, plan.job_id)
        assert job.status is JobStatus.DONE and job.item_count == 8 and job.finished_at
    assert stored_files(settings) == keys


def test_rerun_is_idempotent_and_picks_up_new_files(settings, tmp_path):
    src = tmp_path / "src"
    bad_corpus(src)
    first = mine_all(settings, src, job_name="j")
    with session_scope(settings.db_url) as s:
        before = (count(s, Image), count(s, JobItem), statuses(s, first.job_id))
    again = mine_all(settings, src, job_name="j")
    assert again.job_id == first.job_id and again.new_items == 0 and again.pending == []
    with session_scope(settings.db_url) as s:
        assert (count(s, Image), count(s, JobItem), statuses(s, first.job_id)) == before
    (src / "new.jpg").write_bytes(jpeg_bytes(photo(50)))
    third = mine_all(settings, src, job_name="j")
    assert third.new_items == 1 and len(third.pending) == 1
    with session_scope(settings.db_url) as s:
        assert statuses(s, first.job_id)["new.jpg"] is ItemStatus.DONE
        assert count(s, Image) == before[0] + 1


def test_retry_failed_items(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "later.jpg").write_bytes(b"")
    plan = mine_all(settings, src, job_name="r")
    (src / "later.jpg").write_bytes(jpeg_bytes(photo(9)))
    assert mine_all(settings, src, job_name="r").pending == []  # failed items stay failed...
    retry = mine_all(settings, src, job_name="r", retry_failed=True)  # ...unless asked
    assert retry.retried == 1
    with session_scope(settings.db_url) as s:
        item = s.scalars(select(JobItem).where(JobItem.job_id == plan.job_id)).one()
        assert item.status is ItemStatus.DONE and item.error is None and item.attempts == 2


def test_same_name_other_source_is_refused(settings, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine_all(settings, tmp_path / "a", job_name="x")
    with pytest.raises(mine.JobConflict, match="already mines"):
        mine_all(settings, tmp_path / "b", job_name="x")


def test_captions_from_sidecars_attach_to_the_kept_image(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = jpeg_bytes(photo(3))
    (src / "a.jpg").write_bytes(data)
    (src / "a.txt").write_text("a blue circle")
    (src / "b.jpg").write_bytes(data)
    (src / "b.txt").write_text("round blue shape")
    mine_all(settings, src)
    with session_scope(settings.db_url) as s:
        image = s.scalars(select(Image)).one()
        texts = sorted(s.scalars(select(Caption.text).where(Caption.image_id == image.id)))
        assert texts == ["a blue circle", "round blue shape"]


def test_exif_rotated_image_is_stored_upright(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "r.jpg").write_bytes(rotated_jpeg(photo(4, (300, 100)), orientation=8))
    mine_all(settings, src)
    with session_scope(settings.db_url) as s:
        image = s.scalars(select(Image)).one()
        assert (image.width, image.height) == (100, 300)


def test_near_duplicates_can_be_turned_off(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(photo(1)))
    (src / "b.jpg").write_bytes(jpeg_bytes(photo(1), quality=50))
    settings.dedup.near_duplicates = False
    plan = mine_all(settings, src)
    with session_scope(settings.db_url) as s:
        assert set(statuses(s, plan.job_id).values()) == {ItemStatus.DONE}


def test_url_list_against_a_local_server(settings, tmp_path, http_server):
    good, second = jpeg_bytes(photo(11)), jpeg_bytes(photo(12))
    cap = max(len(good), len(second)) + 1024
    http_server.image("/ok.jpg", good)
    http_server.routes["/flaky.jpg"] = flaky(1, second)
    http_server.routes["/slow.jpg"] = slow(3.0)
    http_server.routes["/page.html"] = lambda h, n: send(h, 200, b"<html/>", "text/html")
    http_server.image("/huge.jpg", good + b"\0" * cap)
    http_server.image("/text.jpg", b"plain text pretending", "application/octet-stream")
    lines = [http_server.url(p) for p in ("/ok.jpg", "/flaky.jpg", "/missing.jpg", "/slow.jpg",
                                          "/page.html", "/huge.jpg", "/text.jpg")]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join([lines[0] + "\tan image with a caption", *lines[1:], "ftp://nope/x.jpg"]) + "\n")
    settings.fetch.max_bytes = cap
    plan = mine_all(settings, listing, batch_size=8)
    assert plan.queue == "io"
    with session_scope(settings.db_url) as s:
        items = {i.locator["url"]: i for i in s.scalars(select(JobItem).where(JobItem.job_id == plan.job_id))}
        got = {url.rsplit("/", 1)[-1]: (i.status.value, i.error) for url, i in items.items()}
        assert got["ok.jpg"] == ("done", None)
        assert got["flaky.jpg"] == ("done", None)
        assert got["missing.jpg"] == ("failed", "HTTP 404 Not Found")
        assert got["slow.jpg"][0] == "failed" and "timed out" in got["slow.jpg"][1]
        assert got["page.html"] == ("failed", "not an image: the server sent content type text/html")
        assert got["huge.jpg"][0] == "failed" and got["huge.jpg"][1].startswith("too large")
        assert got["text.jpg"] == ("failed", "not an image: unrecognised file format")
        assert got["x.jpg"] == ("failed", "refused by the outbound-fetch policy: only http and https URLs are fetched")
        ok = s.get(Image, items[lines[0]].image_id)
        assert ok.source_uri == lines[0]
        assert s.scalars(select(Caption.text)).all() == ["an image with a caption"]


def test_webdataset_job(settings, tmp_path):
    shard = tmp_path / "data-000.tar"
    write_shard(shard, [{"__key__": f"{n:04d}", "jpg": jpeg_bytes(photo(100 + n)), "txt": f"caption {n}"}
                        for n in range(5)] + [{"__key__": "9999", "txt": "orphan"}])
    plan = mine_all(settings, shard)
    with session_scope(settings.db_url) as s:
        st = statuses(s, plan.job_id)
        assert [st[f"data-000.tar/{n:04d}"] for n in range(5)] == [ItemStatus.DONE] * 5
        assert st["data-000.tar/9999"] is ItemStatus.FAILED
        assert count(s, Caption) == 5


def _coco_fixture(tmp_path, bad_annotation=False):
    (tmp_path / "img").mkdir()
    a, b = photo(21, (64, 48)), photo(22, (64, 48))
    (tmp_path / "img" / "a.jpg").write_bytes(jpeg_bytes(a))
    (tmp_path / "img" / "b.jpg").write_bytes(jpeg_bytes(b))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[30, 5, 60, 5, 60, 40]], "iscrowd": 1},
        {"id": 3, "image_id": 1, "caption": "a cat next to a bowl"},
        {"id": 4, "image_id": 2, "category_id": 1,
         "segmentation": {"size": [99, 99], "counts": "x"} if bad_annotation else [[1, 1, 9, 1, 9, 9]]},
    ]
    write_coco(tmp_path / "coco.json",
               images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                       {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
                       {"id": 3, "file_name": "missing.jpg"}],
               annotations=anns, categories=[{"id": 1, "name": "Cat"}, {"id": 2, "name": "Food bowl"}])
    return tmp_path / "coco.json"


def test_coco_job_imports_captions_and_masks(settings, tmp_path):
    path = _coco_fixture(tmp_path)
    plan = mine_all(settings, path, options={"images_dir": str(tmp_path / "img")})
    with session_scope(settings.db_url) as s:
        st = statuses(s, plan.job_id)
        assert st == {"image:1": ItemStatus.DONE, "image:2": ItemStatus.DONE, "image:3": ItemStatus.FAILED}
        assert sorted(s.scalars(select(Concept.text))) == ["cat", "food bowl"]
        assert count(s, ImageConcept) == 3
        masks = s.scalars(select(Mask)).all()
        assert len(masks) == 3 and sum(m.is_crowd for m in masks) == 1
        for m in masks:
            decoded = mask_utils.decode({"size": [m.height, m.width], "counts": m.rle_counts.encode()})
            assert decoded.shape == (48, 64) and decoded.sum() == m.area > 0
        assert s.scalars(select(Caption.text)).all() == ["a cat next to a bowl"]
    # mining the same file again under another job adds no second copy of the masks
    mine_all(settings, path, job_name="again", options={"images_dir": str(tmp_path / "img")})
    with session_scope(settings.db_url) as s:
        assert count(s, Mask) == 3 and count(s, Caption) == 1


def test_a_bad_annotation_is_recorded_and_the_image_keeps_the_rest(settings, tmp_path):
    """One bad annotation no longer fails its image (issue 16): the image is mined, the reason kept."""
    path = _coco_fixture(tmp_path, bad_annotation=True)
    plan = mine_all(settings, path, options={"images_dir": str(tmp_path / "img")})
    with session_scope(settings.db_url) as s:
        items = {i.key: i for i in s.scalars(select(JobItem).where(JobItem.job_id == plan.job_id))}
        assert items["image:2"].status is ItemStatus.DONE
        [reason] = items["image:2"].source_meta["annotation_errors"]
        assert reason == "annotation 4: RLE counts hold a character outside COCO's alphabet ('0'…'o')"
        assert count(s, Image) == 2
        assert count(s, ImageConcept) == 2 and count(s, Mask) == 2
        assert items["image:1"].status is ItemStatus.DONE


def test_batches_run_twice_change_nothing(settings, tmp_path):
    """A redelivered task (acks_late) must be harmless."""
    src = tmp_path / "src"
    bad_corpus(src)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src))
    store = LocalMediaStore(settings.media_path)
    for _ in range(2):
        with session_scope(settings.db_url) as s:
            report = mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
    assert report.counts["skipped"] == len(plan.pending)
    with session_scope(settings.db_url) as s:
        assert count(s, Image) == 3


def test_source_missing_at_mining_time_fails_items_with_reason(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(photo(1)))
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src))
    (src / "a.jpg").unlink()
    src.rmdir()
    with session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id, plan.pending)
        item = s.scalars(select(JobItem)).one()
        assert item.status is ItemStatus.FAILED and "folder not found" in item.error


def test_source_options_are_kept_on_the_job(settings, tmp_path):
    path = _coco_fixture(tmp_path)
    plan = mine_all(settings, path, options={"images_dir": str(tmp_path / "img"), "unused": None})
    with session_scope(settings.db_url) as s:
        assert s.get(MiningJob, plan.job_id).options == {"images_dir": str(tmp_path / "img"), "until": "mine"}
        assert json.dumps(s.get(MiningJob, plan.job_id).options)
