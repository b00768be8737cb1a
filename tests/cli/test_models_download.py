"""``dataengine models download|list|verify``: checkpoints from a Hugging Face id, a ModelScope id or a
local folder, against the fake hub of tests/fake_hub.py on 127.0.0.1 (no other traffic)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from annotators import modelscope_files
from annotators.checkpoints import CheckpointError, Source, download_modelscope, manifest_digest, parse_source
from dataengine.cli.main import cli
from engine.db.models import ModelVersion
from engine.db.session import session_scope
from engine.domain.vocabulary import ModelKind
from tests.fake_hub import FakeHub


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def expected_digest(files: dict[str, bytes]) -> str:
    return manifest_digest({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def env(fresh_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> str:
    """The CLI on a fresh SQLite database, its models cache under tmp_path, both hubs at the fake."""
    monkeypatch.setenv("DATAENGINE_DATABASE_URL", fresh_sqlite_url)
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATAENGINE_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("DATAENGINE_MODELS__CACHE_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "")  # no stored token travels, even to the loopback fake
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", hub.url)
    return fresh_sqlite_url


def hf_online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """huggingface_hub allowed to reach the fake hub (the tests run with HF_HUB_OFFLINE=1 as a guard),
    its cache under tmp_path. Patched on the constants module: it reads the environment once, at import."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def rows(database_url: str) -> list[ModelVersion]:
    with session_scope(database_url) as s:
        found = s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        s.expunge_all()
        return list(found)


def test_sources_parse() -> None:
    assert parse_source("hf:facebook/sam3") == Source("hf", "facebook/sam3")
    assert parse_source("facebook/sam3") == Source("hf", "facebook/sam3")
    assert parse_source("modelscope:facebook/sam3") == parse_source("ms:facebook/sam3") == \
        Source("modelscope", "facebook/sam3")
    for bad in ("./no/such/folder", "/no/such/folder", "a/b/c", "ms:", "hf:bad id"):
        with pytest.raises(CheckpointError):
            parse_source(bad)


def test_modelscope_endpoint_from_the_clients_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSCOPE_ENDPOINT", raising=False)
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    assert modelscope_files.endpoint() == "https://www.modelscope.cn"
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "modelscope.ai")
    assert modelscope_files.endpoint() == "https://modelscope.ai"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:9/")
    assert modelscope_files.endpoint() == "http://127.0.0.1:9"


