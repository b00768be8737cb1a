"""The private servers of tests/services_private.py: they start, answer, restart and come back."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import amqp
import psycopg
import pytest
import redis

from tests.services_private import (
    answers,
    start_private_postgres,
    start_private_rabbitmq,
    start_private_redis,
    tmpfs,
)


def _pg_value(url: str) -> int:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, connect_timeout=3) as conn:
        return conn.execute("SELECT count(*) FROM mining_jobs").fetchone()[0]


@pytest.mark.postgres
def test_private_postgres_is_migrated_and_survives_restart_and_kill(tmp_path: Path) -> None:
    server = start_private_postgres(tmp_path / "pg")
    try:
        assert server.port != 5432
        assert _pg_value(server.url) == 0  # Alembic made the schema
        server.restart()
        assert _pg_value(server.url) == 0
        server.kill()
        assert not answers(server.port)
        with pytest.raises(psycopg.OperationalError):
            _pg_value(server.url)
        server.start()  # crash recovery from the kill
        assert _pg_value(server.url) == 0
    finally:
        server.close()
    assert not server.data.exists()


@pytest.mark.redis
def test_private_redis_restarts_empty(tmp_path: Path) -> None:
    server = start_private_redis(tmp_path / "redis")
    try:
        assert server.port != 6379
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        server.restart()
        assert client.get("k") is None  # no persistence: a restart loses what was queued
        server.kill()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert client.ping()
        client.close()
    finally:
        server.close()


@pytest.mark.rabbitmq
def test_private_rabbitmq_keeps_durable_messages_across_restart(tmp_path: Path) -> None:
    server = start_private_rabbitmq(tmp_path / "rabbitmq")
    try:
        assert server.port != 5672 and server.start_seconds[0] < 60

        def connect() -> amqp.Connection:
            conn = amqp.Connection(f"127.0.0.1:{server.port}", userid="guest", password="guest")
            conn.connect()
            return conn

        conn = connect()
        channel = conn.channel()
        channel.queue_declare("q", durable=True, auto_delete=False)
        channel.basic_publish(amqp.Message("hello", delivery_mode=2), routing_key="q")
        conn.close()
        server.restart()
        conn = connect()
        message = conn.channel().basic_get("q", no_ack=True)
        assert message is not None and message.body in ("hello", b"hello")
        conn.close()
        server.kill()
        assert not answers(server.port)
        server.start()
        connect().close()
    finally:
        server.close()
    assert not answers(server.port)


def test_tmpfs_fills_up_and_is_unmounted(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    with tmpfs(mount, 1):
        assert os.path.ismount(mount)
        with pytest.raises(OSError) as caught:
            (mount / "big").write_bytes(b"\0" * (2 << 20))
        assert caught.value.errno == errno.ENOSPC
    assert not os.path.ismount(mount)
