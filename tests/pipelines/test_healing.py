"""Self-healing execution (pipelines/execution.py, pipelines/healing.py, engine/services/heal.py):
lost batches are sent again, batches that took their worker down are split and their poison item
failed, transient failures are retried, work in progress is never sent twice, a job unknown to the
worker's database is refused. Real databases (PostgreSQL and SQLite), a real Redis for the broker
cases; the crashes themselves are in tests/faults/ (real worker processes)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import select, update

from engine.db.base import utcnow
from engine.db.models import ItemStatus, JobItem, JobStatus, MiningJob
from engine.db.session import session_scope
from engine.settings import PipelineSettings, Settings
from pipelines.celery_app import create_celery
from pipelines.context import TaskContext
from pipelines.dispatch import CeleryQueue, HandOffFailed, InProcessQueue
from pipelines.execution import UnknownJob, WrongDatabase, hand_off, run_stage
from pipelines.healing import heal_once
from pipelines.runner import plan_mine
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo


def _folder(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (src / f"{i:02d}.jpg").write_bytes(jpeg_bytes(photo(300 + i, (64, 48))))
    return src


def _settings(database_url: str, tmp_path: Path, **pipeline: object) -> Settings:
    return make_settings(database_url, tmp_path, pipeline=PipelineSettings(**pipeline))


def _plan(settings: Settings, tmp_path: Path, n: int = 6, name: str = "heal") -> int:
    """A job listed and committed but never sent to any worker (as if its messages were lost)."""
    plan = plan_mine(settings, str(_folder(tmp_path, n)), job_name=name, until="mine")
    return plan.job_id


def _age(url: str, job_id: int, seconds: float) -> None:
    """Make the job's pending items look handed to the broker ``seconds`` ago."""
    with session_scope(url) as s:
        s.execute(update(JobItem).where(JobItem.job_id == job_id)
                  .values(dispatched_at=utcnow() - dt.timedelta(seconds=seconds)))


def _statuses(url: str, job_id: int) -> list[str]:
    with session_scope(url) as s:
        return [st.value for st in s.scalars(select(JobItem.status).where(JobItem.job_id == job_id)
                                              .order_by(JobItem.id))]


def _job_status(url: str, job_id: int) -> str:
    with session_scope(url) as s:
        job = s.get(MiningJob, job_id)
        assert job is not None
        return job.status.value


def test_lost_batches_are_sent_again_and_the_job_completes(database_url, tmp_path):
    settings = _settings(database_url, tmp_path, stale_after_s=60)
    job_id = _plan(settings, tmp_path)
    ctx = TaskContext.from_settings(settings)
    _age(database_url, job_id, 5)  # handed over 5 s ago: not lost yet
    report = heal_once(ctx, InProcessQueue(ctx))
    assert report.resent == {} and set(_statuses(database_url, job_id)) == {"pending"}
    _age(database_url, job_id, 120)  # two minutes and still pending: lost
    report = heal_once(ctx, InProcessQueue(ctx))
    assert report.resent == {"mine": 6}
    assert set(_statuses(database_url, job_id)) == {"done"}
    assert _job_status(database_url, job_id) == "done"
    assert heal_once(ctx, InProcessQueue(ctx)).resent == {}  # nothing left: a second pass sends nothing


def test_a_batch_that_began_before_is_split_down_to_its_items(database_url, tmp_path):
    settings = _settings(database_url, tmp_path)
    job_id = _plan(settings, tmp_path, n=6)
    with session_scope(database_url) as s:  # a worker began this batch and died
        s.execute(update(JobItem).where(JobItem.job_id == job_id).values(starts=1))
        ids = list(s.scalars(select(JobItem.id).where(JobItem.job_id == job_id).order_by(JobItem.id)))
    ctx = TaskContext.from_settings(settings)
    done: list[dict] = []
    queue = InProcessQueue(ctx, on_done=done.append)
    report = run_stage(ctx, queue, "mine", job_id, ids)
    assert report["counts"] == {"split": 6}
    # the halves ran (in-process: at once) and mined everything; none of them was split again
    assert [r["counts"] for r in done if "split" in r["counts"]] == []
    assert sum(r["counts"].get("done", 0) for r in done) == 6
    assert set(_statuses(database_url, job_id)) == {"done"}


