"""Private PostgreSQL, Redis and RabbitMQ servers on free 127.0.0.1 ports, and small tmpfs mounts.

Fault-injection tests stop, kill and restart these; the shared services on the usual ports are never
touched. Each starter returns a started server with ``.url``, ``.start()``, ``.stop()`` (clean),
``.kill()`` (SIGKILL of its whole process group: a crash) and ``.restart()``; ports stay the same
across restarts, so clients reconnect to the same URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("DATAENGINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_BIN = Path(os.environ.get("DATAENGINE_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def answers(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(ready: Callable[[], bool], timeout: float, what: str, log: Path | None = None,
             proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout}s\n{tail}")


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody reaped."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class PrivateServer:
    """One server process group; subclasses say how to start it and when it answers."""

    name = "server"
    start_timeout_s = 30.0

    def __init__(self, dir: Path, port: int) -> None:  # noqa: A002
        self.dir = dir
        self.port = port
        self.log = dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []  # how long each start took

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def ready(self) -> bool:
        return answers(self.port)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running():
            return
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        wait_for(self.ready, self.start_timeout_s, f"{self.name} on port {self.port}", self.log, self.proc)
        self.start_seconds.append(time.monotonic() - began)

    def shutdown(self) -> None:
        """Ask the server to stop cleanly (default: SIGTERM to its process group)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30) -> None:
        if not self.running():
            self._reap()
            return
        self.shutdown()
        try:
            assert self.proc is not None
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the server's group: a crash, nothing flushed."""
        if self.proc is None:
            return
        group = self._group()
        self._reap()
        self.proc.wait(10)
        self._reap()
        wait_for(lambda: not answers(self.port, 0.2), 10, f"{self.name} port {self.port} to close")
        # a killed process closes its sockets before it is gone: wait until each is a zombie or gone,
        # or the next start may see a live pid in the lock files it left (PostgreSQL refuses to start)
        wait_for(lambda: all(_dead(pid) for pid in group), 10, f"{self.name} processes {group} to die")

    def _group(self) -> list[int]:
        """The pids of the server's process group now."""
        import psutil

        assert self.proc is not None
        pids = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.proc.pid:
                    pids.append(process.pid)
            except (OSError, psutil.Error):
                continue
        return pids

    def _reap(self) -> None:
        """Kill what is left of the group (children that outlived their leader)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()


class PrivateRedis(PrivateServer):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", str(self.dir)]

    def ready(self) -> bool:
        import redis

        try:
            client = redis.Redis(host=HOST, port=self.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


class PrivatePostgres(PrivateServer):
    """A cluster of its own, run as the postgres user (initdb refuses root).

    pytest's temporary folders are private to root, so the cluster lives in a folder of its own under
    the system temp dir that the postgres user owns; the server log stays in ``dir``.
    """

    name = "postgres"
    dbname = "dataengine"

    def __init__(self, dir: Path, port: int) -> None:  # noqa: A002
        super().__init__(dir, port)
        self.data = Path(tempfile.mkdtemp(prefix=f"de-pg{port}-"))
        shutil.chown(self.data, "postgres", "postgres")
        os.chmod(self.data, 0o700)
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.data),
                        "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, cwd=self.data)
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")

    @property
    def url(self) -> str:
        return self.database_url(self.dbname)

    def database_url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{dbname}"

    def command(self) -> list[str]:
        # the postmaster in the foreground, in its own session: kill() takes every backend with it
        return ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(self.data),
                "-p", str(self.port), "-k", str(self.data), "-c", f"listen_addresses={HOST}",
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host=HOST, port=self.port, user="postgres", dbname="postgres",
                                 connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def start(self) -> None:
        self._drop_stale_pid_file()
        super().start()

    def _drop_stale_pid_file(self) -> None:
        """After a kill the postmaster may linger as a zombie nobody reaps (no init in a container):
        PostgreSQL would take its lock files for a live server's and refuse to start."""
        socket_lock = self.data / f".s.PGSQL.{self.port}.lock"
        for lock in (self.data / "postmaster.pid", socket_lock):
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if _dead(pid):
                lock.unlink(missing_ok=True)
                if lock == socket_lock:
                    (self.data / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def shutdown(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "stop", "-D",
                        str(self.data), "-m", "fast", "-w", "-t", "20"], capture_output=True, cwd=self.data)

    def create_database(self, dbname: str, migrate: bool = True, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given, else migrated to head unless told not)."""
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"' + (f' TEMPLATE "{template}"' if template else ""))
        url = self.database_url(dbname)
        if migrate and template is None:
            import migrations
            from engine.db.session import dispose_engines

            migrations.upgrade(url)
            dispose_engines()
        return url

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


class PrivateRabbitMQ(PrivateServer):
    """A RabbitMQ node of its own: own node name, ports, Mnesia folder, config and Erlang cookie."""

    name = "rabbitmq"
    start_timeout_s = 90.0

    def __init__(self, dir: Path, port: int) -> None:  # noqa: A002
        super().__init__(dir, port)
        self.dist_port = free_port()
        self.node = f"rabbit{port}@localhost"
        (dir / "enabled_plugins").write_text("[].\n")
        (dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = {HOST}:{port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 1MB\n"
            "vm_memory_high_watermark.relative = 0.6\n"
        )
        (dir / "rabbitmq-env.conf").write_text("")  # not the system one, which names the shared node
        (dir / "home").mkdir(exist_ok=True)
        (dir / "logs").mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}//"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir / "home"),  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "logs"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": HOST,
        })
        return env

    def command(self) -> list[str]:
        return [str(RABBITMQ_BIN / "rabbitmq-server")]

    def ready(self) -> bool:
        import amqp

        if not answers(self.port):
            return False
        conn = amqp.Connection(f"{HOST}:{self.port}", userid="guest", password="guest", connect_timeout=2)
        try:
            conn.connect()
            return True
        except Exception:  # noqa: BLE001 - still booting
            return False
        finally:
            try:
                conn.collect()
            except Exception:  # noqa: BLE001
                pass

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env(),
                              capture_output=True, timeout=timeout, cwd=self.dir)

    def shutdown(self) -> None:
        try:
            self.ctl("stop")
        except subprocess.TimeoutExpired:
            pass


def start_private_postgres(dir: Path) -> PrivatePostgres:  # noqa: A002
    """Initialise, start and create the database ``dataengine`` migrated to head (``.url``)."""
    dir.mkdir(parents=True, exist_ok=True)
    server = PrivatePostgres(dir, free_port())
    try:
        server.start()
        server.create_database(server.dbname)
    except BaseException:
        server.close()
        raise
    return server


def start_private_redis(dir: Path) -> PrivateRedis:  # noqa: A002
    dir.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(dir, free_port())
    server.start()
    return server


def start_private_rabbitmq(dir: Path) -> PrivateRabbitMQ:  # noqa: A002
    """A node takes a few seconds to boot (``start_seconds``): keep one per module or session."""
    dir.mkdir(parents=True, exist_ok=True)
    server = PrivateRabbitMQ(dir, free_port())
    try:
        server.start()
    except BaseException:
        server.kill()
        raise
    return server


@contextmanager
def tmpfs(mount_point: Path, size_mb: float) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted on ``mount_point`` (made if missing), unmounted on exit."""
    mount_point.mkdir(parents=True, exist_ok=True)
    size_kb = max(int(size_mb * 1024), 4)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(mount_point)],
                   check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
