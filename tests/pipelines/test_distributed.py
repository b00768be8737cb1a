"""Mining through real Celery worker processes: Redis broker, PostgreSQL, crash and resume."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from engine.db.models import Image, ItemStatus, JobItem
from engine.db.session import session_scope
from engine.repositories import jobs as jobs_repo
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import bad_corpus, jpeg_bytes, photo
from tests.httpserver import slow


def test_job_runs_across_worker_processes(start_worker, fresh_pg_url, broker_url, tmp_path):
    src = tmp_path / "src"
    expected = bad_corpus(src)
    for n in range(30):
        (src / f"img{n:02d}.jpg").write_bytes(jpeg_bytes(photo(200 + n, (160, 120))))
        expected[f"img{n:02d}.jpg"] = "done"
    start_worker(queues="io,cpu", concurrency=2)
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    settings.batch_sizes.mine = 4
    result = run_mine(settings, str(src), job_name="dist", until="mine", timeout_s=120)
    assert result.finished and not settings.embedded
    assert result.seconds == {}  # nothing ran in this process
    with session_scope(fresh_pg_url) as s:
        got = {k: v.value for k, v in s.execute(select(JobItem.key, JobItem.status)).all()}
        # two worker processes: whichever of the two identical files committed first is kept
        copies = ("good.jpg", "zz-copy-of-good.jpg")
        assert sorted(got.pop(k) for k in copies) == ["done", "duplicate"]
        assert got == {k: v for k, v in expected.items() if k not in copies}
        assert s.scalar(select(func.count()).select_from(Image)) == 33  # 30 + good, other, near-dup
    assert result.report.status == "done"
    assert result.report.stages[0].counts["failed"] == 4


def test_crashed_worker_job_resumes_without_duplicates(start_worker, fresh_pg_url, broker_url,
                                                       tmp_path, http_server):
    urls = []
    for n in range(40):
        data = jpeg_bytes(photo(300 + n, (96, 72)))
        http_server.routes[f"/{n}.jpg"] = slow(0.15, lambda h, a, d=data: _send(h, d))
        urls.append(http_server.url(f"/{n}.jpg"))
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    settings.batch_sizes.mine = 4
    worker = start_worker(queues="io", concurrency=1, DATAENGINE_FETCH__CONCURRENCY="1")
    first = run_mine(settings, str(listing), job_name="crash", until="mine", wait=False)
    job_id = first.plan.job_id
    _wait_until(lambda: _done(fresh_pg_url, job_id) >= 8, timeout=60)
    worker.kill()
    done_at_crash = _done(fresh_pg_url, job_id)
    assert 8 <= done_at_crash < 40, "the crash must hit the middle of the job"

    start_worker(queues="io", concurrency=2)
    resumed = run_mine(settings, str(listing), job_name="crash", timeout_s=120)
    assert resumed.plan.job_id == job_id and resumed.plan.new_items == 0
    assert resumed.finished
    with session_scope(fresh_pg_url) as s:
        items = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        assert [i.status for i in items] == [ItemStatus.DONE] * 40
        # a batch cut short by the crash committed nothing: every item was recorded exactly once
        assert {i.attempts for i in items} == {1}
        assert s.scalar(select(func.count()).select_from(Image)) == 40
        assert len({i.image_id for i in items}) == 40


def _send(handler, data):
    from tests.httpserver import send

    send(handler, 200, data)


def _done(url, job_id):
    with session_scope(url) as s:
        counts = jobs_repo.status_counts(s, job_id)
    return sum(n for status, n in counts.items() if status is not ItemStatus.PENDING)


def _wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_lease_expiry_task_runs_on_a_worker(start_worker, fresh_pg_url, broker_url, tmp_path):
    import datetime as dt

    from engine.db.base import utcnow
    from engine.db.models import HumanTask, TaskState
    from engine.services import queue
    from pipelines.celery_app import create_celery
    from tests.engine.services.test_queue import KINDS, seed

    _, (user,) = seed(fresh_pg_url, 1)
    with session_scope(fresh_pg_url) as s:
        task = queue.next_task(s, user, KINDS, lease_s=1, now=utcnow() - dt.timedelta(seconds=10))
    start_worker(queues="cpu", concurrency=1)
    settings = make_settings(fresh_pg_url, tmp_path, broker_url=broker_url)
    create_celery(settings).send_task("dataengine.queue.expire_leases", queue="cpu")

    def reopened():
        with session_scope(fresh_pg_url) as s:
            return s.get(HumanTask, task.id).state is TaskState.OPEN

    _wait_until(reopened, timeout=60)