@pytest.mark.parametrize("crashes, expected", [(1, "done"), (2, "failed")])
def test_a_single_item_that_kept_killing_its_worker_is_failed_with_the_reason(database_url, tmp_path,
                                                                              crashes, expected):
    settings = _settings(database_url, tmp_path, max_item_crashes=2)
    job_id = _plan(settings, tmp_path, n=2)
    with session_scope(database_url) as s:
        first = s.scalars(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.id)).first()
        assert first is not None
        first.starts = crashes  # it began alone ``crashes`` times and never finished
        item_id = first.id
    ctx = TaskContext.from_settings(settings)
    run_stage(ctx, InProcessQueue(ctx), "mine", job_id, [item_id])
    with session_scope(database_url) as s:
        item = s.get(JobItem, item_id)
        assert item is not None
        assert item.status.value == expected
        if expected == "failed":
            assert "worker process died 2 times" in (item.error or "")
            assert item.image_id is None


def test_a_job_this_database_does_not_know_is_refused_loudly(database_url, tmp_path):
    settings = _settings(database_url, tmp_path)
    ctx = TaskContext.from_settings(settings)
    with pytest.raises(UnknownJob, match=r"job 987654 is not in this worker's database"):
        run_stage(ctx, InProcessQueue(ctx), "mine", 987654, [1, 2])


def test_a_task_planned_in_another_database_is_refused_even_when_the_job_id_exists(database_url, tmp_path):
    """Two deployments both have a job 1: the message names the database it was planned in."""
    settings = _settings(database_url, tmp_path)
    job_id = _plan(settings, tmp_path, n=2)
    ctx = TaskContext.from_settings(settings)
    with session_scope(database_url) as s:
        ids = list(s.scalars(select(JobItem.id).where(JobItem.job_id == job_id)))
    with pytest.raises(WrongDatabase, match="configured for another database"):
        run_stage(ctx, InProcessQueue(ctx), "mine", job_id, ids, "0f0f0f0f-another-database")
    assert set(_statuses(database_url, job_id)) == {"pending"}
    own = ctx.database_id()
    assert own is not None and len(own.split(':')[0]) == 36
    run_stage(ctx, InProcessQueue(ctx), "mine", job_id, ids, own)
    assert set(_statuses(database_url, job_id)) == {"done"}


def test_a_copy_of_the_database_is_told_apart(fresh_pg_url, pg_template, tmp_path):
    """Both copies of one template hold the same identity row and a job 1 of their own: a task
    planned in one is refused by a worker on the other, which mines nothing."""
    import os

    from tests.conftest import create_pg_database, drop_pg_database

    name = f"de_copy_{os.getpid()}"
    other_url = create_pg_database(name, template=pg_template)
    try:
        here = _settings(fresh_pg_url, tmp_path / "a")
        there = _settings(other_url, tmp_path / "b")
        job_here, job_there = _plan(here, tmp_path / "a", n=2), _plan(there, tmp_path / "b", n=2)
        assert job_here == job_there
        ctx_here, ctx_there = TaskContext.from_settings(here), TaskContext.from_settings(there)
        assert ctx_here.database_id() != ctx_there.database_id()
        with session_scope(other_url) as s:
            ids = list(s.scalars(select(JobItem.id).where(JobItem.job_id == job_there)))
        with pytest.raises(WrongDatabase):
            run_stage(ctx_there, InProcessQueue(ctx_there), "mine", job_there, ids, ctx_here.database_id())
        assert set(_statuses(other_url, job_there)) == {"pending"}
    finally:
        drop_pg_database(name)


def test_items_failed_because_the_disk_was_full_are_retried_once_there_is_room(database_url, tmp_path):
    roomy = _settings(database_url, tmp_path, stale_after_s=600)
    job_id = _plan(roomy, tmp_path, n=3)
    ctx = TaskContext.from_settings(roomy)
    heal_once(ctx, InProcessQueue(ctx))  # not stale: nothing runs
    with session_scope(database_url) as s:  # as mining leaves an item the full media store refused
        s.execute(update(JobItem).where(JobItem.job_id == job_id).values(
            status=ItemStatus.FAILED, error="media store: no space left on device", attempts=1,
            retry_at=utcnow() - dt.timedelta(seconds=1), dispatched_at=utcnow()))
        s.execute(update(MiningJob).where(MiningJob.id == job_id).values(status=JobStatus.DONE))
    full = _settings(database_url, tmp_path, stale_after_s=600, min_free_bytes=10**18)  # no disk is that big
    full_ctx = TaskContext.from_settings(full)
    assert heal_once(full_ctx, InProcessQueue(full_ctx)).retried == 0
    assert set(_statuses(database_url, job_id)) == {"failed"}
    report = heal_once(ctx, InProcessQueue(ctx))
    assert report.retried == 3 and report.resent == {"mine": 3}
    assert set(_statuses(database_url, job_id)) == {"done"}
    assert _job_status(database_url, job_id) == "done"
    with session_scope(database_url) as s:
        assert set(s.scalars(select(JobItem.retry_at).where(JobItem.job_id == job_id))) == {None}


