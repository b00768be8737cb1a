"""Listing never dies on one item (issue 16): every hostile name, entry, member or line becomes one
item with a reason (or a recorded annotation error) and the rest is listed. Real files, no mocks."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from engine.settings import ImageLimits, Settings, SourceSettings
from engine.sources import SourceError, open_source
from engine.sources.base import FetchError, escape_name, json_safe, safe_text
from engine.sources.urls import MAX_LINE_CHARS
from tests.factories import jpeg_bytes, photo, write_coco

IMG = jpeg_bytes(photo(1, (64, 48)))
ROOT = Path(__file__).resolve().parents[3]


def listed(uri: str | Path, kind: str | None = None, **kwargs) -> dict:
    return {i.key: i for i in open_source(str(uri), kind, **kwargs).iter_items()}


def storable(items: dict) -> None:
    """What a source lists can be written by both databases: UTF-8 text, no NUL, no NaN."""
    for item in items.values():
        item.key.encode("utf-8")
        assert "\x00" not in item.key
        json.dumps(item.locator, allow_nan=False).encode("utf-8")
        text = json.dumps(item.meta, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")  # no lone surrogate
        assert "\\u0000" not in text


# --- folder -----------------------------------------------------------------------------------

def test_a_name_that_is_not_utf8_is_listed_escaped_and_read_back(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"
    with open(raw, "wb") as handle:
        handle.write(IMG)
    with open(os.fsencode(str(tmp_path)) + b"/caf\xe9.txt", "wb") as handle:
        handle.write(b"a caption")
    with open(os.fsencode(str(tmp_path)) + b"/bad\xff.json", "wb") as handle:
        handle.write(b"{broken")
    with open(os.fsencode(str(tmp_path)) + b"/bad\xff.jpg", "wb") as handle:
        handle.write(IMG)
    (tmp_path / "good.jpg").write_bytes(IMG)
    source = open_source(str(tmp_path))
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["bad\\xff.jpg", "caf\\xe9.jpg", "good.jpg"]
    storable(items)
    assert items["caf\\xe9.jpg"].meta["captions"] == ["a caption"]
    assert items["bad\\xff.jpg"].meta["sidecar_error"].startswith("bad\\xff.json: not valid JSON")
    assert source.read(items["caf\\xe9.jpg"].locator) == IMG  # the raw bytes kept in the locator
    assert source.read(items["good.jpg"].locator) == IMG


def test_a_symlink_loop_fails_alone(tmp_path):
    (tmp_path / "good.jpg").write_bytes(IMG)
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    os.symlink("loop.txt", tmp_path / "good.txt")  # a looping sidecar is skipped with its reason
    source = open_source(str(tmp_path))
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["a.jpg", "b.jpg", "good.jpg", "loop.jpg"]
    for key in ("a.jpg", "b.jpg", "loop.jpg"):
        with pytest.raises(FetchError, match="symlink loop"):
            source.read(items[key].locator)
    assert source.read(items["good.jpg"].locator) == IMG
    assert "good.txt: not read" in items["good.jpg"].meta["sidecar_error"]


def test_a_folder_that_vanishes_during_the_walk_is_an_error_item(tmp_path):
    (tmp_path / "first.jpg").write_bytes(IMG)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.jpg").write_bytes(IMG)
    items = open_source(str(tmp_path)).iter_items()
    assert next(items).key == "first.jpg"  # the walk has listed the top folder
    shutil.rmtree(tmp_path / "b")
    rest = {i.key: i for i in items}
    assert sorted(rest) == ["a/x.jpg", "b/#unreadable"]
    reason = rest["b/#unreadable"].locator["error"]
    assert reason.startswith("folder b cannot be listed") and "No such file" in reason


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root without setpriv")
def test_a_folder_without_permission_is_an_error_item(tmp_path):
    (tmp_path / "good.jpg").write_bytes(IMG)
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.jpg").write_bytes(IMG)
    (tmp_path / "locked").chmod(0)
    script = ("import json, sys; from engine.sources import open_source; "
              "print(json.dumps({i.key: i.locator for i in open_source(sys.argv[1]).iter_items()}))")
    command = [sys.executable, "-c", script, str(tmp_path)]
    if os.geteuid() == 0:  # root reads any folder: drop the capabilities that let it
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *command]
    try:
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=True).stdout
    finally:
        (tmp_path / "locked").chmod(0o755)
    items = json.loads(out)
    assert sorted(items) == ["good.jpg", "locked/#unreadable"]
    assert items["locked/#unreadable"]["error"].startswith("folder locked cannot be listed: Permission denied")


def test_local_files_are_capped(tmp_path):
    (tmp_path / "big.jpg").write_bytes(IMG + b"\0" * 4096)
    (tmp_path / "small.jpg").write_bytes(IMG)
    source = open_source(str(tmp_path), max_file_bytes=len(IMG) + 100)
    items = {i.key: i for i in source.iter_items()}
    with pytest.raises(FetchError, match="too large"):
        source.read(items["big.jpg"].locator)
    assert source.read(items["small.jpg"].locator) == IMG
    assert ImageLimits().max_file_bytes == 64 * 1024 * 1024
    assert Settings(limits={"max_file_bytes": 2048}).limits.max_file_bytes == 2048


# --- COCO --------------------------------------------------------------------------------------

def _coco(tmp_path: Path, images: list, annotations: list, categories: list | None = None) -> Path:
    (tmp_path / "a.jpg").write_bytes(IMG)
    write_coco(tmp_path / "coco.json", images, annotations,
               categories if categories is not None else [{"id": 1, "name": "cat"}])
    return tmp_path / "coco.json"


def test_coco_bad_ids_and_duplicates_are_error_items(tmp_path):
    images = [
        {"id": 1, "file_name": "a.jpg"},
        {"id": [2], "file_name": "a.jpg"},
        {"id": {"x": 1}, "file_name": "a.jpg"},
        {"id": 1, "file_name": "a.jpg"},  # duplicate
        {"id": "1", "file_name": "a.jpg"},  # the same key as 1
        {"id": 3.5, "file_name": "a.jpg"},
        {"id": True, "file_name": "a.jpg"},
        "not an object",
        {"id": -4, "file_name": "a.jpg"},  # negative ids are ids
        {"id": 5, "file_name": ["a.jpg"]},
        {"id": 6, "file_name": "a\udce9.jpg"},
        {"id": "x" * 500, "file_name": "a.jpg"},
    ]
    anns = [
        {"id": 10, "image_id": [1], "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        {"id": 11, "image_id": {"a": 1}, "caption": "x"},
        {"id": 12, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        7,
        {"id": 13, "image_id": 99, "caption": "an image the file does not list"},
        {"id": 14, "image_id": 99, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]},
    ]
    items = listed(_coco(tmp_path, images, anns))
    storable(items)
    errors = {k: i.locator.get("error") for k, i in items.items()}
    assert errors["image:1"] is None and len(items["image:1"].meta["annotations"]) == 1
    assert errors["index:1"] == "image at index 1: id is a list, not an integer or a string"
    assert errors["index:2"] == "image at index 2: id is a dict, not an integer or a string"
    assert errors["index:3"] == "duplicate image id 1, first at index 0"
    assert errors["index:4"] == "duplicate image id 1, first at index 0"
    assert errors["index:5"] == "image at index 5: id is a float, not an integer or a string"
    assert errors["index:6"] == "image at index 6: id is a bool, not an integer or a string"
    assert errors["index:7"] == "image entry is not an object"
    assert errors["image:-4"] is None
    assert errors["image:5"] == "file_name is a list, not a string"
    assert errors["image:6"].startswith("file_name holds characters")
    assert errors["index:11"].startswith("image at index 11: id is a string of 500 characters")
    assert errors["annotation-index:0"] == "annotation at index 0: image_id is a list, not an integer or a string"
    assert errors["annotation-index:1"] == "annotation at index 1: image_id is a dict, not an integer or a string"
    assert errors["annotation-index:3"] == "annotation at index 3 is not an object"
    assert errors["annotations-of:99"] == "2 annotation(s) refer to image id 99, which the file does not list"
    assert len(items) == 16


def test_coco_bad_annotations_are_recorded_and_the_good_ones_kept(tmp_path):
    nan, inf = float("nan"), float("inf")
    good = [[1, 1, 20, 1, 20, 20]]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": good, "bbox": [nan, 0, inf, 1], "area": nan},
        {"id": 2, "image_id": 1, "category_id": [1], "segmentation": good},
        {"id": 3, "image_id": 1, "category_id": 2, "segmentation": good},  # no such category
        {"id": 4, "image_id": 1, "category_id": 3, "segmentation": good},  # category without a name
        {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, nan, 2, 2, 3, 3]]},
        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 2, 2]]},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": "polygon"},
        {"id": 8, "image_id": 1, "category_id": 1, "segmentation": good, "iscrowd": nan},
        {"id": 9, "image_id": 1, "category_id": 1, "segmentation": {"size": [48, 64], "counts": [1.5, 2]}},
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": {"size": [48, 64], "counts": {"a": 1}}},
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": [[1, "2", 3, 4, 5, 6]]},
        {"id": 12, "image_id": 1, "category_id": 1, "segmentation": [[0.5] * 200_002]},  # huge
        {"id": 13, "image_id": 1, "category_id": 1, "segmentation": good, "iscrowd": 1, "junk": nan},
    ]
    categories = [{"id": 1, "name": "cat"}, {"id": 3}, {"id": [9], "name": "bad id"}, "x"]
    path = tmp_path / "coco.json"
    (tmp_path / "a.jpg").write_bytes(IMG)
    # Python's json writes NaN / Infinity literals, which Python's parser accepts: a hostile file
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
                                "annotations": anns, "categories": categories}))
    items = listed(path)
    storable(items)
    meta = items["image:1"].meta
    assert [a["id"] for a in meta["annotations"]] == [1, 13]
    assert meta["annotations"][1]["iscrowd"] == 1
    errors = meta["annotation_errors"]
    assert errors == [
        "annotation 2: category_id is a list, not an integer or a string",
        "annotation 3: category 2 is not in the file's categories",
        "annotation 4: category 3 has no name",
        "annotation 5: polygon 0 holds nan, not a finite number",
        "annotation 6: polygon 0 holds 4 numbers: no polygon of 3 or more points",
        "annotation 7: unsupported segmentation of type str",
        "annotation 8: iscrowd is not 0 or 1",
        "annotation 9: uncompressed RLE counts must be integers",
        "annotation 10: RLE counts of type dict (expected a string or a list)",
        "annotation 11: polygon 0 holds str, not a finite number",
        "annotation 12: polygons hold more than 200,000 numbers",
    ]


def test_coco_file_size_is_capped(tmp_path):
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg"}], [])
    path.write_text(path.read_text() + " " * 2000)
    with pytest.raises(SourceError, match=r"coco.json: [\d,]+ bytes exceeds the cap of 1,024 .*sources.max_coco_bytes"):
        listed(path, max_coco_bytes=1024)
    assert sorted(listed(path, max_coco_bytes=4096)) == ["image:1"]
    assert SourceSettings().max_coco_bytes == 2 * 1024 ** 3


def test_coco_local_images_are_capped(tmp_path):
    (tmp_path / "b.jpg").write_bytes(IMG + b"\0" * 4096)
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], [])
    source = open_source(str(path), max_file_bytes=len(IMG) + 100)
    items = {i.key: i for i in source.iter_items()}
    assert source.read(items["image:1"].locator) == IMG
    with pytest.raises(FetchError, match="too large"):
        source.read(items["image:2"].locator)


# --- WebDataset ---------------------------------------------------------------------------------

def _tar(members: list[tuple[str | bytes, bytes | None, bytes]]) -> bytes:
    """members: (name, data or None, tar type)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, kind in members:
            if isinstance(name, bytes):
                name = name.decode("utf-8", "surrogateescape")
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.LNKTYPE:
                info.linkname = "000.jpg"
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member_offsets(data: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m.offset for m in tar.getmembers()}


