"""The real mine stage (in-process execution, PostgreSQL and SQLite) on hostile sources (issue 16):
listing stores every item whatever its name or entry holds, each bad item fails alone with its
reason, a bad annotation is recorded on its image while the good ones are imported."""

from __future__ import annotations

import io
import json
import os
import tarfile

from sqlalchemy import func, select

from engine.db.models import Caption, Image, ItemStatus, JobItem, Mask
from engine.db.session import session_scope
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo

IMG = jpeg_bytes(photo(31, (64, 48)))
IMG2 = jpeg_bytes(photo(32, (64, 48)))
IMG3 = jpeg_bytes(photo(33, (64, 48)))


def items(settings, job_id: int) -> dict[str, JobItem]:
    with session_scope(settings.db_url) as s:
        rows = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        s.expunge_all()
        return {row.key: row for row in rows}


def count(settings, model) -> int:
    with session_scope(settings.db_url) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_hostile_folder(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path, limits={"max_file_bytes": 64 * 1024})
    src = tmp_path / "src"
    src.mkdir()
    raw = os.fsencode(str(src))
    with open(raw + b"/caf\xe9.jpg", "wb") as handle:  # a Latin-1 name
        handle.write(IMG)
    with open(raw + b"/caf\xe9.json", "wb") as handle:  # its sidecar: NaN, a lone surrogate, a NUL
        handle.write(b'{"caption": "a caf\\u00e9 \\udc80 sign\\u0000", "score": NaN, "x": Infinity}')
    (src / "good.jpg").write_bytes(IMG2)
    os.symlink("loop.jpg", src / "loop.jpg")
    (src / "big.jpg").write_bytes(IMG3 + b"\0" * (70 * 1024))
    result = run_mine(settings, str(src), job_name="hostile-folder", until="mine")
    assert result.report.status == "done"
    got = items(settings, result.plan.job_id)
    assert {k: v.status for k, v in got.items()} == {
        "caf\\xe9.jpg": ItemStatus.DONE, "good.jpg": ItemStatus.DONE,
        "loop.jpg": ItemStatus.FAILED, "big.jpg": ItemStatus.FAILED}
    assert got["loop.jpg"].error == "cannot read loop.jpg: symlink loop"
    assert got["big.jpg"].error.startswith("cannot read big.jpg: too large")
    meta = got["caf\\xe9.jpg"].source_meta
    assert meta["extra"]["score"] is None and meta["extra"]["x"] is None
    with session_scope(settings.db_url) as s:
        assert s.scalars(select(Caption.text)).all() == ["a café \\udc80 sign\\x00"]
    assert count(settings, Image) == 2


def _coco(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    (img / "a.jpg").write_bytes(IMG)
    (img / "b.jpg").write_bytes(IMG2)
    good = [[2, 2, 30, 2, 30, 30, 2, 30]]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": good, "bbox": [float("nan")] * 4},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[1e9, 1e9, 2e9, 1e9, 2e9, 2e9]]},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": {"size": [48, 64], "counts": [10, 48 * 64]}},
        {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[-0.9, -0.9, -0.1, -0.9, -0.1, -0.1]]},
        {"id": 5, "image_id": 1, "category_id": 2, "segmentation": good},  # unnamed category
        {"id": 6, "image_id": 1, "category_id": [1], "segmentation": good},
        {"id": 7, "image_id": 1, "caption": "a cat\u0000 on a mat \udc80"},
        {"id": 8, "image_id": [1], "category_id": 1, "segmentation": good},
        {"id": 9, "image_id": 2, "category_id": 1, "segmentation": {"size": [48, 64], "counts": [48 * 64 - 100, 100]}},
    ]
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
        {"id": 1, "file_name": "b.jpg"},
        {"id": {"x": 1}, "file_name": "a.jpg"},
        {"id": 3, "file_name": 5},
    ]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": ""}]}))
    return path