def test_work_a_running_batch_holds_is_never_sent_again(fresh_pg_url, tmp_path):
    settings = _settings(fresh_pg_url, tmp_path, stale_after_s=60)
    job_id = _plan(settings, tmp_path, n=4)
    _age(fresh_pg_url, job_id, 3600)
    ctx = TaskContext.from_settings(settings)
    dsn = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as held:  # a worker mining two of the items right now
        held.execute("SELECT id FROM job_items WHERE job_id = %s ORDER BY id LIMIT 2 FOR UPDATE", (job_id,))
        report = heal_once(ctx, InProcessQueue(ctx))
        assert report.resent == {"mine": 2}
        held.rollback()
    assert _statuses(fresh_pg_url, job_id) == ["pending", "pending", "done", "done"]
    _age(fresh_pg_url, job_id, 3600)
    assert heal_once(ctx, InProcessQueue(ctx)).resent == {"mine": 2}
    assert set(_statuses(fresh_pg_url, job_id)) == {"done"}


def test_stale_work_waits_while_its_queue_holds_messages(fresh_pg_url, tmp_path, broker_url):
    """A backlog is not a loss: copies are sent only once the queue has drained."""
    settings = _settings(fresh_pg_url, tmp_path, stale_after_s=60)
    settings = settings.model_copy(update={"broker_url": broker_url})
    job_id = _plan(settings, tmp_path, n=5)
    _age(fresh_pg_url, job_id, 3600)
    ctx = TaskContext.from_settings(settings)
    queue = CeleryQueue(create_celery(settings), retries=0)
    queue.enqueue("dataengine.mine.batch", [0, []], queue="cpu")  # someone else's message, waiting
    client = redis.Redis.from_url(broker_url)
    assert client.llen("cpu") == 1
    report = heal_once(ctx, queue)
    assert report.resent == {} and report.waiting == {"mine": 5}
    client.delete("cpu")
    report = heal_once(ctx, queue)
    assert report.resent == {"mine": 5}
    assert client.llen("cpu") == 1  # one batch of five (batch_sizes.mine = 64)
    body = json.loads(base64.b64decode(json.loads(client.lindex("cpu", 0))["body"]))
    assert body[0] == [job_id, [i for i in body[0][1]], ctx.database_id()] and len(body[0][1]) == 5
    client.close()


def test_a_broker_that_refuses_a_hand_off_leaves_the_work_to_the_healer(fresh_pg_url, tmp_path):
    with socket_closed_port() as port:
        settings = make_settings(fresh_pg_url, tmp_path, broker_url=f"redis://127.0.0.1:{port}/0")
        ctx = TaskContext.from_settings(settings)
        queue = CeleryQueue(create_celery(settings), retries=1)
        started = time.monotonic()
        with pytest.raises(HandOffFailed):
            queue.enqueue("dataengine.mine.batch", [1, [1]], queue="cpu")
        assert not hand_off(ctx, queue, "mine", 1, [1, 2, 3])
        assert time.monotonic() - started < 30


class socket_closed_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_batch_that_raises_is_split_down_to_the_item_that_raises(database_url, tmp_path, monkeypatch):
    """An error no check foresaw (injected here: decoding one marked image raises) fails that item
    alone, with the error as its reason; the rest of its batch is mined and the job ends."""
    import engine.services.mine as mine_service

    settings = _settings(database_url, tmp_path)
    src = _folder(tmp_path, 5)
    poison = jpeg_bytes(photo(999, (64, 48)))
    (src / "02.jpg").write_bytes(poison)
    real = mine_service.prepare_image

    def prepare(data: bytes, **kwargs):  # type: ignore[no-untyped-def]
        if data == poison:
            raise RuntimeError("injected fault")
        return real(data, **kwargs)

    monkeypatch.setattr(mine_service, "prepare_image", prepare)
    from pipelines.runner import run_mine

    result = run_mine(settings, str(src), job_name="raises", until="mine")
    assert result.report.status == "done"
    with session_scope(database_url) as s:
        items = {i.key: i for i in s.scalars(select(JobItem))}
    assert items["02.jpg"].status is ItemStatus.FAILED
    assert items["02.jpg"].error == "internal error: RuntimeError: injected fault"
    assert {k: i.status.value for k, i in items.items() if k != "02.jpg"} == dict.fromkeys(
        ["00.jpg", "01.jpg", "03.jpg", "04.jpg"], "done")
