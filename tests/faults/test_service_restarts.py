"""Services restarted under a running job: the broker with work queued (a private Redis loses its
queued messages; a RabbitMQ node keeps its durable ones), and PostgreSQL mid-job while the
foreground ``dataengine mine`` follows the job through a model stage. Nobody runs mine again."""

from __future__ import annotations

import time

import pytest

from engine.db.models import ItemStatus
from tests.faults.conftest import Cluster, url_listing
from tests.faults.invariants import assert_job_sound
from tests.faults.processes import wait_until

N = 12


def test_broker_restart_with_work_queued(cluster: Cluster, http_server, recovery) -> None:
    listing, gate = url_listing(cluster.root, http_server, N, seed=2000)
    cluster.worker(concurrency=1)
    cluster.beat()
    job_id = cluster.plan(listing, "broker-restart")
    wait_until(lambda: gate.waiting, 30, "the worker holding the first batch, two more queued")
    fault_at = time.monotonic()
    cluster.broker.restart()
    gate.open()
    cluster.wait_done(job_id, timeout=120)
    recovery(fault_at)
    state = assert_job_sound(cluster.db_url, cluster.media_root, job_id)
    assert state.count(ItemStatus.DONE) == N


@pytest.fixture
def tiny_models(cluster: Cluster, models_cache_dir) -> Cluster:
    cluster.env_extra["DATAENGINE_MODELS__CACHE_DIR"] = str(models_cache_dir)
    cluster.env_extra["DATAENGINE_MODEL_PROFILE"] = "tiny"
    cluster.env_extra["DATAENGINE_BATCH_SIZES__CAPTION"] = "4"
    cluster.env_extra["DATAENGINE_MODELS__CAPTION__MAX_NEW_TOKENS"] = "4"
    return cluster


def test_database_restart_under_the_foreground_follow_loop(tiny_models: Cluster, http_server, recovery) -> None:
    cluster = tiny_models
    listing, gate = url_listing(cluster.root, http_server, N, seed=2100)
    cluster.worker(queues="io,cpu,gpu", concurrency=1)
    mine = cluster.mine_cli(listing, "db-restart", "--until", "caption", "--profile", "tiny", "--timeout", "150")
    wait_until(lambda: gate.waiting, 60, "the worker holding a batch")
    fault_at = time.monotonic()
    cluster.pg.restart()
    gate.open()
    try:
        mine.proc.wait(170)
    finally:
        output = mine.output()
    recovery(fault_at)
    assert mine.proc.returncode == 0, cluster.logs()
    job_id = cluster.job_id("db-restart")
    assert job_id is not None, output
    state = assert_job_sound(cluster.db_url, cluster.media_root, job_id)
    assert state.count(ItemStatus.DONE) == N
    assert state.stages == {"caption": {"done": N}}, state.stages  # the model stage ran once per image
