"""Helpers shared by the benchmarks: medians, peak RSS, /proc CPU accounting, tables, JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULT_PREFIX = "RESULT "


# ----------------------------------------------------------------------------- runs in a child process
def child_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of a benchmark that measures each run in a fresh child process: its description,
    ``--settle`` (wait for an idle machine before each run) and the hidden ``--_child SPEC``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=20.0,
                        help="before each run wait up to this many seconds for the shared machine to be idle")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    return parser


def child_result(result: dict[str, Any]) -> None:
    """A child run's figures, for :func:`run_child` to read."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(module: str, spec: dict[str, Any], what: str, *, show_log: bool = False) -> dict[str, Any]:
    """Run ``python -m module --_child SPEC`` and return the figures it reported; exit with its
    error output when it fails."""
    proc = subprocess.run([sys.executable, "-m", module, "--_child", json.dumps(spec)], capture_output=True,
                          text=True, cwd=REPO, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{what} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if show_log:
        print(proc.stderr[-2000:])
    return json.loads(lines[-1][len(RESULT_PREFIX):])


# ----------------------------------------------------------------------------- statistics
def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def spread(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    return (min(vals), max(vals)) if vals else (None, None)


# ----------------------------------------------------------------------------- memory
def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MiB (Linux reports ru_maxrss in KiB). RUSAGE_CHILDREN: the largest
    waited-for descendant, not the sum of the tree."""
    return resource.getrusage(who).ru_maxrss / 1024


def peak_rss() -> dict[str, float]:
    return {"self_mb": round(maxrss_mb(resource.RUSAGE_SELF), 1),
            "children_mb": round(maxrss_mb(resource.RUSAGE_CHILDREN), 1)}


def hwm_mb(pid: int | str = "self") -> float | None:
    """Peak RSS (VmHWM) of a process in MiB. Unlike ru_maxrss, which Linux carries across exec()
    from the parent's address space, VmHWM belongs to the current address space only."""
    kb = proc_status_kb(pid, "VmHWM")  # type: ignore[arg-type]
    return kb / 1024 if kb is not None else None


def proc_status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            raw = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    head, _, tail = raw.rpartition(")")
    comm = head.partition("(")[2]
    return [comm] + tail.split()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc; psutil is not a dependency)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and len(fields) > 2 and fields[2] == str(pid):
                out.append(int(entry))
    return sorted(out)


def process_tree(pid: int) -> list[int]:
    tree, frontier = [pid], [pid]
    while frontier:
        nxt = []
        for p in frontier:
            nxt.extend(children_of(p))
        tree.extend(nxt)
        frontier = nxt
    return tree


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one live process, seconds."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 14:
        return 0.0
    # after comm: state(1) ppid(2) ... utime is field 14 of stat → index 12 here, stime index 13
    return (int(fields[12]) + int(fields[13])) / CLK_TCK


def cpu_by_comm(prefixes: Sequence[str]) -> float:
    """Summed utime + stime of all live processes whose name starts with one of ``prefixes``."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and len(fields) >= 14 and fields[0].startswith(tuple(prefixes)):
                total += (int(fields[12]) + int(fields[13])) / CLK_TCK
    return total


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, all cores, by /proc/stat category."""
    with open("/proc/stat", encoding="ascii") as handle:
        parts = handle.readline().split()
    values = [int(v) / CLK_TCK for v in parts[1:1 + len(STAT_FIELDS)]]
    return dict(zip(STAT_FIELDS, values, strict=False))


def machine_cpu_s() -> float:
    """Busy CPU seconds of this machine since boot: user + nice + system + irq + softirq
    (idle, iowait and steal, time the hypervisor gave to other guests, are not ours)."""
    c = machine_cpu()
    return sum(c[k] for k in ("user", "nice", "system", "irq", "softirq"))


def all_process_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and len(fields) >= 14:
                out[int(entry)] = (fields[0], (int(fields[12]) + int(fields[13])) / CLK_TCK)
    return out


@dataclass
class CpuSnapshot:
    """CPU seconds spent so far by: the machine, PostgreSQL, Redis, and some process trees."""

    machine: float
    postgres: float
    redis: float
    procs: float
    stat: dict[str, float] | None = None
    members: frozenset[int] = frozenset()
    everyone: dict[int, tuple[str, float]] | None = None

    @classmethod
    def take(cls, trees: Iterable[int] = (), pids: Iterable[int] = ()) -> CpuSnapshot:
        """``trees``: processes counted with all their descendants; ``pids``: counted alone."""
        members = set(pids)
        for pid in trees:
            members.update(process_tree(pid))
        procs = sum(proc_cpu_s(p) for p in members)
        return cls(machine_cpu_s(), cpu_by_comm(["postgres", "postmaster"]),
                   cpu_by_comm(["redis-server"]), procs, machine_cpu(), frozenset(members),
                   all_process_cpu())

    def since(self, earlier: CpuSnapshot) -> dict[str, Any]:
        out: dict[str, Any] = {
            "machine_s": round(self.machine - earlier.machine, 3),
            "postgres_s": round(self.postgres - earlier.postgres, 3),
            "redis_s": round(self.redis - earlier.redis, 3),
            "procs_s": round(self.procs - earlier.procs, 3)}
        if self.stat and earlier.stat:
            out["machine_by_kind_s"] = {k: round(self.stat[k] - earlier.stat[k], 3) for k in STAT_FIELDS}
        if self.everyone and earlier.everyone:  # who else used the CPU meanwhile (live processes)
            others = []
            for pid, (comm, cpu) in self.everyone.items():
                before = earlier.everyone.get(pid)
                if pid in self.members or comm.startswith(("postgres", "postmaster", "redis-server")):
                    continue
                used = cpu - (before[1] if before and before[0] == comm else 0.0)
                if used >= 0.05:
                    others.append((round(used, 2), comm, pid))
            out["other_processes"] = [{"comm": c, "pid": p, "cpu_s": u} for u, c, p in sorted(others, reverse=True)[:5]]
        return out


# ----------------------------------------------------------------------------- output
def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "",
                 left: int = 1) -> str:
    """A plain-text table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    cells = [[str(c) for c in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row]
                                            for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=False)))

    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def environment() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env: dict[str, Any] = {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
        "cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
    }
    try:
        import PIL
        from PIL import features

        env["pillow"] = PIL.__version__
        env["libjpeg_turbo"] = features.check_feature("libjpeg_turbo")
        env["libjpeg"] = features.version("jpg")
    except Exception:  # noqa: BLE001 - informational only
        pass
    return env


def wait_for_quiet(max_busy_cores: float = 0.3, timeout_s: float = 30.0, window_s: float = 1.0) -> float:
    """Wait (up to ``timeout_s``) until the machine's busy CPU over ``window_s`` falls below
    ``max_busy_cores``: the machines are shared. Returns the last measured busy cores."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = machine_cpu_s()
        time.sleep(window_s)
        busy = (machine_cpu_s() - before) / window_s
        if busy <= max_busy_cores or time.monotonic() >= deadline:
            return round(busy, 2)