def test_hf_download_continues_a_dropped_file_with_range_and_records_the_checksum(
        env: str, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hf_online(monkeypatch, tmp_path)
    # above huggingface_hub's 10 MiB read chunk, so the half that arrives before the drop is kept
    files = {"config.json": b'{"model_type": "bert"}', "model.safetensors": blob(24 << 20, 1),
             "tokenizer/vocab.txt": b"a\nb\n"}
    repo = hub.add("org/sam-tiny", files)
    hub.drop_once.add("model.safetensors")

    result = invoke("models", "download", "hf:org/sam-tiny", "--role", "proposer")
    assert result.exit_code == 0, result.output
    fetches = hub.file_requests("model.safetensors")
    assert [r.range is not None for r in fetches] == [False, True]
    assert fetches[1].range is not None and int(fetches[1].range.removeprefix("bytes=").rstrip("-")) > 0
    [row] = rows(env)
    record = row.params["checkpoint"]
    assert (row.kind, row.name, row.version) == (ModelKind.PROPOSER, "org/sam-tiny", repo.commit)
    assert record["sha256"] == expected_digest(files) and record["commit"] == repo.commit
    assert record["files"]["model.safetensors"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert Path(row.uri or "").name == repo.commit and str(tmp_path / "hf-cache") in (row.uri or "")
    assert f"sha256 {record['sha256']}" in result.output and f"registered proposer version {row.id}" in result.output

    listing = invoke("models", "list")
    assert listing.exit_code == 0 and f"{record['sha256'][:12]} (hf)" in listing.output, listing.output
    verified = invoke("models", "verify")
    assert verified.exit_code == 0 and f"version {row.id} org/sam-tiny: ok, 3 files" in verified.output


def test_hf_unknown_repo_is_one_clear_error(env: str, hub: FakeHub, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    hf_online(monkeypatch, tmp_path)
    result = invoke("models", "download", "org/nothing-here")
    assert result.exit_code == 1
    assert "Hugging Face org/nothing-here@main" in result.output and "Traceback" not in result.output
    assert rows(env) == []


def test_modelscope_download_resumes_across_runs_and_verify_catches_a_changed_file(
        env: str, hub: FakeHub, tmp_path: Path) -> None:
    files = {"config.json": b'{"model_type": "bert"}', "sam3.pt": blob(4 << 20, 2)}
    hub.add("facebook/sam3-tiny", files)
    hub.drop_once.add("sam3.pt")
    dest = tmp_path / "models" / "checkpoints" / "modelscope" / "facebook" / "sam3-tiny"

    # the first run gives up at the drop (no retries), keeping what arrived
    with pytest.raises(CheckpointError, match="run again to resume"):
        download_modelscope("facebook/sam3-tiny", None, dest, show_progress=False, retries=0)
    kept = (dest / "sam3.pt.part").stat().st_size
    assert 0 < kept < len(files["sam3.pt"]) and not (dest / "sam3.pt").exists()

    result = invoke("models", "download", "modelscope:facebook/sam3-tiny", "--role", "proposer")
    assert result.exit_code == 0, result.output
    fetches = hub.file_requests("sam3.pt")
    assert [r.range for r in fetches] == [None, f"bytes={kept}-"]
    assert len(hub.file_requests("config.json")) == 1  # complete after the first run: not fetched again
    assert (dest / "sam3.pt").read_bytes() == files["sam3.pt"] and not (dest / "sam3.pt.part").exists()
    [row] = rows(env)
    assert row.name == "modelscope:facebook/sam3-tiny" and row.uri == str(dest)
    assert row.params["checkpoint"]["sha256"] == expected_digest(files)
    assert row.params["checkpoint"]["source"] == "modelscope"
    assert "1 fetched this run" in result.output

    again = invoke("models", "download", "ms:facebook/sam3-tiny")
    assert again.exit_code == 0 and "0 fetched this run" in again.output
    assert len(rows(env)) == 1  # the same checkpoint: the same registry row

    (dest / "sam3.pt").write_bytes(b"tampered")
    verified = invoke("models", "verify", row.id)
    assert verified.exit_code == 1 and "changed: sam3.pt" in verified.output and "MISMATCH" in verified.output


def test_modelscope_rejects_bytes_that_do_not_match_the_listing(tmp_path: Path, hub: FakeHub) -> None:
    repo = hub.add("org/m", {"config.json": b"{}", "w.bin": b"x" * 1000})
    original = repo.files["w.bin"]
    listing = modelscope_files.list_files
    try:
        import httpx

        with httpx.Client() as client:
            remote = listing(client, hub.url, "org/m", "master")
        repo.files["w.bin"] = b"y" * 1000  # the bytes change under the listing
        with httpx.Client() as client, pytest.raises(modelscope_files.ModelScopeError, match="do not match"):
            modelscope_files.download_file(client, hub.url, "org/m", "master",
                                           next(f for f in remote if f.path == "w.bin"), tmp_path,
                                           modelscope_files._Silent())
        assert not (tmp_path / "w.bin").exists() and not (tmp_path / "w.bin.part").exists()
    finally:
        repo.files["w.bin"] = original


def test_local_folder_is_checked_copied_and_registered_once(env: str, tmp_path: Path) -> None:
    folder = tmp_path / "my-captioner"
    (folder / "sub").mkdir(parents=True)
    files = {"config.json": json.dumps({"model_type": "bert"}).encode(), "model.safetensors": blob(5000, 3),
             "sub/extra.txt": b"x"}
    for name, data in files.items():
        (folder / name).write_bytes(data)

    result = invoke("models", "download", folder, "--role", "captioner")
    assert result.exit_code == 0, result.output
    copy = tmp_path / "models" / "checkpoints" / "local" / "my-captioner"
    assert (copy / "model.safetensors").read_bytes() == files["model.safetensors"] and not copy.is_symlink()
    [row] = rows(env)
    digest = expected_digest(files)
    assert (row.kind, row.name, row.version, row.uri) == (ModelKind.CAPTIONER, "my-captioner", digest[:16], str(copy))
    assert row.params["checkpoint"]["source"] == "local" and row.params["checkpoint"]["ref"] == str(folder)
    assert invoke("models", "download", folder, "--role", "captioner").exit_code == 0
    assert len(rows(env)) == 1

    linked = invoke("models", "download", folder, "--role", "captioner", "--link", "--dest", tmp_path / "linked")
    assert linked.exit_code == 0 and (tmp_path / "linked").is_symlink()

    (folder / "config.json").unlink()
    refused = invoke("models", "download", folder, "--dest", tmp_path / "other")
    assert refused.exit_code == 1 and "no config.json" in refused.output and not (tmp_path / "other").exists()