SAMPLES = [("000.jpg", IMG, tarfile.REGTYPE), ("000.txt", b"cap zero", tarfile.REGTYPE),
           ("001.jpg", IMG, tarfile.REGTYPE), ("001.txt", b"cap one", tarfile.REGTYPE)]


def test_a_tar_cut_inside_a_header_keeps_the_samples_before(tmp_path):
    data = _tar(SAMPLES)
    cut = _member_offsets(data)["001.txt"] + 200  # inside 001.txt's header
    shard = tmp_path / "cut.tar"
    shard.write_bytes(data[:cut])
    source = open_source(str(shard))
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["cut.tar/#truncated", "cut.tar/000", "cut.tar/001"]
    assert items["cut.tar/000"].meta["captions"] == ["cap zero"]
    assert "001.txt is cut off by the end of the shard" in items["cut.tar/001"].meta["sidecar_error"]
    assert source.read(items["cut.tar/001"].locator) == IMG
    reason = items["cut.tar/#truncated"].locator["error"]
    assert "cut.tar is truncated" in reason and "header is cut off" in reason


def test_a_tar_cut_inside_data_and_garbage_after_members(tmp_path):
    data = _tar(SAMPLES)
    offsets = _member_offsets(data)
    (tmp_path / "data.tar").write_bytes(data[:offsets["001.txt"] + 514])  # 001.txt's data cut
    (tmp_path / "junk.tar").write_bytes(data[:offsets["001.txt"]] + b"g" * 1500)
    cut = listed(tmp_path / "data.tar")
    assert cut["data.tar/000"].meta["captions"] == ["cap zero"]
    assert "001.txt: not read, it is cut off" in cut["data.tar/001"].meta["sidecar_error"]
    assert "data.tar/#truncated" in cut
    junk = listed(tmp_path / "junk.tar")
    assert sorted(junk) == ["junk.tar/#truncated", "junk.tar/000", "junk.tar/001"]
    assert "is not a member header" in junk["junk.tar/#truncated"].locator["error"]
    whole = tmp_path / "whole.tar"
    whole.write_bytes(data)
    assert sorted(listed(whole)) == ["whole.tar/000", "whole.tar/001"]  # a proper end: no error item


