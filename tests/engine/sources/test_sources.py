import json

import pytest

from engine.settings import FetchSettings
from engine.sources import SourceError, detect_kind, open_source
from engine.sources.base import FetchError
from engine.sources.webdataset import expand_shards
from tests.factories import jpeg_bytes, photo, write_coco, write_shard

IMG = jpeg_bytes(photo(1))


def test_folder_lists_images_recursively_with_sidecars(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b.jpg").write_bytes(IMG)
    (tmp_path / "b.txt").write_text("a red ball\n")
    (tmp_path / "sub" / "a.PNG").write_bytes(IMG)
    (tmp_path / "sub" / "a.json").write_text(json.dumps({"alt_text": "a dog", "license": "cc0"}))
    (tmp_path / "readme.md").write_text("not an image")
    (tmp_path / ".hidden" / "c.jpg").write_bytes(IMG)
    (tmp_path / "broken.jpg").write_bytes(IMG)
    (tmp_path / "broken.json").write_text("{not json")
    source = open_source(str(tmp_path))
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["b.jpg", "broken.jpg", "sub/a.PNG"]
    assert items["b.jpg"].meta["captions"] == ["a red ball"]
    assert items["sub/a.PNG"].meta["captions"] == ["a dog"]
    assert items["sub/a.PNG"].meta["extra"]["license"] == "cc0"
    assert items["broken.jpg"].meta["sidecar_error"] == "broken.json: not valid JSON (line 1 col 2)"
    assert source.read(items["b.jpg"].locator) == IMG


def test_folder_refuses_paths_outside_the_root(tmp_path):
    source = open_source(str(tmp_path), "folder")
    with pytest.raises(FetchError, match="escapes"):
        source.read({"path": "../../etc/passwd"})
    with pytest.raises(FetchError, match="file not found"):
        source.read({"path": "gone.jpg"})


def test_url_list_text(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("# header comment\nhttp://a/1.jpg\n\nhttps://b/2.png\tA caption\nhttp://a/1.jpg\n")
    items = list(open_source(str(path)).iter_items())
    assert [i.key for i in items] == ["http://a/1.jpg", "https://b/2.png", "http://a/1.jpg"]
    assert items[1].meta == {"line": 4, "captions": ["A caption"]}
    assert items[0].locator == {"url": "http://a/1.jpg"}


def test_url_list_csv_and_tsv(tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text('URL,caption\nhttp://a/1.jpg,"a cat, sleeping"\n,empty\n')
    items = list(open_source(str(csv_path)).iter_items())
    assert [(i.key, i.meta.get("captions")) for i in items] == [("http://a/1.jpg", ["a cat, sleeping"])]
    tsv = tmp_path / "list.tsv"
    tsv.write_text("id\turl\n1\thttp://a/2.jpg\n")
    assert [i.key for i in open_source(str(tsv)).iter_items()] == ["http://a/2.jpg"]
    bad = tmp_path / "bad.csv"
    bad.write_text("link,caption\nhttp://x,y\n")
    with pytest.raises(SourceError, match="no 'url' column"):
        list(open_source(str(bad)).iter_items())


def test_webdataset_groups_members_into_samples(tmp_path):
    shard = tmp_path / "shard-000.tar"
    write_shard(shard, [
        {"__key__": "s0", "jpg": IMG, "txt": "first caption", "json": json.dumps({"caption": "from json"})},
        {"__key__": "s1", "png": IMG},
        {"__key__": "s2", "txt": "caption without an image"},
    ])
    source = open_source(str(shard))
    assert source.kind == "webdataset"
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["shard-000.tar/s0", "shard-000.tar/s1", "shard-000.tar/s2"]
    assert items["shard-000.tar/s0"].meta["captions"] == ["first caption", "from json"]
    assert source.read(items["shard-000.tar/s0"].locator) == IMG
    assert source.read(items["shard-000.tar/s1"].locator) == IMG
    with pytest.raises(FetchError, match="sample has no image member"):
        source.read(items["shard-000.tar/s2"].locator)


def test_webdataset_brace_glob_and_folder(tmp_path):
    for n in range(3):
        write_shard(tmp_path / f"d-{n:03d}.tar", [{"__key__": f"k{n}", "jpg": IMG}])
    expanded = expand_shards(str(tmp_path / "d-{000..002}.tar"))
    assert [p.name for p in expanded] == ["d-000.tar", "d-001.tar", "d-002.tar"]
    assert len(expand_shards(str(tmp_path / "d-*.tar"))) == 3
    assert detect_kind(str(tmp_path)) == "webdataset"
    assert len(list(open_source(str(tmp_path)).iter_items())) == 3
    with pytest.raises(SourceError, match="shard not found"):
        expand_shards(str(tmp_path / "d-{000..005}.tar"))


def test_webdataset_corrupt_shard_is_a_failed_item(tmp_path):
    shard = tmp_path / "bad.tar"
    shard.write_bytes(b"\x00garbage" * 100)
    items = list(open_source(str(shard)).iter_items())
    assert len(items) == 1 and "error" in items[0].locator


def test_webdataset_truncated_member_read(tmp_path):
    shard = tmp_path / "t.tar"
    write_shard(shard, [{"__key__": "a", "jpg": IMG}])
    item = next(open_source(str(shard)).iter_items())
    shard.write_bytes(shard.read_bytes()[: item.locator["offset"] + 100])
    with pytest.raises(FetchError, match="shard truncated"):
        open_source(str(shard)).read(item.locator)


def test_coco_images_captions_and_annotations(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(IMG)
    coco = tmp_path / "ann.json"
    write_coco(coco,
               images=[{"id": 1, "file_name": "a.jpg", "width": 320, "height": 240},
                       {"id": 2, "coco_url": "http://127.0.0.1:9/x.jpg"}, {"id": 3}],
               annotations=[{"id": 10, "image_id": 1, "caption": "two dogs"},
                            {"id": 11, "image_id": 1, "category_id": 5, "iscrowd": 0,
                             "segmentation": [[10, 10, 50, 10, 50, 50]], "bbox": [10, 10, 40, 40]}],
               categories=[{"id": 5, "name": "Dog"}])
    source = open_source(str(coco), options={"images_dir": str(tmp_path / "imgs")}, fetch=FetchSettings())
    items = {i.key: i for i in source.iter_items()}
    assert items["image:1"].meta["captions"] == ["two dogs"]
    assert items["image:1"].meta["declared_size"] == [240, 320]
    assert items["image:1"].meta["annotations"][0]["category"] == "Dog"
    assert items["image:2"].locator == {"url": "http://127.0.0.1:9/x.jpg"}
    assert "error" in items["image:3"].locator
    assert source.read(items["image:1"].locator) == IMG


@pytest.mark.parametrize("content", ["{not json", json.dumps({"annotations": []}), json.dumps([1, 2])])
def test_coco_malformed_file(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SourceError):
        list(open_source(str(path)).iter_items())


def test_detect_kind_and_missing_sources(tmp_path):
    assert detect_kind(str(tmp_path)) == "folder"
    assert detect_kind("x.json") == "coco"
    assert detect_kind("x.csv") == "urls"
    with pytest.raises(SourceError, match="source not found"):
        detect_kind(str(tmp_path / "nothing"))
    with pytest.raises(SourceError, match="folder not found"):
        open_source(str(tmp_path / "nothing"), "folder")
    with pytest.raises(SourceError, match="unknown source kind"):
        open_source(str(tmp_path), "s3")
