"""Sources are confined to their root: sidecars, images and COCO file_names that lead outside (a
symlink, '..', an absolute path) are not read, and no reason quotes a file's content. Brace ranges
are bounded and expanded lazily."""

from __future__ import annotations

import json
import os
import tracemalloc

import pytest
from sqlalchemy import select

from engine.db.models import Caption, ItemStatus, JobItem
from engine.db.session import session_scope
from engine.services.mine import mine_batch, plan_job
from engine.sources import SourceError, open_source
from engine.sources.base import FetchError
from engine.sources.webdataset import ShardRange, expand_shards
from engine.storage import LocalMediaStore
from tests.factories import jpeg_bytes, photo, write_coco, write_shard

SECRET = "WEBHOOK_SECRET=s3cr3t-do-not-leak"


@pytest.fixture
def secret(tmp_path):
    """A file outside every source root whose content must never show up anywhere."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


def mine(settings, uri, **kwargs):
    with session_scope(settings.db_url) as s:
        plan = plan_job(s, settings, str(uri), until="mine", **kwargs)
    with session_scope(settings.db_url) as s:
        mine_batch(s, settings, LocalMediaStore(settings.media_path), plan.job_id, plan.pending)
    with session_scope(settings.db_url) as s:
        items = {i.key: (i.status, i.error, i.source_meta) for i in
                 s.scalars(select(JobItem).where(JobItem.job_id == plan.job_id))}
        captions = list(s.scalars(select(Caption.text)))
    return items, captions


def test_a_symlinked_sidecar_outside_the_folder_is_not_read(settings, tmp_path, secret):
    root = tmp_path / "mined"
    root.mkdir()
    (root / "a.jpg").write_bytes(jpeg_bytes(photo(1)))
    os.symlink(secret, root / "a.txt")
    os.symlink(secret, root / "a.json")
    (root / "b.jpg").write_bytes(jpeg_bytes(photo(2)))
    (root / "b.txt").write_text("a kept caption")
    (root / "c.jpg").write_bytes(jpeg_bytes(photo(3)))
    (root / "c.json").write_text('{"caption": ' + json.dumps(SECRET) + ', oops}')
    items, captions = mine(settings, root)
    status, error, meta = items["a.jpg"]
    assert status is ItemStatus.DONE and error is None  # the image still mines
    assert "captions" not in meta
    assert "a.txt: not read" in meta["sidecar_error"] and "outside the source folder" in meta["sidecar_error"]
    assert "a.json: not read" in meta["sidecar_error"]
    assert items["c.jpg"][0] is ItemStatus.DONE
    assert items["c.jpg"][2]["sidecar_error"] == "c.json: not valid JSON (line 1 col 50)"
    assert captions == ["a kept caption"]
    assert SECRET not in repr(items) and "s3cr3t" not in repr(items)


def test_a_sidecar_symlinked_inside_the_folder_is_read(tmp_path):
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "shared.txt").write_text("a dog")
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(photo(1)))
    os.symlink(tmp_path / "captions" / "shared.txt", tmp_path / "a.txt")
    [item] = list(open_source(str(tmp_path), "folder").iter_items())
    assert item.meta["captions"] == ["a dog"] and "sidecar_error" not in item.meta


def test_a_fifo_or_huge_sidecar_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(photo(1)))
    os.mkfifo(tmp_path / "a.txt")  # reading it would block for ever
    (tmp_path / "a.json").write_bytes(b" " * ((1 << 20) + 1))
    [item] = list(open_source(str(tmp_path), "folder").iter_items())
    assert "a.txt: not read, not a regular file" in item.meta["sidecar_error"]
    assert "a.json: not read, too large" in item.meta["sidecar_error"]


def test_a_symlinked_image_outside_the_folder_fails_alone(settings, tmp_path, secret):
    root = tmp_path / "mined"
    root.mkdir()
    (root / "good.jpg").write_bytes(jpeg_bytes(photo(1)))
    outside_image = secret.parent / "elsewhere.jpg"
    outside_image.write_bytes(jpeg_bytes(photo(2)))
    os.symlink(outside_image, root / "linked.jpg")
    os.symlink(secret, root / "secret.jpg")
    os.mkfifo(root / "pipe.jpg")
    items, _ = mine(settings, root)
    assert items["good.jpg"][0] is ItemStatus.DONE
    for key in ("linked.jpg", "secret.jpg"):
        status, error, _ = items[key]
        assert status is ItemStatus.FAILED and "escapes the source folder" in error and key in error
    assert items["pipe.jpg"][0] is ItemStatus.FAILED and "not a regular file" in items["pipe.jpg"][1]
    assert "s3cr3t" not in repr(items)


def test_coco_file_names_outside_the_images_folder_fail_alone(settings, tmp_path, secret):
    images = tmp_path / "coco" / "images"
    images.mkdir(parents=True)
    (images / "ok.jpg").write_bytes(jpeg_bytes(photo(1)))
    os.symlink(secret, images / "link.jpg")
    coco = tmp_path / "coco" / "ann.json"
    names = ["ok.jpg", "../../outside/secret.txt", str(secret), "link.jpg", "sub/../ok.jpg"]
    write_coco(coco, [{"id": i, "file_name": n} for i, n in enumerate(names)], [], [])
    items, _ = mine(settings, coco, options={"images_dir": str(images)})
    assert items["image:0"][0] is ItemStatus.DONE
    for i in (1, 2, 3):
        status, error, _ = items[f"image:{i}"]
        assert status is ItemStatus.FAILED, (i, error)
        assert "file_name escapes the images folder" in error and names[i] in error
    assert items["image:4"][0] is ItemStatus.DUPLICATE  # '..' that stays inside is fine
    assert "s3cr3t" not in repr(items)


def test_an_invalid_coco_file_reason_does_not_quote_it(tmp_path):
    coco = tmp_path / "ann.json"
    coco.write_text(SECRET)
    with pytest.raises(SourceError) as caught:
        list(open_source(str(coco), "coco").iter_items())
    assert str(caught.value) == "ann.json: not valid JSON (line 1 col 1)"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)
    with pytest.raises(SourceError, match="nested too deeply"):
        list(open_source(str(deep), "coco").iter_items())


def test_a_brace_range_beyond_the_bound_is_refused_in_bounded_memory(tmp_path):
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"too many shards.*2,000,001.*at most 100,000"):
            expand_shards(str(tmp_path / "shards" / "{0..2000000}.tar"))
        with pytest.raises(SourceError, match="too many shards"):  # the product of several ranges
            expand_shards(str(tmp_path / "{0..999}" / "{0..999}.tar"))
        with pytest.raises(SourceError, match="more than 10"):
            expand_shards(str(tmp_path / ("{0..99999999999999999999999999999999999999}.tar")))
        with pytest.raises(SourceError, match="at most 5"):
            open_source(str(tmp_path / "{0..5}.tar"), "webdataset", max_shard_names=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_big_allowed_range_is_lazy(tmp_path):
    names = ShardRange(str(tmp_path / "s-{00000..99999}-{0..1}.tar"))
    assert len(names) == 200_000
    assert names[0].name == "s-00000-0.tar" and names[1].name == "s-00000-1.tar"
    assert names[-1].name == "s-99999-1.tar" and names[12345].name == "s-06172-1.tar"
    tracemalloc.start()
    try:
        first = next(iter(names))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.name == "s-00000-0.tar" and peak < 1 << 16
    for n in range(3):
        write_shard(tmp_path / f"d-{n}.tar", [{"__key__": f"k{n}", "jpg": jpeg_bytes(photo(n))}])
    source = open_source(str(tmp_path / "d-{0..2}.tar"), "webdataset")
    assert not isinstance(source.shards, list)  # a lazy sequence, not a list of names
    assert [i.key for i in source.iter_items()] == ["d-0.tar/k0", "d-1.tar/k1", "d-2.tar/k2"]
    with pytest.raises(SourceError, match=r"shard not found: .*d-3.tar \(\+1 more\)"):
        expand_shards(str(tmp_path / "d-{0..4}.tar"))


def test_read_local_file_reasons_name_the_path_never_the_content(tmp_path, secret):
    source = open_source(str(tmp_path / "outside"), "folder")
    assert source.read({"path": "secret.txt"}) == (SECRET + "\n").encode()  # inside: read
    with pytest.raises(FetchError) as caught:
        open_source(str(tmp_path), "folder").read({"path": "outside/../../../etc/passwd"})
    assert "escapes the source folder" in str(caught.value)


def test_a_url_list_line_that_is_not_a_url_is_not_quoted(tmp_path, secret):
    listing = tmp_path / "list.txt"
    listing.write_text(f"http://127.0.0.1:9/a.jpg\n{SECRET}\n")
    source = open_source(str(listing), "urls")
    items = list(source.iter_items())
    assert [i.key for i in items] == ["http://127.0.0.1:9/a.jpg", "line:2"]
    with pytest.raises(FetchError) as caught:
        source.read(items[1].locator)
    assert str(caught.value) == "line 2 is not a URL"
    assert "s3cr3t" not in repr(items)


def test_a_shard_symlinked_out_of_the_folder_fails_alone(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_shard(outside / "far.tar", [{"__key__": "x", "jpg": jpeg_bytes(photo(5)), "txt": SECRET}])
    shards = tmp_path / "shards"
    shards.mkdir()
    write_shard(shards / "a.tar", [{"__key__": "k", "jpg": jpeg_bytes(photo(6))}])
    os.symlink(outside / "far.tar", shards / "b.tar")
    for uri in (str(shards), str(shards / "*.tar"), str(shards / "{a,b}.tar").replace("{a,b}", "[ab]")):
        items = list(open_source(uri, "webdataset").iter_items())
        assert [i.key for i in items] == ["a.tar/k", "far.tar/#shard-error"], uri
        assert "outside the source folder" in items[1].locator["error"]
        assert "s3cr3t" not in repr(items)
