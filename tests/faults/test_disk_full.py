"""The media store runs out of space mid-job: the items that did not fit fail with the reason and a
retry time, nothing half-written is left; once space is freed the job completes by itself."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from engine.db.models import ItemStatus, JobItem
from engine.db.session import session_scope
from tests.faults.conftest import Cluster, write_images
from tests.faults.invariants import assert_job_sound
from tests.faults.processes import wait_until
from tests.services_private import tmpfs

N = 12
MEDIA_MB = 2
ROOM_LEFT = 200 * 1024  # below pipeline.min_free_bytes of the tests (256 KiB): no retry until freed


@pytest.fixture
def small_media(cluster: Cluster) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    with tmpfs(cluster.media_root, MEDIA_MB):
        yield cluster
        cluster.close()  # nothing may hold the mount when it goes


@pytest.mark.parametrize("broker", ["redis"], indirect=True)  # the store, not the broker, is at fault
def test_disk_full_items_fail_with_reason_then_complete_once_freed(small_media: Cluster, recovery) -> None:
    cluster = small_media
    src = cluster.root / "src"
    sizes = sum(len(d) for d in write_images(src, N, seed=3000, size=(640, 480)))
    filler = cluster.media_root / ".filler"
    free = os.statvfs(cluster.media_root).f_bavail * os.statvfs(cluster.media_root).f_frsize
    filler.write_bytes(b"\0" * (free - ROOM_LEFT))
    assert sizes > 3 * ROOM_LEFT, "the job must not fit"
    worker = cluster.worker(queues="cpu", concurrency=1)
    cluster.beat()
    job_id = cluster.plan(src, "disk-full")

    def settled() -> bool:
        counts = cluster.counts(job_id)
        return not counts.get(ItemStatus.PENDING) and bool(counts.get(ItemStatus.FAILED))

    wait_until(settled, 60, "every item tried once, some failed for want of space")
    with session_scope(cluster.db_url) as s:
        failed = s.scalars(select(JobItem).where(JobItem.job_id == job_id,
                                                 JobItem.status == ItemStatus.FAILED)).all()
        assert failed and all("no space left" in (i.error or "") for i in failed), [i.error for i in failed]
        assert all(i.retry_at is not None for i in failed)
        n_failed = len(failed)
    assert not [p for p in cluster.media_root.rglob(".tmp-*")], "a half-written file was left behind"
    healed = worker.output().count("'retried': 0")
    time.sleep(3 * 1.0)  # a few healer passes: no room yet, so nothing is retried
    assert worker.output().count("'retried': 0") > healed, "the healer ran meanwhile"
    assert cluster.counts(job_id).get(ItemStatus.FAILED) == n_failed

    freed_at = time.monotonic()
    filler.unlink()
    wait_until(lambda: cluster.counts(job_id).get(ItemStatus.DONE) == N, 60,
               f"all items done after the space was freed ({cluster.counts(job_id)})")
    cluster.wait_done(job_id)
    recovery(freed_at)
    state = assert_job_sound(cluster.db_url, cluster.media_root, job_id)
    assert state.count(ItemStatus.DONE) == N and state.images == N