# ============================================================================ databases
class BenchDatabases:
    """A fresh, migrated PostgreSQL database and media root per run, dropped afterwards."""

    def __init__(self, admin_url: str, tmp: Path, prefix: str = "de_bench") -> None:
        from sqlalchemy.engine import make_url

        self.pg = make_url(admin_url)
        self.tmp = tmp
        self.prefix = prefix
        self.counter = 0

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(host=self.pg.host or "127.0.0.1", port=self.pg.port or 5432,
                               user=self.pg.username or "postgres", password=self.pg.password,
                               dbname=self.pg.database or "postgres", autocommit=True)

    def pg_version(self) -> str:
        with self._admin() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        import psycopg
        from psycopg import sql

        import migrations
        from engine.db.session import dispose_engines

        self.counter += 1
        name = f"{self.prefix}_{os.getpid()}_{self.counter}"
        url = self.pg.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with self._admin() as conn:
            conn.execute(drop)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            migrations.upgrade(url)
            yield url
        finally:
            dispose_engines(close=True)
            try:
                with self._admin() as conn:
                    conn.execute(drop)
            except psycopg.Error as exc:
                print(f"  warning: could not drop database {name}: {exc}", file=sys.stderr)

    @contextlib.contextmanager
    def media_root(self) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix="media_", dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def build_dir_atomically(final: Path, build: Any, prefix: str = ".build-") -> None:
    """Fill a temporary sibling of ``final`` with ``build(tmp)`` and rename it into place, so an
    interrupted build never leaves a half-written cache folder behind."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp creates 0700
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Pg:
    """The administrative connection parameters (database ``postgres``)."""

    host: str
    port: int
    user: str
    password: str | None
    admin_db: str

    @classmethod
    def from_url(cls, url: str) -> Pg:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return cls(u.host or "127.0.0.1", u.port or 5432, u.username or "postgres", u.password,
                   u.database or "postgres")

    def url(self, database: str) -> str:
        from sqlalchemy.engine import URL

        return URL.create("postgresql+psycopg", username=self.user, password=self.password, host=self.host,
                          port=self.port, database=database).render_as_string(hide_password=False)

    def connect(self, database: str | None = None, autocommit: bool = True) -> Any:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database or self.admin_db, autocommit=autocommit)

    def exists(self, name: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    @contextlib.contextmanager
    def building(self, name: str) -> Iterator[str]:
        """A new database under a build name for the block to fill; when the block succeeds it is
        renamed to ``name`` and closed to connections (a template to copy), when it fails it is dropped."""
        from psycopg import sql

        from engine.db.session import dispose_engines

        build = f"{name[:50]}_b{os.getpid()}"
        self.drop(build)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(build)))
        try:
            yield build
            dispose_engines(close=True)  # the block's pooled connections would block the rename
            with self.connect() as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(build),
                                                                               sql.Identifier(name)))
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        except BaseException:
            dispose_engines(close=True)
            self.drop(build)
            raise

    def drop(self, name: str) -> None:
        from psycopg import sql

        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    def version(self) -> str:
        with self.connect() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    def settings(self) -> dict[str, str]:
        names = ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "autovacuum", "work_mem",
                 "random_page_cost", "effective_cache_size", "wal_level")
        with self.connect() as conn:
            return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}