def test_webdataset_odd_members_fail_alone(tmp_path):
    shard = tmp_path / "odd.tar"
    shard.write_bytes(_tar([
        ("000.jpg", IMG, tarfile.REGTYPE),
        ("002.jpg", None, tarfile.LNKTYPE),
        ("003.jpg", None, tarfile.CHRTYPE),
        ("004.jpg", IMG, tarfile.REGTYPE), ("004.txt", None, tarfile.FIFOTYPE),
        (b"caf\xe9.jpg", IMG, tarfile.REGTYPE), (b"caf\xe9.txt", b"caption \xff", tarfile.REGTYPE),
        ("005.jpg", IMG + b"\0" * 4096, tarfile.REGTYPE),
        ("006.jpg", IMG, tarfile.REGTYPE), ("006.json", b'{"caption": "x", "v": NaN, "s": "\\udc80"}',
                                            tarfile.REGTYPE),
    ]))
    source = open_source(str(shard), max_file_bytes=len(IMG) + 100)
    items = {i.key: i for i in source.iter_items()}
    storable(items)
    assert source.read(items["odd.tar/000"].locator) == IMG
    assert items["odd.tar/002"].locator["error"] == "image member 002.jpg is a hard link, not a regular file; not read"
    assert items["odd.tar/003"].locator["error"].startswith("image member 003.jpg is a character device")
    assert items["odd.tar/004"].meta["sidecar_error"] == "004.txt: not read, it is a FIFO"
    assert source.read(items["odd.tar/caf\\xe9"].locator) == IMG
    assert items["odd.tar/caf\\xe9"].meta["captions"] == ["caption \ufffd"]
    assert items["odd.tar/005"].locator["error"].startswith("too large: member 005.jpg")
    assert items["odd.tar/006"].meta["extra"] == {"caption": "x", "v": None, "s": "\\udc80"}


