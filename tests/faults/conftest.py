"""Fault injection on real parts: ``dataengine worker`` / ``beat`` / ``mine`` processes, a private
PostgreSQL, private Redis and RabbitMQ brokers (tests/services_private.py) that the tests may kill
and restart, a local HTTP server. The shared services are never touched.

Timings are shrunk for the tests (``FAULT_PIPELINE``): the healer runs every second and sends work
again that was handed to the broker 4 s ago and is not being worked on."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.db.models import ItemStatus, JobItem, JobStatus, MiningJob
from engine.db.session import dispose_engines, session_scope
from engine.settings import PipelineSettings, Settings
from pipelines.runner import RunResult, run_mine
from tests.conftest import LOCAL_FETCH_ENV, make_settings
from tests.faults.processes import Gate, Proc, wait_until
from tests.httpserver import TestServer, send
from tests.services_private import (
    PG_BIN,
    RABBITMQ_BIN,
    PrivatePostgres,
    PrivateRabbitMQ,
    PrivateRedis,
    PrivateServer,
    start_private_postgres,
    start_private_rabbitmq,
    start_private_redis,
)

FAULT_PIPELINE = {"heal_interval_s": 1.0, "stale_after_s": 4.0, "visibility_timeout_s": 6,
                  "max_item_crashes": 2, "min_free_bytes": 256 * 1024}
MINE_BATCH = 4
_counter = itertools.count()


# ---------------------------------------------------------------------------- private services
@pytest.fixture(scope="session")
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0 or shutil.which("runuser") is None or not (PG_BIN / "initdb").exists():
        pytest.skip(f"a private PostgreSQL is started as the postgres user: needs root, runuser and {PG_BIN}/initdb "
                    "(DATAENGINE_TEST_PG_BIN)")
    server = start_private_postgres(tmp_path_factory.mktemp("private-pg"))
    server.create_database("fault_template")  # migrated once; every test copies it
    yield server
    dispose_engines()
    server.close()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = start_private_redis(tmp_path_factory.mktemp("private-redis"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.skip("RabbitMQ is not installed (apt-get install rabbitmq-server)")
    server = start_private_rabbitmq(tmp_path_factory.mktemp("private-rabbitmq"))
    yield server
    server.close()


@dataclass
class Broker:
    name: str
    server: PrivateServer

    @property
    def url(self) -> str:
        return self.server.url

    def clear(self) -> None:
        """Drop every message a previous test left (job ids repeat across the tests' databases)."""
        if isinstance(self.server, PrivateRedis):
            import redis

            client = redis.Redis.from_url(self.url)
            client.flushall()
            client.close()
            return
        import amqp

        conn = amqp.Connection(f"127.0.0.1:{self.server.port}", userid="guest", password="guest")
        conn.connect()
        try:
            for queue in ("io", "cpu", "gpu"):
                channel = conn.channel()
                try:
                    channel.queue_purge(queue)
                except amqp.exceptions.NotFound:
                    pass
        finally:
            conn.close()

    def restart(self) -> None:
        self.server.restart()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    server = request.getfixturevalue(f"private_{request.param}")
    if not server.running():  # a test before may have left it stopped
        server.start()
    found = Broker(request.param, server)
    found.clear()
    yield found
    if server.running():
        found.clear()


# ---------------------------------------------------------------------------- one test's cluster
@dataclass
class Cluster:
    """A job's world: its database, broker, media root, and the processes a test started."""

    pg: PrivatePostgres
    db_url: str
    broker: Broker
    root: Path
    media_root: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)  # dropped at the end

    def new_database(self) -> str:
        """Another migrated database on the same private server (its URL)."""
        name = f"fault_{next(_counter)}"
        self.databases.append(name)
        return self.pg.create_database(name, template="fault_template")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
        env.update({
            "DATAENGINE_DATABASE_URL": self.db_url,
            "DATAENGINE_BROKER_URL": self.broker.url,
            "DATAENGINE_MEDIA_ROOT": str(self.media_root),
            "DATAENGINE_DATA_DIR": str(self.root / "data"),
            "DATAENGINE_BATCH_SIZES__MINE": str(MINE_BATCH),
            "DATAENGINE_FETCH__CONCURRENCY": "2",
            "DATAENGINE_FETCH__RETRIES": "1",
            "DATAENGINE_FETCH__BACKOFF_S": "0.05",
            "HF_HUB_OFFLINE": "1",
            **LOCAL_FETCH_ENV,
            **{f"DATAENGINE_PIPELINE__{k.upper()}": str(v) for k, v in FAULT_PIPELINE.items()},
            **self.env_extra,
            **extra,
        })
        return env

    def settings(self, **overrides: Any) -> Settings:
        settings = make_settings(self.db_url, self.root, broker_url=self.broker.url, media_root=self.media_root,
                                 pipeline=PipelineSettings(**FAULT_PIPELINE), **overrides)
        settings.batch_sizes.mine = MINE_BATCH
        return settings

    def _start(self, args: list[str], name: str, **env: str) -> Proc:
        proc = Proc(args, self.env(**env), self.root / f"{name}.log", self.root)
        self.procs.append(proc)
        return proc

    def worker(self, queues: str = "io,cpu", concurrency: int = 1, wait: bool = True, **env: str) -> Proc:
        n = sum(1 for p in self.procs if p.args[0] == "worker")
        proc = self._start(["worker", "--queues", queues, "--concurrency", str(concurrency),
                            "--hostname", f"fault{os.getpid()}-{next(_counter)}@%h"], f"worker{n}", **env)
        if wait:
            proc.wait_for_output(" ready.", timeout=90)
        return proc

    def beat(self, wait: bool = True) -> Proc:
        """``dataengine beat``: the healer every ``heal_interval_s`` where no follow loop runs."""
        proc = self._start(["beat"], "beat")
        if wait:
            proc.wait_for_output("Sending due task heal", timeout=60)
        return proc

    def mine_cli(self, source: str | Path, job: str, *args: str) -> Proc:
        """``dataengine mine`` in the foreground: its follow loop heals."""
        return self._start(["mine", str(source), "--job", job, *args], f"mine-{job}")

    def plan(self, source: str | Path, job: str, until: str = "mine", **kwargs: Any) -> int:
        """Plan the job and hand it to the broker; return its id (no follow loop here)."""
        result = run_mine(self.settings(), str(source), job_name=job, until=until, wait=False, **kwargs)
        return result.plan.job_id

    def follow(self, source: str | Path, job: str, until: str = "mine", timeout_s: float = 120,
               **kwargs: Any) -> Callable[[], RunResult]:
        """``run_mine(..., wait=True)`` in a thread (the foreground follow loop); returns a join."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = run_mine(self.settings(), str(source), job_name=job, until=until,
                                         timeout_s=timeout_s, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised by join
                box["error"] = exc

        thread = threading.Thread(target=run, name=f"follow-{job}", daemon=True)
        thread.start()
        self.threads.append(thread)

        def join() -> RunResult:
            thread.join(timeout_s + 30)
            assert not thread.is_alive(), "the follow loop did not return"
            if "error" in box:
                raise box["error"]
            return box["result"]

        return join

    def job_id(self, name: str) -> int | None:
        with session_scope(self.db_url) as s:
            return s.scalar(select(MiningJob.id).where(MiningJob.name == name))

    def counts(self, job_id: int) -> dict[ItemStatus, int]:
        with session_scope(self.db_url) as s:
            return {status: n for status, n in s.execute(
                select(JobItem.status, func.count()).where(JobItem.job_id == job_id)
                .group_by(JobItem.status)).all()}

    def finished_items(self, job_id: int) -> int:
        return sum(n for status, n in self.counts(job_id).items() if status is not ItemStatus.PENDING)

    def job_status(self, job_id: int) -> JobStatus | None:
        try:
            with session_scope(self.db_url) as s:
                job = s.get(MiningJob, job_id)
                return job.status if job else None
        except Exception:  # noqa: BLE001 - the database may be restarting
            return None

    def wait_done(self, job_id: int, timeout: float = 90) -> float:
        """Wait until the job is done; return the seconds it took from now."""
        began = time.monotonic()

        def done() -> bool:
            return self.job_status(job_id) is JobStatus.DONE

        try:
            wait_until(done, timeout, f"job {job_id} done", poll=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; items {self.counts(job_id)}\n{self.logs()}") from None
        return time.monotonic() - began

    def logs(self, tail: int = 2500) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-tail:]}" for p in self.procs)

    def close(self) -> None:
        """Kill what the test started (its assertions are made; a clean shutdown only costs time)."""
        for proc in self.procs:
            proc.kill()
            proc.close()
        dispose_engines()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item: a failed test's cluster prints its processes' logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def cluster(private_pg: PrivatePostgres, broker: Broker, tmp_path: Path,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if not private_pg.running():
        private_pg.start()
    found = Cluster(private_pg, "", broker, tmp_path, tmp_path / "media")
    found.db_url = found.new_database()
    found.media_root.mkdir()
    yield found
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(found.logs(tail=6000))
    found.close()
    if broker.server.running():
        broker.clear()
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=private_pg.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            for name in found.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture
def recovery(request: pytest.FixtureRequest, broker: Broker) -> Callable[[float], float]:
    """``recovery(fault_at)``: the seconds from the fault (a ``time.monotonic()``) to now, appended as
    a JSON line to ``$DATAENGINE_TEST_RECOVERY_LOG`` when set (bench/recovery.py reads it)."""

    def record(fault_at: float) -> float:
        seconds = time.monotonic() - fault_at
        path = os.environ.get("DATAENGINE_TEST_RECOVERY_LOG")
        if path:
            fault = request.node.originalname.removeprefix("test_")
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps({"fault": fault, "broker": broker.name, "seconds": round(seconds, 3)}) + "\n")
        return seconds

    return record


# ---------------------------------------------------------------------------- what gets mined
def write_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (96, 72)) -> list[bytes]:
    from tests.factories import jpeg_bytes, photo

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        data = jpeg_bytes(photo(seed + i, size))
        (folder / f"img{i:03d}.jpg").write_bytes(data)
        out.append(data)
    return out


def url_listing(folder: Path, server: TestServer, n: int, seed: int, gated: int | None = 0) -> tuple[Path, Gate]:
    """A URL list of ``n`` distinct JPEGs served by ``server``; the download of item ``gated`` waits at
    a gate until the test opens it (its batch is then provably in progress)."""
    from tests.factories import jpeg_bytes, photo

    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    gate = Gate(jpeg_bytes(photo(seed, (96, 72))))
    for i in range(n):
        path = f"/img{i:03d}.jpg"
        if i == gated:
            server.routes[path] = gate
        else:
            data = jpeg_bytes(photo(seed + i, (96, 72)))
            server.routes[path] = lambda h, _attempt, d=data: send(h, 200, d)
        urls.append(server.url(path))
    listing = folder / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    return listing, gate
