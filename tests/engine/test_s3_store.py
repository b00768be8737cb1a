"""The S3 media store against moto's S3-compatible server on loopback: content-addressed keys like the
local store's, multipart uploads, streaming reads, retried transient failures, exports copied to the
bucket, and a folder mined into the bucket whose images the API serves (proxied or presigned)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.db.models import Image, User
from engine.db.session import session_scope
from engine.domain.passwords import hash_password
from engine.domain.vocabulary import Role
from engine.s3_storage import S3MediaStore, make_client
from engine.services import mine
from engine.storage import LocalMediaStore
from engine.storage_settings import MIB, StorageSettings
from engine.stores import make_store, upload_export
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo

pytest.importorskip("boto3")
MOTO = Path(sys.executable).with_name("moto_server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone server on a free loopback port, for this module."""
    if not MOTO.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    pytest.fail("moto_server exited at start")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def storage(s3_endpoint: str) -> StorageSettings:
    """Settings of a new bucket (and prefix) on the moto server."""
    settings = StorageSettings(backend="s3", bucket=f"b-{uuid.uuid4().hex[:12]}", prefix="de", endpoint_url=s3_endpoint,
                               access_key_id="testing", secret_access_key="testing",  # type: ignore[arg-type]
                               multipart_threshold=5 * MIB, part_size=5 * MIB, max_attempts=3)
    make_client(settings).create_bucket(Bucket=settings.bucket)
    return settings


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_keys_match_the_local_store_and_put_get_exists(storage, tmp_path):
    store = S3MediaStore(storage)
    data = jpeg_bytes(photo(1))
    sha = _sha(data)
    key = store.put(sha, "jpg", data)
    assert key == LocalMediaStore(tmp_path).put(sha, "jpg", data)
    assert store.exists(key) and not store.exists(key.replace(sha, "0" * 64))
    assert store.open_bytes(key) == data
    assert store.store(sha, "jpg", data).created is False  # there already
    listed = store.client.list_objects_v2(Bucket=storage.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"de/media/{key}"]
    with pytest.raises(FileNotFoundError):
        store.open_bytes(key.replace(sha, "1" * 64))
    with pytest.raises(ValueError):
        store.open_bytes("../x/y.jpg")
    store.remove(key)
    assert not store.exists(key)
    assert store.store(sha, "jpg", data).created is True


def test_large_file_goes_up_in_parts_and_streams_back_in_chunks(storage):
    store = S3MediaStore(storage)
    data = os.urandom(11 * MIB)  # over the 5 MiB threshold: three parts of at most 5 MiB
    key = store.put(_sha(data), "bin", data)
    head = store.client.head_object(Bucket=storage.bucket, Key=store.object_key(key))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag names its part count
    digest, chunks, largest = hashlib.sha256(), 0, 0
    for chunk in store.iter_bytes(key, chunk_size=256 * 1024):
        digest.update(chunk)
        chunks += 1
        largest = max(largest, len(chunk))
    assert digest.hexdigest() == _sha(data)
    assert largest <= 256 * 1024 and chunks >= 11 * 4


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _fail_first(store: S3MediaStore, event: str, times: int) -> list[int]:
    """Answer the first ``times`` requests of ``event`` with a 500 (the server never sees them)."""
    from botocore.awsrequest import AWSResponse

    calls: list[int] = []

    def inject(request: Any, **_: Any) -> AWSResponse | None:
        calls.append(1)
        if len(calls) <= times:
            body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            return AWSResponse(request.url, 500, {}, _Body(body))
        return None

    store.client.meta.events.register(event, inject)
    return calls


def test_transient_failures_are_retried_with_backoff(storage):
    from engine.s3_storage import _client

    # a client of its own: the injected failures must not reach the shared one
    own = _client.__wrapped__(storage.endpoint_url, storage.region, "testing", "testing", 3, 5.0, 60.0)
    store = S3MediaStore(storage, client=own)
    data = jpeg_bytes(photo(2))
    calls = _fail_first(store, "before-send.s3.PutObject", times=1)
    key = store.put(_sha(data), "jpg", data)
    assert len(calls) == 2  # one 500, then the retry that stored it
    calls = _fail_first(store, "before-send.s3.GetObject", times=1)
    assert store.open_bytes(key) == data and len(calls) == 2
    _fail_first(store, "before-send.s3.HeadObject", times=10)  # more failures than attempts: an error
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        store.exists(key)


def test_exports_are_copied_under_the_prefix(storage, tmp_path):
    folder = tmp_path / "snap"
    (folder / "images").mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "images" / "a.json").write_text("[]")
    settings = make_settings("sqlite://", tmp_path, storage=storage)
    keys = upload_export(settings, folder, "snap-1")
    assert keys == ["de/exports/snap-1/images/a.json", "de/exports/snap-1/manifest.json"]
    body = make_client(storage).get_object(Bucket=storage.bucket, Key=keys[1])["Body"].read()
    assert body == b"{}"
    assert upload_export(make_settings("sqlite://", tmp_path), folder, "snap-1") == []  # local store: nothing


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_mined_folder_lands_in_the_bucket_and_the_api_serves_it(storage, database_url, tmp_path):
    from dataengine.serve import create_app

    settings = make_settings(database_url, tmp_path, storage=storage)
    settings.dedup.near_duplicates = False
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(3):
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(40 + seed)))
    store = make_store(settings)
    assert isinstance(store, S3MediaStore)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), until="mine", job_name="s3-mine")
    with session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
        rows = s.execute(select(Image.id, Image.storage_key, Image.sha256)).all()
        s.add(User(username="root", password_hash=hash_password("correct horse battery", "root"), role=Role.ADMIN,
                   is_active=True))
    assert len(rows) == 3
    assert not settings.media_path.exists() or not any(p.is_file() for p in settings.media_path.rglob("*"))
    shutil.rmtree(src)  # only the bucket has the images now
    with TestClient(create_app(settings)) as client:
        login = client.post("/api/v1/auth/login", json={"username": "root", "password": "correct horse battery"})
        assert login.status_code == 200, login.text
        for image_id, _key, sha in rows:
            response = client.get(f"/api/v1/images/{image_id}")
            assert response.status_code == 200
            assert _sha(response.content) == sha and response.headers["content-type"] == "image/jpeg"
        storage.presign = True  # the browser is sent to the bucket instead
        image_id, _key, sha = rows[0]
        response = client.get(f"/api/v1/images/{image_id}", follow_redirects=False)
        assert response.status_code == 307
        location = response.headers["location"]
        assert location.startswith(storage.endpoint_url or "") and "Signature" in location
        assert _sha(httpx.get(location).content) == sha
