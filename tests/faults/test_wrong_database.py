"""A worker configured with another database than the one the job was planned in refuses the job's
tasks loudly and marks nothing; once a correctly configured worker runs, the job completes."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from engine.db.models import Image, ItemStatus, JobItem, MiningJob
from engine.db.session import session_scope
from pipelines.runner import plan_mine
from tests.faults.conftest import Cluster, write_images
from tests.faults.invariants import assert_job_sound

N = 8


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)  # the database, not the broker, is at fault
def test_worker_on_another_database_refuses_loudly_and_marks_nothing(cluster: Cluster, recovery) -> None:
    src = cluster.root / "src"
    write_images(src, N, seed=4000)
    other_url = cluster.new_database()
    # the other database has a job of the same id, with items of the same ids: a worker that only
    # looked the job up would mine them (the message names the database it was planned in)
    other = plan_mine(cluster.settings().model_copy(update={"database_url": other_url}), str(src), job_name="twin")
    wrong = cluster.worker(queues="cpu", concurrency=1, DATAENGINE_DATABASE_URL=other_url)
    job_id = cluster.plan(src, "wrong-db")
    assert other.job_id == job_id
    wrong.wait_for_output(f"job {job_id} is not in this worker's database", timeout=30)
    assert "ERROR" in wrong.output()
    assert "dataengine.mine.batch" in wrong.output()
    with session_scope(cluster.db_url) as s:
        items = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        assert [(i.status, i.starts, i.attempts) for i in items] == [(ItemStatus.PENDING, 0, 0)] * N
    with session_scope(other_url) as s:
        twins = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        assert [(i.status, i.starts, i.attempts) for i in twins] == [(ItemStatus.PENDING, 0, 0)] * N
        assert s.scalar(select(func.count()).select_from(Image)) == 0
        assert s.scalar(select(func.count()).select_from(MiningJob)) == 1
    assert not any(cluster.media_root.iterdir())

    wrong.stop()  # the operator fixes the configuration
    fixed_at = time.monotonic()
    cluster.worker(queues="cpu", concurrency=1)
    cluster.beat()
    cluster.wait_done(job_id, timeout=60)
    recovery(fixed_at)
    state = assert_job_sound(cluster.db_url, cluster.media_root, job_id)
    assert state.count(ItemStatus.DONE) == N
