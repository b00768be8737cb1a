"""Ingest benchmark: mine a folder of generated JPEGs into PostgreSQL.

    python -m bench.ingest [--images 2000] [--mp-images 1000] [--repeats 3] [--quick]

Workload: deterministically generated, photo-like JPEGs (smooth colour fields, soft shapes, texture
and sensor-like noise; no two within pHash distance 12 of each other, so nothing is skipped as a
duplicate), cached under bench/results/cache:

* ``mixed``: ``--images`` JPEGs, long side uniform in 256..2048 px, assorted aspect ratios;
* ``1mp``:   ``--mp-images`` JPEGs of 1152x864 (0.995 MP), for the target figure
  "at least 150 images/s per core for decode + hash + store + DB of ~1 MP JPEGs".

Each run mines the folder with ``pipelines.runner.run_mine`` into a fresh PostgreSQL database
(``de_bench_<pid>_<n>``, migrated with ``migrations.upgrade``, dropped afterwards) and a fresh
media root, in two modes, alternated inside every repeat:

* ``inproc``: no broker, tasks run in one Python process (a subprocess of this one; its peak RSS is
  read from /proc VmHWM, because ru_maxrss carries the parent's peak across exec); per-step seconds
  come from ``RunResult.seconds``, and the client-side time of each SQL statement kind is timed
  with SQLAlchemy cursor events (first vs last quarter of the job, to show what grows with N);
* ``worker``: a real ``dataengine worker --queues cpu --concurrency 2`` on Redis; this process
  enqueues with ``run_mine(wait=False)`` and polls the database every 50 ms with
  ``pipelines.runner.wait_for_job`` until no item is pending.

Throughput is measured from the end of planning (listing + job_items insert) to the last item
committed; planning time is reported separately. CPU seconds of the whole machine, of PostgreSQL
and of the Python side are read from /proc over the same interval. A third, smaller in-process run
(``--images``/4) shows that peak RSS does not grow with the number of images.

The machine is shared: before each run the benchmark waits (``--settle``) for it to be idle, and a
run during which foreign processes used more than 0.2 cores is measured again (``--redo-noisy``;
the discarded runs stay in the JSON). Medians of ``--repeats`` runs are printed; everything is written to
bench/results/ingest.json.
This is a measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    RESULTS_DIR,
    BenchDatabases,
    CpuSnapshot,
    environment,
    fmt,
    format_table,
    hwm_mb,
    maxrss_mb,
    median,
    peak_rss,
    proc_status_kb,
    process_tree,
    spread,
    wait_for_quiet,
    write_json,
)

REPO = Path(__file__).resolve().parent.parent
GEN_VERSION = 1
MIN_PHASH_DISTANCE = 12  # generated images are at least this far apart (dedup threshold is 6)
TARGET_PER_CORE = 150.0  # images/s per core, ~1 MP JPEG, decode + hash + store + DB
STEPS = ("fetch", "decode", "normalise", "hash", "phash", "store", "db")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"


# ============================================================================ workload
@dataclass(frozen=True)
class SetSpec:
    name: str
    min_long: int
    max_long: int
    fixed: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.fixed:
            return f"{self.fixed[0]}x{self.fixed[1]} ({self.fixed[0] * self.fixed[1] / 1e6:.3f} MP)"
        return f"long side uniform {self.min_long}..{self.max_long} px, mixed aspect ratios"

    def cache_name(self, seed: int) -> str:
        shape = f"{self.fixed[0]}x{self.fixed[1]}" if self.fixed else f"{self.min_long}-{self.max_long}"
        return f"{self.name}-{shape}-s{seed}-v{GEN_VERSION}"


MIXED = SetSpec("mixed", 256, 2048)
ONE_MP = SetSpec("1mp", 1152, 1152, fixed=(1152, 864))


def render(spec: SetSpec, seed: int, index: int, attempt: int) -> tuple[bytes, int, int, int, int]:
    """One photo-like JPEG: (bytes, width, height, quality, phash estimate). Deterministic."""
    from PIL import Image, ImageDraw

    from engine.domain.hashing import phash

    rng = np.random.default_rng([seed, index, attempt, GEN_VERSION])
    if spec.fixed:
        w, h = spec.fixed
    else:
        long = int(rng.integers(spec.min_long, spec.max_long + 1))
        ratio = float(rng.choice([1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 9, 2.0]))
        short = max(64, round(long / ratio))
        w, h = (long, short) if rng.random() < 0.7 else (short, long)

    # smooth colour field: a tiny random grid upscaled bicubically (sky / wall / blurred background)
    gh, gw = (int(v) for v in rng.integers(2, 7, size=2))
    grid = rng.integers(0, 256, size=(gh, gw, 3), dtype=np.uint8)
    cw, ch = max(8, w // 2), max(8, h // 2)
    canvas = Image.fromarray(grid, "RGB").resize((cw, ch), Image.Resampling.BICUBIC)
    # objects: shapes drawn at half resolution, so upscaling softens their edges
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(6, 24))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = float(rng.random() * cw), float(rng.random() * ch)
        size = float(rng.random() * 0.45 * max(cw, ch) + 4)
        x1, y1 = x0 + size * float(rng.uniform(0.3, 1)), y0 + size * float(rng.uniform(0.3, 1))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            pts = rng.random((int(rng.integers(3, 8)), 2)) * [x1 - x0, y1 - y0] + [x0, y0]
            draw.polygon([tuple(p) for p in pts.tolist()], fill=colour)
    base = canvas.resize((w, h), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, dtype=np.float32)
    # mid-frequency texture (foliage, fabric) and per-pixel sensor noise
    tex = rng.standard_normal((max(2, h // 6), max(2, w // 6)), dtype=np.float32)
    tex_img = Image.fromarray(tex, "F").resize((w, h), Image.Resampling.BILINEAR)
    pixels += np.asarray(tex_img, dtype=np.float32)[:, :, None] * float(rng.uniform(6, 16))
    pixels += rng.standard_normal((h, w, 3), dtype=np.float32) * float(rng.uniform(3, 8))
    np.clip(pixels, 0, 255, out=pixels)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    quality = int(rng.integers(80, 95))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    small = image.resize((max(32, w // 8), max(32, h // 8)), Image.Resampling.BOX)
    return buffer.getvalue(), w, h, quality, phash(small)


def _render_to_file(job: tuple[SetSpec, int, int, int, str]) -> dict[str, Any]:
    spec, seed, index, attempt, path = job
    data, w, h, quality, ph = render(spec, seed, index, attempt)
    Path(path).write_bytes(data)
    return {"index": index, "attempt": attempt, "bytes": len(data), "width": w, "height": h,
            "quality": quality, "phash": ph}


def ensure_pool(spec: SetSpec, seed: int, count: int, cache: Path) -> list[dict[str, Any]]:
    """Generate (or reuse) images 0..count-1 of the set; image i depends only on (seed, i) and the
    images before it (it is re-drawn while within MIN_PHASH_DISTANCE of an earlier one)."""
    root = cache / spec.cache_name(seed)
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    manifest_path = root / "manifest.json"
    entries: list[dict[str, Any]] = []
    if manifest_path.exists():
        for entry in json.loads(manifest_path.read_text())["images"]:
            if entry["index"] != len(entries) or not (pool / _name(entry["index"])).exists():
                break  # keep the longest intact prefix
            entries.append(entry)
    if len(entries) >= count:
        return entries[:count]
    start = len(entries)
    todo = [(spec, seed, i, 0, str(pool / _name(i))) for i in range(start, count)]
    print(f"  generating {len(todo)} {spec.name} JPEGs into {pool} ...", flush=True)
    started = time.perf_counter()
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as workers:
        fresh = list(workers.imap(_render_to_file, todo, chunksize=4))
    hashes = np.array([e["phash"] for e in entries], dtype=np.uint64)
    redrawn = 0
    for entry in fresh:
        while hashes.size and int(np.bitwise_count(hashes ^ np.uint64(entry["phash"])).min()) < MIN_PHASH_DISTANCE:
            redrawn += 1
            entry = _render_to_file((spec, seed, entry["index"], entry["attempt"] + 1,
                                     str(pool / _name(entry["index"]))))
        entries.append(entry)
        hashes = np.append(hashes, np.uint64(entry["phash"]))
    manifest_path.write_text(json.dumps({"version": GEN_VERSION, "seed": seed, "spec": asdict(spec),
                                         "images": entries}))
    print(f"  generated in {time.perf_counter() - started:.1f} s ({redrawn} re-drawn as too similar)",
          flush=True)
    return entries[:count]


def ensure_set(spec: SetSpec, seed: int, count: int, cache: Path) -> tuple[Path, dict[str, Any]]:
    """A folder holding exactly the first ``count`` images of the pool (hard links)."""
    entries = ensure_pool(spec, seed, count, cache)
    root = cache / spec.cache_name(seed)
    folder = root / f"n{count}"
    names = {_name(e["index"]) for e in entries}
    if not folder.is_dir() or {p.name for p in folder.iterdir()} != names:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name in sorted(names):
            try:
                os.link(root / "pool" / name, folder / name)
            except OSError:
                shutil.copyfile(root / "pool" / name, folder / name)
    sizes = np.array([e["bytes"] for e in entries], dtype=np.float64)
    mp = np.array([e["width"] * e["height"] for e in entries], dtype=np.float64) / 1e6
    hashes = np.array([e["phash"] for e in entries], dtype=np.uint64)
    min_dist = None
    if len(hashes) > 1:  # the closest pair of pHashes in the set (proof: no near-duplicates)
        min_dist = min(int(np.bitwise_count(hashes[i + 1:] ^ hashes[i]).min())
                       for i in range(len(hashes) - 1))
    info = {
        "set": spec.name, "images": count, "shape": spec.describe(), "folder": str(folder),
        "total_mb": round(sizes.sum() / 2**20, 1), "mean_kb": round(sizes.mean() / 1024, 1),
        "median_kb": round(float(np.median(sizes)) / 1024, 1),
        "mean_mp": round(float(mp.mean()), 3), "min_mp": round(float(mp.min()), 3),
        "max_mp": round(float(mp.max()), 3),
        "bits_per_pixel": round(float(sizes.sum() * 8 / (mp.sum() * 1e6)), 2),
        "min_pairwise_phash_distance": min_dist,
    }
    return folder, info


def _name(index: int) -> str:
    return f"img_{index:05d}.jpg"


# ============================================================================ fixtures
class Fixtures(BenchDatabases):
    """Fresh PostgreSQL databases, media roots and Redis databases for every run."""

    def __init__(self, pg_url: str, redis_url: str, tmp: Path) -> None:
        super().__init__(pg_url, tmp, prefix="de_bench")
        self.redis_url = redis_url
        self.settle_s = 0.0

    def flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# ============================================================================ runs
def _counts(report: Any) -> dict[str, int]:
    return dict(report.stages[0].counts)


def _status_rate(report: Any) -> float | None:
    rate = report.stages[0].items_per_s
    return round(rate, 2) if rate else None


def run_inprocess(fx: Fixtures, folder: Path, label: str, images: int, rep: int) -> dict[str, Any]:
    """Mine in a child Python process without a broker; the child reports its own figures."""
    with fx.database() as url, fx.media_root() as media:
        load = wait_for_quiet(timeout_s=fx.settle_s) if fx.settle_s else None
        spec = {"folder": str(folder), "db_url": url, "media_root": str(media),
                "job": f"bench-{label}-inproc-{rep}"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench.ingest", "--_child", json.dumps(spec)],
                              cwd=REPO, env=clean_env(), capture_output=True, text=True,
                              timeout=max(600, images))
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"in-process child failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({"set": label, "mode": "inproc", "procs": 1, "repeat": rep, "images": images,
                   "child_wall_s": round(wall, 3), "busy_cores_before": load})
    return result


SQL_KINDS = (  # (statement prefix, name) for the per-statement breakdown of the db step
    ("SELECT images.id, images.phash FROM", "near-duplicate search (images by pHash bands)"),
    ("SELECT images.id, images.sha256", "images by sha256 (before and after insert)"),
    ("INSERT INTO images", "INSERT images ON CONFLICT DO NOTHING"),
    ("UPDATE job_items", "UPDATE job_items (item status)"),
    ("SAVEPOINT", "SAVEPOINT / RELEASE (one per item)"),
    ("RELEASE SAVEPOINT", "SAVEPOINT / RELEASE (one per item)"),
)


class SqlTimer:
    """Client-side execute time of every SQL statement, by kind and by quarter of the job.

    Two perf_counter calls per statement (~7 statements per image): negligible next to ~8 ms."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.stats: dict[tuple[str, int], list[float]] = {}
        self.items_per_quarter = [0, 0, 0, 0]
        self.active = False

    def start(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        self.active = True

    def stop(self) -> None:
        self.active = False

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.active:
            return
        elapsed = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        head = " ".join(statement[:120].split())
        kind = next((name for prefix, name in SQL_KINDS if head.startswith(prefix)), "other")
        quarter = self.state["quarter"]
        entry = self.stats.setdefault((kind, quarter), [0, 0.0])
        entry[0] += 1
        entry[1] += elapsed
        if kind.startswith("UPDATE job_items"):
            self.items_per_quarter[quarter] += 1

    def report(self, items: int) -> dict[str, Any]:
        kinds = sorted({k for k, _ in self.stats}, key=lambda k: [n for _, n in SQL_KINDS].index(k)
                       if k != "other" else 99)
        out: dict[str, Any] = {}
        for kind in kinds:
            calls = sum(self.stats.get((kind, q), [0, 0.0])[0] for q in range(4))
            total = sum(self.stats.get((kind, q), [0, 0.0])[1] for q in range(4))
            first, last = self.stats.get((kind, 0)), self.stats.get((kind, 3))
            out[kind] = {
                "calls_per_image": round(calls / items, 2) if items else None,
                "ms_per_image": round(total * 1000 / items, 3) if items else None,
                "ms_per_call": round(total * 1000 / calls, 3) if calls else None,
                "ms_per_call_first_quarter": round(first[1] * 1000 / first[0], 3) if first else None,
                "ms_per_call_last_quarter": round(last[1] * 1000 / last[0], 3) if last else None,
            }
        return out


def _child_main(spec: dict[str, Any]) -> None:
    """Body of the in-process child: run_mine with no broker, figures on stdout as one JSON line."""
    import logging
    import resource

    logging.basicConfig(level=logging.WARNING)
    from engine.settings import Settings
    from pipelines.runner import run_mine

    rss_imports = hwm_mb()
    settings = Settings(database_url=spec["db_url"], media_root=spec["media_root"], broker_url=None)
    state: dict[str, Any] = {"rss_curve": [], "quarter": 0}
    sql = SqlTimer(state)

    def on_progress(done: int, total: int) -> None:
        now = time.perf_counter()
        state["quarter"] = min(3, done * 4 // total) if total else 0
        if "t_start" not in state:
            sql.start()
            state["t_start"] = now
            state["cpu0"] = CpuSnapshot.take(pids=[os.getpid()])
        state["rss_curve"].append([done, round(hwm_mb() or 0.0, 1)])
        if done >= total and "t_end" not in state:
            sql.stop()
            state["t_end"] = now
            state["cpu1"] = CpuSnapshot.take(pids=[os.getpid()])

    started = time.perf_counter()
    result = run_mine(settings, spec["folder"], job_name=spec["job"], until="mine", on_progress=on_progress)
    wall = time.perf_counter() - started
    n = result.plan.items
    ingest_s = state["t_end"] - state["t_start"]
    seconds = {k: round(v, 4) for k, v in result.seconds.items()}
    per_item_ms = {k: round(v * 1000 / n, 3) for k, v in result.seconds.items()} if n else {}
    other = ingest_s - sum(v for k, v in result.seconds.items() if k in STEPS)
    per_item_ms["other"] = round(other * 1000 / n, 3) if n else None
    cpu = state["cpu1"].since(state["cpu0"])
    print(json.dumps({
        "counts": _counts(result.report), "items": n, "finished": result.finished,
        "wall_s": round(wall, 3), "plan_s": round(state["t_start"] - started, 3),
        "ingest_s": round(ingest_s, 3), "images_per_s": round(n / ingest_s, 2) if ingest_s else None,
        "status_rate": _status_rate(result.report),
        "seconds": seconds, "per_item_ms": per_item_ms, "cpu": cpu, "sql": sql.report(n),
        "rss": {"after_imports_mb": round(rss_imports or 0.0, 1), "peak_mb": round(hwm_mb() or 0.0, 1),
                "curve": state["rss_curve"],
                # ru_maxrss is inherited across exec() from the parent's address space: shown for
                # comparison only; VmHWM (peak_mb) is this process's own peak
                "ru_maxrss_self_mb": round(maxrss_mb(), 1),
                "ru_maxrss_children_mb": round(maxrss_mb(resource.RUSAGE_CHILDREN), 1)},
    }))


def _wait_ready(app: Any, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited (rc {proc.returncode}):\n{log.read_text()[-4000:]}")
        if app.control.ping(timeout=0.5):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"worker not ready after {timeout_s} s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _worker_command() -> list[str]:
    script = Path(sys.executable).parent / "dataengine"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dataengine"]


def run_workers(fx: Fixtures, folder: Path, label: str, images: int, rep: int,
                concurrency: int) -> dict[str, Any]:
    """Mine through a real Celery worker (prefork, ``concurrency`` processes) on Redis."""
    from engine.db.models import MiningJob
    from engine.services import status
    from engine.settings import Settings
    from pipelines.celery_app import create_celery
    from pipelines.context import TaskContext
    from pipelines.dispatch import CeleryQueue
    from pipelines.runner import run_mine, wait_for_job

    with fx.database() as url, fx.media_root() as media:
        fx.flush_redis()
        env = clean_env(DATAENGINE_DATABASE_URL=url, DATAENGINE_BROKER_URL=fx.redis_url,
                        DATAENGINE_MEDIA_ROOT=str(media))
        log = fx.tmp / f"worker-{label}-{rep}.log"
        cmd = _worker_command() + ["worker", "--queues", "cpu", "--concurrency", str(concurrency),
                                   "--loglevel", "INFO", "--hostname", f"bench{os.getpid()}-{fx.counter}@%h"]
        settings = Settings(database_url=url, media_root=media, broker_url=fx.redis_url)
        app = create_celery(settings)
        with open(log, "wb") as log_handle:
            proc = subprocess.Popen(cmd, cwd=fx.tmp, env=env, stdout=log_handle,
                                    stderr=subprocess.STDOUT)
        try:
            ready_s = _wait_ready(app, proc, log)
            load = wait_for_quiet(timeout_s=fx.settle_s) if fx.settle_s else None
            tree = process_tree(proc.pid)
            state: dict[str, Any] = {}

            def on_progress(done: int, total: int) -> None:
                if "t_start" not in state:
                    state["t_start"] = time.perf_counter()
                    state["cpu0"] = CpuSnapshot.take(pids=tree + [os.getpid()])

            started = time.perf_counter()
            result = run_mine(settings, str(folder), job_name=f"bench-{label}-worker-{rep}",
                              until="mine", wait=False, queue=CeleryQueue(app), on_progress=on_progress)
            ctx = TaskContext.from_settings(settings)
            finished = wait_for_job(ctx, result.plan.job_id, len(result.plan.pending),
                                    max(300.0, images / 2), None, poll_s=0.05)
            t_end = time.perf_counter()
            cpu = CpuSnapshot.take(pids=tree + [os.getpid()]).since(state["cpu0"])
            with ctx.session() as session:
                job = session.get(MiningJob, result.plan.job_id)
                report = status.job_report(session, job)
            pool = [p for p in process_tree(proc.pid) if p != proc.pid]
            hwm = {p: (proc_status_kb(p, "VmHWM") or 0) / 1024 for p in [proc.pid] + pool}
        finally:
            _stop(proc)
            app.close()
    n = result.plan.items
    ingest_s = t_end - state["t_start"]
    pool_hwm = [hwm[p] for p in pool]
    return {
        "set": label, "mode": "worker", "procs": concurrency, "repeat": rep, "images": images,
        "counts": _counts(report), "items": n, "finished": finished,
        "worker_ready_s": round(ready_s, 2), "wall_s": round(t_end - started, 3),
        "plan_s": round(state["t_start"] - started, 3), "ingest_s": round(ingest_s, 3),
        "images_per_s": round(n / ingest_s, 2) if ingest_s else None,
        "status_rate": _status_rate(report), "cpu": cpu, "busy_cores_before": load,
        "rss": {"worker_main_mb": round(hwm[proc.pid], 1),
                "pool_max_mb": round(max(pool_hwm), 1) if pool_hwm else None,
                "pool_processes": len(pool_hwm),
                "tree_sum_mb": round(sum(hwm.values()), 1),
                "peak_mb": round(max(pool_hwm), 1) if pool_hwm else round(hwm[proc.pid], 1)},
        "log": str(log),
    }


# ============================================================================ report
def _runs(runs: list[dict[str, Any]], label: str, mode: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["set"] == label and r["mode"] == mode]


def _med(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for r in runs:
        v: Any = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        values.append(v)
    return median(values)


def _accounted(r: dict[str, Any]) -> float:
    """CPU seconds of the mining Python processes, PostgreSQL and Redis over the ingest interval."""
    return r["cpu"]["procs_s"] + r["cpu"]["postgres_s"] + r["cpu"]["redis_s"]


def summarise(runs: list[dict[str, Any]], sets: list[tuple[str, int]], concurrency: int,
              small_label: str | None, small_n: int) -> dict[str, Any]:
    summary: dict[str, Any] = {"throughput": [], "steps": {}, "rss": {}}
    for label, n in sets:
        for mode in ("inproc", "worker"):
            rs = _runs(runs, label, mode)
            if not rs:
                continue
            cores = 1 if mode == "inproc" else concurrency
            ips = _med(rs, "images_per_s")
            lo, hi = spread(r["images_per_s"] for r in rs)
            counts: dict[str, list[int]] = {}
            for r in rs:
                for k, v in r["counts"].items():
                    counts.setdefault(k, []).append(v)
            row = {
                "set": label, "mode": mode, "procs": cores, "images": n, "runs": len(rs),
                "counts_per_run": {k: v for k, v in counts.items()},
                "plan_s": _med(rs, "plan_s"), "ingest_s": _med(rs, "ingest_s"),
                "wall_s": _med(rs, "wall_s"),
                "images_per_s": ips, "images_per_s_min": lo, "images_per_s_max": hi,
                "images_per_s_per_core": ips / cores if ips else None,
                "status_rate": _med(rs, "status_rate"),
                "machine_cpu_ms_per_image": median(r["cpu"]["machine_s"] * 1000 / r["items"] for r in rs),
                "python_cpu_ms_per_image": median(r["cpu"]["procs_s"] * 1000 / r["items"] for r in rs),
                "postgres_cpu_ms_per_image": median(r["cpu"]["postgres_s"] * 1000 / r["items"] for r in rs),
                "redis_cpu_ms_per_image": median(r["cpu"]["redis_s"] * 1000 / r["items"] for r in rs),
                "accounted_cpu_ms_per_image": median(_accounted(r) * 1000 / r["items"] for r in rs),
                "peak_rss_mb": _med(rs, "rss", "peak_mb"),
                "busy_cores_before": _med(rs, "busy_cores_before"),
            }
            row["images_per_cpu_s"] = (1000 / row["accounted_cpu_ms_per_image"]
                                       if row["accounted_cpu_ms_per_image"] else None)
            summary["throughput"].append(row)
        rs = _runs(runs, label, "inproc")
        if rs:
            keys = [s for s in STEPS if any(s in r["per_item_ms"] for r in rs)] + ["other"]
            summary["steps"][label] = {k: median(r["per_item_ms"].get(k, 0.0) for r in rs) for k in keys}
        if rs and all("sql" in r for r in rs):
            kinds: list[str] = []
            for r in rs:
                kinds += [k for k in r["sql"] if k not in kinds]
            summary.setdefault("sql", {})[label] = {
                kind: {field: median(r["sql"].get(kind, {}).get(field) for r in rs)
                       for field in ("calls_per_image", "ms_per_image", "ms_per_call_first_quarter",
                                     "ms_per_call_last_quarter")}
                for kind in kinds}
        ws = _runs(runs, label, "worker")
        if ws:
            summary["rss"][f"{label}/worker"] = {
                "worker_main_mb": _med(ws, "rss", "worker_main_mb"),
                "pool_max_mb": _med(ws, "rss", "pool_max_mb"),
                "tree_sum_mb": _med(ws, "rss", "tree_sum_mb")}
    # flatness: in-process peak RSS after ~small_n images vs after all, and the small run on its own
    full_label, full_n = sets[0]
    full = _runs(runs, full_label, "inproc")
    if full:
        def at(r: dict[str, Any], count: int) -> float | None:
            for done, mb in r["rss"]["curve"]:
                if done >= count:
                    return mb
            return None
        summary["rss"]["flatness"] = {
            "after_imports_mb": _med(full, "rss", "after_imports_mb"),
            "after_plan_mb": median(r["rss"]["curve"][0][1] for r in full),
            f"after_{small_n}_of_{full_n}_mb": median(at(r, small_n) for r in full),
            f"after_{full_n}_of_{full_n}_mb": _med(full, "rss", "peak_mb"),
        }
        if small_label:
            small = _runs(runs, small_label, "inproc")
            summary["rss"]["flatness"][f"separate_{small_n}_image_run_mb"] = _med(small, "rss", "peak_mb")
    return summary


def print_report(summary: dict[str, Any], workload: dict[str, Any], concurrency: int) -> None:
    rows = []
    by_key = {(r["set"], r["mode"]): r for r in summary["throughput"]}
    for r in summary["throughput"]:
        counts = r["counts_per_run"]
        done = "/".join(str(v) for v in sorted(set(counts.get("done", [0]))))
        dup = sum(sum(counts.get(k, [])) for k in ("duplicate", "near_duplicate"))
        failed = sum(counts.get("failed", [])) + sum(counts.get("pending", []))
        base = by_key.get((r["set"], "inproc"))
        ratio = (r["images_per_s"] / base["images_per_s"]
                 if base and base["images_per_s"] and r["images_per_s"] else None)
        rows.append([
            r["set"], r["mode"], r["procs"], r["images"], r["runs"], done, dup, failed,
            fmt(r["plan_s"], 2), fmt(r["ingest_s"], 2),
            f'{fmt(r["images_per_s"])} ({fmt(r["images_per_s_min"], 0)}-{fmt(r["images_per_s_max"], 0)})',
            fmt(r["images_per_s_per_core"]), fmt(ratio, 2) + "x" if ratio else "-",
            fmt(r["python_cpu_ms_per_image"], 2), fmt(r["postgres_cpu_ms_per_image"], 2),
            fmt(r["accounted_cpu_ms_per_image"], 2), fmt(r["images_per_cpu_s"]),
            fmt(r["machine_cpu_ms_per_image"], 2), fmt(r["peak_rss_mb"]),
        ])
    print()
    print(format_table(
        ["set", "mode", "procs", "images", "runs", "done/run", "dup", "fail", "plan s", "ingest s",
         "images/s (min-max)", "img/s/core", "vs inproc", "py ms/img", "pg ms/img", "CPU ms/img",
         "img/CPU-s", "machine ms/img", "peak RSS MB"],
        rows, left=2,
        title=f"Throughput, median of runs (ingest = after planning until the last item is committed; "
              f"worker = 1 Celery prefork worker, concurrency {concurrency})"))
    print("  CPU over the ingest interval per image: py = the mining Python process(es) (worker: main + pool\n"
          "  + this process polling), pg = all PostgreSQL processes, CPU = py + pg + Redis; img/CPU-s = 1000 / CPU;\n"
          "  machine = busy CPU of the whole machine (includes anything else running on this shared machine).\n"
          "  img/s/core: in-process counts 1 core, worker counts its pool processes. vs inproc: images/s ratio.")

    if summary["steps"]:
        labels = list(summary["steps"])
        keys: list[str] = []
        for label in labels:
            keys += [k for k in summary["steps"][label] if k not in keys]
        rows = []
        for key in keys:
            row: list[Any] = [key]
            for label in labels:
                steps = summary["steps"][label]
                total = sum(v for v in steps.values() if v)
                v = steps.get(key)
                row += [fmt(v, 3), fmt(100 * v / total if v and total else None, 1)]
            rows.append(row)
        totals: list[Any] = ["total"]
        for label in labels:
            total = sum(v for v in summary["steps"][label].values() if v)
            totals += [fmt(total, 3), f"{1000 / total:,.1f}/s" if total else "-"]
        rows.append(totals)
        headers = ["step"]
        for label in labels:
            headers += [f"{label} ms/img", "%"]
        print()
        print(format_table(headers, rows, title="Where the time goes, in-process (median ms per image; "
                           "other = batch commits, item loading, source open)"))

    for label, kinds in summary.get("sql", {}).items():
        db_ms = summary["steps"].get(label, {}).get("db")
        rows = []
        sql_total = 0.0
        for kind, v in kinds.items():
            sql_total += v["ms_per_image"] or 0.0
            rows.append([kind, fmt(v["calls_per_image"], 2), fmt(v["ms_per_image"], 3),
                         fmt(v["ms_per_call_first_quarter"], 3), fmt(v["ms_per_call_last_quarter"], 3)])
        rows.append(["all SQL round trips", "", fmt(sql_total, 3), "", ""])
        if db_ms:
            rows.append(["db step minus SQL (SQLAlchemy/ORM, Python)", "", fmt(db_ms - sql_total, 3), "", ""])
        print()
        print(format_table(["statement", "calls/img", "ms/img", "ms/call 1st quarter", "ms/call last quarter"],
                           rows, title=f"SQL in the mining loop, {label} in-process (client-side execute "
                           f"time, median; quarters of the job by items done)"))

    rss = summary["rss"]
    if rss:
        rows = []
        flat = rss.get("flatness", {})
        for key, value in flat.items():
            rows.append(["inproc", key, fmt(value)])
        for key, value in rss.items():
            if key != "flatness":
                for k, v in value.items():
                    rows.append([key, k, fmt(v)])
        print()
        print(format_table(["process", "peak RSS (VmHWM / ru_maxrss)", "MB"], rows, left=2,
                           title="Peak RSS, median of runs"))

    one_mp = by_key.get(("1mp", "inproc"))
    if one_mp and one_mp["images_per_s_per_core"]:
        print()
        v = one_mp["images_per_s_per_core"]
        print(f"Target: >= {TARGET_PER_CORE:.0f} images/s per core for decode + hash + store + DB of ~1 MP "
              f"JPEGs. Measured in-process (1 core): {v:,.1f} images/s = {v / TARGET_PER_CORE:.2f}x target "
              f"(Python + PostgreSQL + Redis CPU: {fmt(one_mp['images_per_cpu_s'])} images per CPU-second).")
        w = by_key.get(("1mp", "worker"))
        if w and w["images_per_s_per_core"]:
            print(f"        With {w['procs']} worker processes: {w['images_per_s']:,.1f} images/s = "
                  f"{w['images_per_s_per_core']:,.1f} per core = "
                  f"{w['images_per_s_per_core'] / TARGET_PER_CORE:.2f}x target.")


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=None, help="mixed-size JPEGs (default 2000; --quick 400)")
    parser.add_argument("--mp-images", type=int, default=None, help="1 MP JPEGs (default 1000; --quick 300); 0: skip")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each measurement (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="fewer images and one repeat")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--no-workers", action="store_true", help="skip the Celery worker runs")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
                        help="PostgreSQL server (a database on it is used to CREATE/DROP bench databases)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
                        help="broker for the worker runs; this Redis database is FLUSHED before each run")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="before each run, wait up to this many seconds for the (shared) machine to "
                             "be idle (< 0.3 busy cores); 0: don't wait")
    parser.add_argument("--redo-noisy", type=int, default=2,
                        help=f"measure a run again (at most this many times) when foreign processes used "
                             f"more than {NOISY_CORES} cores during it; discarded runs stay in the JSON")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        _child_main(json.loads(args._child))
        return 0

    images = args.images if args.images is not None else (400 if args.quick else 2000)
    mp_images = args.mp_images if args.mp_images is not None else (300 if args.quick else 1000)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    small_n = max(1, images // 4)
    concurrency = args.concurrency
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    print("Ingest benchmark: folder of JPEGs -> run_mine -> PostgreSQL (fresh database and media root per run)")
    print(f"Preparing workload (cached under {args.cache_dir}):")
    mixed_dir, mixed_info = ensure_set(MIXED, args.seed, images, args.cache_dir)
    small_dir, small_info = ensure_set(MIXED, args.seed, small_n, args.cache_dir)
    sets: list[tuple[str, int, Path]] = [("mixed", images, mixed_dir)]
    infos = [mixed_info]
    if mp_images > 0:
        mp_dir, mp_info = ensure_set(ONE_MP, args.seed, mp_images, args.cache_dir)
        sets.append(("1mp", mp_images, mp_dir))
        infos.append(mp_info)
    small_label = f"mixed-first-{small_n}"

    tmp = Path(tempfile.mkdtemp(prefix="de_bench_ingest_"))
    fx = Fixtures(args.pg_url, args.redis_url, tmp)
    fx.settle_s = args.settle
    env = environment()
    env["postgres"] = fx.pg_version()
    workload = {
        "sets": infos, "flatness_set": small_info, "repeats": repeats,
        "modes": ["inproc (1 process, no broker)"] + ([] if args.no_workers else [
            f"worker (dataengine worker --queues cpu --concurrency {concurrency}, Redis broker)"]),
        "batch_size": 64, "database": "PostgreSQL, fresh database per run, dropped afterwards",
        "media": f"fresh media root per run under {tmp}",
        "note": "source files are in the page cache (generated/read before); stores are not fsynced",
    }
    print()
    for info in infos + [small_info]:
        print(f"  {info['set']:>5}: {info['images']:,} JPEGs, {info['shape']}; {info['total_mb']:,} MB, "
              f"mean {info['mean_kb']} KB, mean {info['mean_mp']} MP ({info['min_mp']}-{info['max_mp']}), "
              f"{info['bits_per_pixel']} bits/px; closest pHash pair {info['min_pairwise_phash_distance']} bits")
    print(f"  modes: {', '.join(workload['modes'])}; repeats: {repeats} (order alternates each repeat); "
          f"flatness run: first {small_n} images; batch size 64")
    if args.settle:
        print(f"  before each run: wait up to {args.settle:.0f} s for the shared machine to be idle (< 0.3 busy cores)")
    print(f"  machine: {env['cpu']}, {env['cores']} cores; Python {env['python']}, Pillow {env.get('pillow')} "
          f"(libjpeg-turbo {env.get('libjpeg_turbo')}), PostgreSQL {env['postgres']}")

    runs: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []

    def measure(run: Any) -> None:
        """One run; re-done (up to --redo-noisy times) when foreign processes took a lot of CPU."""
        for attempt in range(args.redo_noisy + 1):
            r = run()
            r["foreign_cores"] = _foreign_cores(r)
            _print_run(r)
            if r["foreign_cores"] <= NOISY_CORES or attempt == args.redo_noisy:
                runs.append(r)
                return
            discarded.append(r)
            print(f"    ^ discarded: other processes used {r['foreign_cores']:.2f} cores meanwhile; "
                  "measuring again", flush=True)

    started = time.perf_counter()
    ok = False
    try:
        for rep in range(repeats):
            for label, n, folder in sets:
                modes = ["inproc"] + ([] if args.no_workers else ["worker"])
                if rep % 2 == 1:
                    modes.reverse()
                for mode in modes:
                    if mode == "inproc":
                        measure(functools.partial(run_inprocess, fx, folder, label, n, rep))
                    else:
                        measure(functools.partial(run_workers, fx, folder, label, n, rep, concurrency))
            measure(functools.partial(run_inprocess, fx, small_dir, small_label, small_n, rep))
        ok = all(r.get("finished", True) and r["counts"].get("done", 0) == r["items"] for r in runs)
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  worker logs kept in {tmp}", file=sys.stderr)

    summary = summarise(runs, [(label, n) for label, n, _ in sets], concurrency, small_label, small_n)
    print_report(summary, workload, concurrency)
    if discarded:
        print(f"\n{len(discarded)} run(s) discarded and measured again because other processes on this shared "
              f"machine used > {NOISY_CORES} cores meanwhile (kept in the JSON under discarded_noisy_runs).")
    noisy = [r for r in runs if r["foreign_cores"] > NOISY_CORES]
    if noisy:
        print(f"{len(noisy)} kept run(s) still had foreign load > {NOISY_CORES} cores (see foreign_cores in the JSON).")
    print(f"\nBench process peak RSS: {peak_rss()} (children: largest waited-for descendant); "
          f"total time {time.perf_counter() - started:.0f} s")
    path = write_json("ingest", {
        "benchmark": "ingest", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python -m bench.ingest"] + (argv if argv is not None else sys.argv[1:])),
        "environment": env, "workload": workload, "summary": summary, "runs": runs,
        "discarded_noisy_runs": discarded,
        "bench_process_rss": peak_rss(),
    })
    print(f"JSON: {path}")
    return 0


KERNEL_THREADS = ("kworker", "rcu", "kdamond", "ksoftirqd", "jbd2", "migration", "kswapd", "kcompactd")
NOISY_CORES = 0.2


def _foreign_cores(r: dict[str, Any]) -> float:
    """Average cores used by processes that are not ours (other users of the shared machine)
    over the ingest interval; kernel threads (writeback of our media files included) are ours."""
    cpu = r["cpu"]
    foreign = sum(o["cpu_s"] for o in cpu.get("other_processes", [])
                  if not o["comm"].startswith(KERNEL_THREADS))
    return round(foreign / r["ingest_s"], 3) if r["ingest_s"] else 0.0


def _others(r: dict[str, Any]) -> str:
    """Who else was busy on the machine meanwhile (the machine is shared), and hypervisor steal."""
    cpu = r["cpu"]
    parts = [f"{o['comm']} {o['cpu_s']:.1f} s" for o in cpu.get("other_processes", [])[:3]]
    steal = cpu.get("machine_by_kind_s", {}).get("steal", 0.0)
    if steal >= 0.05:
        parts.append(f"steal {steal:.1f} s")
    before = r.get("busy_cores_before")
    head = f" [busy before {before} cores]" if before is not None else ""
    return head + (f" (others: {', '.join(parts)})" if parts else "")


def _print_run(r: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
    extra = (f"peak RSS {r['rss']['peak_mb']} MB" if r["mode"] == "inproc" else
             f"worker main {r['rss']['worker_main_mb']} MB, pool max {r['rss']['pool_max_mb']} MB")
    print(f"  run {r['repeat'] + 1} {r['set']:>14} {r['mode']:>6}: {r['items']:>5} items [{counts}] "
          f"plan {r['plan_s']:.2f} s, ingest {r['ingest_s']:.2f} s = {r['images_per_s']:,.1f} images/s; "
          f"CPU py {r['cpu']['procs_s']:.1f} s, pg {r['cpu']['postgres_s']:.1f} s, "
          f"machine {r['cpu']['machine_s']:.1f} s{_others(r)}; {extra}", flush=True)
    if not r.get("finished", True) or r["counts"].get("done", 0) != r["items"]:
        print(f"  WARNING: not every item ended 'done': {r['counts']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