# --- URL lists ------------------------------------------------------------------------------------

def test_url_list_hostile_lines_fail_alone(tmp_path):
    (tmp_path / "a.txt").write_bytes(
        b"http://127.0.0.1/a\x00b.jpg\tcap\x00tion\n"
        b"http://127.0.0.1/ok.jpg\tfine \xff\n"
        + b"http://127.0.0.1/" + b"x" * (MAX_LINE_CHARS + 10) + b"\n"
        b"http://127.0.0.1/last.jpg\n")
    items = listed(tmp_path / "a.txt")
    storable(items)
    assert items["line:1"].locator == {"error": "line 1 is not a URL"}
    assert items["http://127.0.0.1/ok.jpg"].meta["captions"] == ["fine \ufffd"]
    assert items["line:3"].locator["error"].startswith("line 3 is longer than")
    assert "http://127.0.0.1/last.jpg" in items


def test_url_csv_hostile_rows_fail_alone(tmp_path):
    (tmp_path / "b.csv").write_bytes(
        b"url,caption\n"
        b"http://127.0.0.1/a\x00.jpg,c\x00d\n"
        + b"http://127.0.0.1/" + b"y" * (MAX_LINE_CHARS + 10) + b",cap\n"
        + b"http://127.0.0.1/ok.jpg,fine\n"
        + b"http://127.0.0.1/z.jpg,\"" + (b"w" * 50_000 + b"\n") * 3)  # a field over csv's limit, never closed
    items = listed(tmp_path / "b.csv")
    storable(items)
    assert items["line:2"].locator == {"error": "line 2 is not a URL"}
    assert items["line:3"].locator["error"].startswith("line 3 is longer than")
    [bad_field] = [i for i in items.values() if "cannot be parsed as CSV" in i.locator.get("error", "")]
    assert "field larger than field limit" in bad_field.locator["error"]
    assert bad_field.key == "line:7"  # where the field passed the limit
    assert items["http://127.0.0.1/ok.jpg"].meta == {"line": 4, "captions": ["fine"]}


