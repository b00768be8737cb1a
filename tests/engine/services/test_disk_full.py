"""A media store that fills up (a real 2 MiB tmpfs): the items that do not fit fail alone with the
reason and a retry time, the others are done, no orphan or temporary file is left, the job finishes;
once space is freed the healer puts them back and the job completes. A batch that fails after storing
files (a real PostgreSQL backend terminated mid-batch) leaves none of its files behind."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from engine.db.models import Image, ItemStatus, JobItem, JobStatus, MiningJob
from engine.db.session import session_scope
from engine.services.mine import mine_batch, plan_job
from engine.storage import TMP_PREFIX, LocalMediaStore
from pipelines.context import TaskContext
from pipelines.dispatch import InProcessQueue
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import photo, png_bytes

N_IMAGES = 12  # ~265 KiB each: about 3 MiB, the store holds 2


def noise_png(seed: int, side: int = 300) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return png_bytes(PILImage.fromarray(pixels))


def mount(path: Path, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)


@pytest.fixture
def small_media(tmp_path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    try:
        mount(media, "2m")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {err.decode(errors='replace').strip()}")
    yield media
    subprocess.run(["umount", "-l", str(media)], capture_output=True)


def media_files(media: Path) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def items_of(settings, job_id: int) -> list[JobItem]:
    with session_scope(settings.db_url) as s:
        return list(s.scalars(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.id)))


def stored_keys(settings) -> list[str]:
    with session_scope(settings.db_url) as s:
        return sorted(s.scalars(select(Image.storage_key)))


def test_a_full_media_store_fails_items_alone_and_they_complete_after_space_is_freed(settings, small_media,
                                                                                    tmp_path):
    settings = make_settings(settings.database_url, tmp_path, media_root=small_media,
                             pipeline={"min_free_bytes": 1 << 20})
    src = tmp_path / "src"
    src.mkdir()
    for i in range(N_IMAGES):
        (src / f"{i:02}.png").write_bytes(noise_png(i))

    first = run_mine(settings, str(src), until="mine")

    items = items_of(settings, first.plan.job_id)
    failed = [i for i in items if i.status == ItemStatus.FAILED]
    done = [i for i in items if i.status == ItemStatus.DONE]
    assert failed and done and len(failed) + len(done) == N_IMAGES
    for item in failed:
        assert item.error == "media store: no space left on device"
        assert item.retry_at is not None
        assert str(small_media) not in item.error
    # every file on the store is an image row's, none half-written or orphaned
    assert media_files(small_media) == stored_keys(settings)
    assert not [p for p in small_media.rglob(f"{TMP_PREFIX}*")]
    with session_scope(settings.db_url) as s:
        assert s.get(MiningJob, first.plan.job_id).status == JobStatus.DONE  # not left running

    from pipelines.healing import heal_once  # the lead's healer (issue 16)

    ctx = TaskContext.from_settings(settings)
    still_full = heal_once(ctx, InProcessQueue(ctx), job_id=first.plan.job_id)
    assert still_full.retried == 0  # no room yet: nothing is tried again
    mount(small_media, "16m", remount=True)
    healed = heal_once(ctx, InProcessQueue(ctx), job_id=first.plan.job_id)

    assert healed.retried == len(failed)
    items = items_of(settings, first.plan.job_id)
    assert [i.status for i in items] == [ItemStatus.DONE] * N_IMAGES
    assert all(i.retry_at is None and i.error is None for i in items)
    assert media_files(small_media) == stored_keys(settings) and len(stored_keys(settings)) == N_IMAGES
    with session_scope(settings.db_url) as s:
        assert s.get(MiningJob, first.plan.job_id).status == JobStatus.DONE


def test_stored_files_are_readable_by_other_users(tmp_path):
    """0o666 less the umask, as open() makes a file (mkstemp gave 0600)."""
    store = LocalMediaStore(tmp_path / "media")
    old = os.umask(0o022)
    try:
        data = png_bytes(photo(1, (32, 32)))
        first = store.store(hashlib.sha256(data).hexdigest(), "png", data)
        again = store.store(hashlib.sha256(data).hexdigest(), "png", data)
    finally:
        os.umask(old)
    assert first.created and not again.created and first.key == again.key
    assert stat.S_IMODE((tmp_path / "media" / first.key).stat().st_mode) == 0o644


def test_a_batch_that_fails_after_storing_leaves_no_files(fresh_pg_url, tmp_path):
    """A real PostgreSQL backend is terminated at the third image row: the error propagates out of the
    batch, which rolls back; the files its rows named go, a file stored before (with its committed
    row) and a file that was there before without one stay."""
    settings = make_settings(fresh_pg_url, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.png").write_bytes(png_bytes(photo(100 + i, (64, 48))))
    # one image mined and committed before: its file must survive the failed batch
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "k.png").write_bytes((src / "0.png").read_bytes())
    run_mine(settings, str(keep), until="mine", job_name="before")
    before = media_files(settings.media_path)
    assert len(before) == 1
    # a file already on the store that no row names (an earlier orphan): not this batch's to remove
    store = LocalMediaStore(settings.media_path)
    stray_bytes = (src / "4.png").read_bytes()
    stray = store.put(hashlib.sha256(stray_bytes).hexdigest(), "png", stray_bytes)

    with session_scope(settings.db_url) as s:
        plan = plan_job(s, settings, str(src), job_name="dies", until="mine")
        s.commit()
        s.execute(text("""
            CREATE FUNCTION de_test_die() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF (SELECT count(*) FROM images) >= 3 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER de_test_die BEFORE INSERT ON images FOR EACH ROW EXECUTE FUNCTION de_test_die();
        """))
        s.commit()
    with session_scope(settings.db_url) as s:
        with pytest.raises(sa_exc.OperationalError):
            mine_batch(s, settings, store, plan.job_id, plan.pending)
        s.rollback()  # as the task wrapper does

    assert sorted(media_files(settings.media_path)) == sorted([*before, stray])
    assert not list(settings.media_path.rglob(f"{TMP_PREFIX}*"))
    assert [i.status for i in items_of(settings, plan.job_id)] == [ItemStatus.PENDING] * 5