def test_hostile_coco(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path)
    path = _coco(tmp_path)
    result = run_mine(settings, str(path), job_name="hostile-coco", until="mine",
                      options={"images_dir": str(tmp_path / "img")})
    assert result.report.status == "done"
    got = items(settings, result.plan.job_id)
    assert {k: (v.status, v.error) for k, v in got.items()} == {
        "image:1": (ItemStatus.DONE, None),
        "image:2": (ItemStatus.DONE, None),
        "index:2": (ItemStatus.FAILED, "duplicate image id 1, first at index 0"),
        "index:3": (ItemStatus.FAILED, "image at index 3: id is a dict, not an integer or a string"),
        "image:3": (ItemStatus.FAILED, "file_name is a int, not a string"),
        "annotation-index:7": (ItemStatus.FAILED,
                               "annotation at index 7: image_id is a list, not an integer or a string"),
    }
    errors = got["image:1"].source_meta["annotation_errors"]
    assert errors[:2] == ["annotation 5: category 2 has no name",
                          "annotation 6: category_id is a list, not an integer or a string"]
    assert errors[2].startswith("annotation 2: polygon 0 point 0 lies outside the 48×64 image")
    assert errors[3] == "annotation 3: RLE counts sum to 3082, not height × width = 3072"
    assert errors[4].startswith("annotation 4: the mask is empty")
    assert len(errors) == 5
    assert "annotation_errors" not in got["image:2"].source_meta
    dropped = result.report.dropped_annotations  # what `dataengine status` shows of them
    assert dropped is not None and (dropped.count, dropped.example_key, dropped.reason) == (1, "image:1", errors[0])
    with session_scope(settings.db_url) as s:
        masks = s.scalars(select(Mask)).all()
        assert len(masks) == 2 and all(0 < m.area < 48 * 64 for m in masks)  # annotation 1 and 9
        assert all(m.bbox_x + m.bbox_w <= 64 and m.bbox_y + m.bbox_h <= 48 for m in masks)
        assert s.scalars(select(Caption.text)).all() == ["a cat\\x00 on a mat \\udc80"]
    # re-mining adds no second copy of the reasons
    again = run_mine(settings, str(path), job_name="hostile-coco", until="mine", retry_failed=True,
                     options={"images_dir": str(tmp_path / "img")})
    assert items(settings, again.plan.job_id)["image:1"].source_meta["annotation_errors"] == errors


def test_hostile_webdataset(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in [("000.jpg", IMG), ("000.txt", b"zero"), (b"caf\xe9.jpg", IMG2), (b"caf\xe9.txt", b"one"),
                           ("002.jpg", IMG3), ("002.txt", b"two")]:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        cut = next(m.offset for m in tar.getmembers() if m.name == "002.txt") + 300
    shard = tmp_path / "data.tar"
    shard.write_bytes(data[:cut])  # cut inside the last caption's header
    result = run_mine(settings, str(shard), job_name="hostile-wds", until="mine")
    assert result.report.status == "done"
    got = items(settings, result.plan.job_id)
    assert {k: v.status for k, v in got.items()} == {
        "data.tar/000": ItemStatus.DONE, "data.tar/caf\\xe9": ItemStatus.DONE, "data.tar/002": ItemStatus.DONE,
        "data.tar/#truncated": ItemStatus.FAILED}
    assert "data.tar is truncated" in got["data.tar/#truncated"].error
    assert "002.txt is cut off" in got["data.tar/002"].source_meta["sidecar_error"]
    with session_scope(settings.db_url) as s:
        assert sorted(s.scalars(select(Caption.text))) == ["one", "zero"]


def test_hostile_url_list(database_url, tmp_path, http_server):
    settings = make_settings(database_url, tmp_path)
    http_server.image("/ok.jpg", IMG)
    path = tmp_path / "urls.txt"
    path.write_bytes(f"{http_server.base}/ok.jpg\tfine \xff caption\n".encode("latin-1")
                     + f"{http_server.base}/a\x00.jpg\n".encode()
                     + b"http://127.0.0.1/" + b"x" * 70_000 + b"\n")
    result = run_mine(settings, str(path), job_name="hostile-urls", until="mine")
    assert result.report.status == "done"
    got = items(settings, result.plan.job_id)
    assert {k: (v.status, v.error) for k, v in got.items()} == {
        f"{http_server.base}/ok.jpg": (ItemStatus.DONE, None),
        "line:2": (ItemStatus.FAILED, "line 2 is not a URL"),
        "line:3": (ItemStatus.FAILED, "line 3 is longer than 65,536 characters; not read"),
    }