# --- helpers ----------------------------------------------------------------------------------------

def test_text_helpers_make_anything_storable():
    assert escape_name(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\\xe9"
    assert escape_name("a\x00b") == "a\\x00b"
    assert escape_name("json \ud800") == "json \\ud800"  # not a file-system surrogate: still storable
    assert safe_text("a\udc80\x00") == "a\\udc80\\x00"
    deep: list = []
    node = deep
    for _ in range(5000):  # deeper than Python's recursion limit
        node.append([])
        node = node[0]
    node.append(float("nan"))
    cleaned = json_safe({"k\udc80": [1.0, float("inf"), "x\x00"], "deep": deep})
    assert cleaned["k\\udc80"] == [1.0, None, "x\\x00"]
    json.dumps(cleaned["k\\udc80"], allow_nan=False)


def test_listing_a_shard_keeps_memory_flat(tmp_path):
    """tarfile remembers every header it reads; the listing drops them as it goes."""
    import tracemalloc

    shard = tmp_path / "many.tar"
    with tarfile.open(shard, "w") as tar:
        for n in range(5_000):
            info = tarfile.TarInfo(f"{n:06d}.txt")
            info.size = 0
            tar.addfile(info, io.BytesIO(b""))
    source = open_source(str(shard))
    tracemalloc.start()
    try:
        seen = sum(1 for _ in source.iter_items())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == 5_000
    assert peak < 512 * 1024  # measured: 25 KB; the 5,000 headers kept would take 2.2 MB


def test_long_names_and_undecodable_shard_paths(tmp_path):
    deep = tmp_path
    for _ in range(6):
        deep = deep / ("d" * 200)
    deep.mkdir(parents=True)
    (deep / "a.jpg").write_bytes(IMG)
    (deep / "b.jpg").write_bytes(IMG)
    source = open_source(str(tmp_path))
    items = {i.key: i for i in source.iter_items()}
    assert len(items) == 2 and all(len(k) <= 1000 for k in items)  # two items, not one truncated key
    assert all(source.read(i.locator) == IMG for i in items.values())
    folder = os.fsencode(str(tmp_path)) + b"/shards-\xe9"
    os.mkdir(folder)
    with open(folder + b"/000.tar", "wb") as handle:
        handle.write(_tar(SAMPLES))
    shards = open_source(os.fsdecode(folder), "webdataset")
    found = {i.key: i for i in shards.iter_items()}
    storable(found)
    assert sorted(found) == ["000.tar/000", "000.tar/001"]
    assert found["000.tar/000"].locator["shard"].endswith("shards-\\xe9/000.tar")
    assert shards.read(found["000.tar/001"].locator) == IMG


def test_a_shard_that_turns_into_a_symlink_loop_fails_alone(tmp_path):
    for n in range(2):
        (tmp_path / f"s-{n}.tar").write_bytes(_tar(SAMPLES))
    source = open_source(str(tmp_path / "s-{0..1}.tar"))  # checked here: both shards exist
    (tmp_path / "s-0.tar").unlink()
    os.symlink("s-0.tar", tmp_path / "s-0.tar")  # Path.resolve() raised RuntimeError on it
    items = {i.key: i for i in source.iter_items()}
    assert sorted(items) == ["s-0.tar/#shard-error", "s-1.tar/000", "s-1.tar/001"]
    assert "Too many levels of symbolic links" in items["s-0.tar/#shard-error"].locator["error"]
