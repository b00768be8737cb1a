"""A real Celery worker process (``dataengine worker``) on Redis and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import LOCAL_FETCH_ENV

REDIS_DB = int(os.environ.get("DATAENGINE_TEST_REDIS_DB", "14"))


class Worker:
    def __init__(self, env: dict[str, str], log: Path, queues: str, concurrency: int) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dataengine", "worker", "--queues", queues,
             "--concurrency", str(concurrency), "--hostname", f"test{os.getpid()}-{log.stem}@%h"],
            env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()}")
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no chance to clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()


@pytest.fixture
def broker_url(shared_redis: str) -> Iterator[str]:
    url = f"{shared_redis}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def start_worker(fresh_pg_url: str, broker_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(queues: str = "io,cpu", concurrency: int = 2, **env_extra: str) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
        env.update({
            "DATAENGINE_DATABASE_URL": fresh_pg_url,
            "DATAENGINE_BROKER_URL": broker_url,
            "DATAENGINE_MEDIA_ROOT": str(tmp_path / "media"),
            "DATAENGINE_DATA_DIR": str(tmp_path / "data"),
            **LOCAL_FETCH_ENV,  # workers mine from the tests' 127.0.0.1 servers
            **env_extra,
        })
        worker = Worker(env, tmp_path / f"worker{len(workers)}.log", queues, concurrency)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
