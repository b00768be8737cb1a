"""Source sandboxing (engine/sources/roots.py): the allowed roots come from ``sources.allowed_roots``
(default ``<data_dir>/sources``); a requested source resolves under one of them or is refused with
:class:`SourceRefused` before anything about it (even whether it exists) is told."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.domain.vocabulary import SourceKind
from engine.settings import Settings
from engine.sources.base import SourceError
from engine.sources.roots import SourceRefused, allowed_source, confine, inside, source_roots


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    made = [tmp_path / "a", tmp_path / "b"]
    for root in made:
        root.mkdir()
    return [r.resolve() for r in made]


@pytest.fixture
def settings(tmp_path: Path, roots: list[Path]) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url="sqlite://",  # type: ignore[call-arg]
                    sources={"allowed_roots": roots, "max_shard_names": 10})


def test_roots_default_to_data_dir_sources(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")  # type: ignore[call-arg]
    assert source_roots(settings) == [(tmp_path / "data" / "sources").resolve()]


def test_roots_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAENGINE_SOURCES__ALLOWED_ROOTS", f'["{tmp_path / "x"}", "{tmp_path / "y"}"]')
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")  # type: ignore[call-arg]
    assert source_roots(settings) == [(tmp_path / "x").resolve(), (tmp_path / "y").resolve()]


def test_inside_is_by_path_parts_not_by_prefix(roots: list[Path]) -> None:
    assert inside(roots[0], roots) and inside(roots[0] / "x" / "y", roots)
    assert not inside(roots[0].parent / (roots[0].name + "-sibling"), roots)
    assert not inside(roots[0].parent, roots)


def test_confine_resolves_relative_paths_under_the_first_root(roots: list[Path]) -> None:
    assert confine("photos", roots) == roots[0] / "photos"
    assert confine(str(roots[1] / "photos"), roots) == roots[1] / "photos"


@pytest.mark.parametrize("raw", ["../outside", "/etc/passwd", "/", "a/../../outside"])
def test_confine_refuses_what_escapes(roots: list[Path], raw: str) -> None:
    with pytest.raises(SourceRefused, match="allowed source folder"):
        confine(raw, roots)


def test_confine_refuses_a_symlink_leading_out(roots: list[Path], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, roots[0] / "link")
    with pytest.raises(SourceRefused, match="allowed source folder"):
        confine("link", roots)
    with pytest.raises(SourceRefused, match="allowed source folder"):
        confine("link/missing.txt", roots)  # whether it exists is not looked at


@pytest.mark.parametrize("raw,words", [("http://example.com/list.txt", "not a URL"), ("s3://bucket/x", "not a URL"),
                                       ("a\x00b", "invalid path"), ("~nosuchuser/x", "home directory")])
def test_confine_refuses_urls_and_invalid_paths(roots: list[Path], raw: str, words: str) -> None:
    with pytest.raises(SourceRefused, match=words):
        confine(raw, roots, "source")


def test_allowed_source_detects_the_kind_and_checks_existence(settings: Settings, roots: list[Path]) -> None:
    (roots[0] / "photos").mkdir()
    found = allowed_source(settings, "photos")
    assert found.source == str(roots[0] / "photos") and found.kind == SourceKind.FOLDER and found.images_dir is None
    with pytest.raises(SourceRefused, match="folder not found"):
        allowed_source(settings, "missing", kind="folder")
    with pytest.raises(SourceRefused, match="file not found"):
        allowed_source(settings, "missing.json", kind="coco")
    with pytest.raises(SourceRefused, match="images_dir not found"):
        (roots[0] / "c.json").write_text("{}")
        allowed_source(settings, "c.json", kind="coco", images_dir="nope")


def test_a_url_list_holds_http_urls_only(settings: Settings, roots: list[Path]) -> None:
    (roots[0] / "ok.txt").write_text("https://example.com/a.jpg\nhttp://example.com/b.jpg\n")
    assert allowed_source(settings, "ok.txt").kind == SourceKind.URLS
    (roots[0] / "bad.txt").write_text("https://example.com/a.jpg\nfile:///etc/SECRET\n")
    with pytest.raises(SourceRefused, match="line 2") as refused:
        allowed_source(settings, "bad.txt", kind="urls")
    assert "SECRET" not in str(refused.value)


def test_every_shard_must_lie_under_a_root(settings: Settings, roots: list[Path], tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="at most 10"):
        allowed_source(settings, "s-{0..99}.tar")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "s.tar").write_bytes(b"")
    os.symlink(outside / "s.tar", roots[0] / "s-0.tar")
    with pytest.raises(SourceRefused, match="every shard"):
        allowed_source(settings, "s-{0..0}.tar")


def test_a_refusal_is_a_source_error() -> None:
    assert issubclass(SourceRefused, SourceError)
