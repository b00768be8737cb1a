"""Orchestration overhead: mine → caption → parse → propose with zero-cost fake models, on PostgreSQL.

    python -m bench.orchestration [--images 1000] [--repeats 3] [--quick] [--no-profile]

Workload: ``--images`` distinct 64x48 JPEGs of random content (one seed each, cached under
bench/results/cache), mined from a local folder with ``pipelines.runner.run_mine`` into a fresh
PostgreSQL database (``de_bench_orch_<pid>_<n>``, migrated with ``migrations.upgrade``, dropped
afterwards) and a fresh media root, in ONE process: ``pipelines.dispatch.InProcessQueue`` runs
every stage depth first. The models are fakes that satisfy the engine's ports and cost nothing:

* captioner: the same caption for every image ("a red ball, a wooden table, ...");
* parser:    5 noun phrases per caption, returned directly (no parsing);
* proposer:  per phrase 1 or 2 (alternately: 7 masks per image) small boolean masks at the image's
             size, precomputed once per (height, width).

So every image becomes 5 image–concept pairs (``pairs`` = images × 5) and 7 masks. Each fake times
its own calls; the rest of the wall time is orchestration: SQL, ORM, image loading, RLE encoding,
hand-over between stages.

Two batch-size configurations are alternated inside every repeat, each on a fresh database:

* ``large``:    64 items per task in every stage (what zero-cost models allow);
* ``defaults``: ``engine.settings.BatchSizes`` defaults (mine 64, caption 8, parse 64, propose 4).

Medians of ``--repeats`` runs are printed. Then, on the ``defaults`` configuration, one run with the
client-side time of every SQL statement recorded (SQLAlchemy cursor events, by stage and statement
shape) and one run under cProfile (top functions outside the fakes). Everything is written to
bench/results/orchestration.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    RESULTS_DIR,
    BenchDatabases,
    CpuSnapshot,
    build_dir_atomically,
    environment,
    fmt,
    format_table,
    median,
    peak_rss,
    spread,
    wait_for_quiet,
    write_json,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
IMAGE_W, IMAGE_H = 64, 48
GEN_VERSION = 1
TARGET_PAIRS_PER_S = 500.0
CAPTION = "a red ball, a wooden table, a green cup, a small dog and a blue chair"
PHRASES = ("a red ball", "a wooden table", "a green cup", "a small dog", "a blue chair")
STAGES = ("mine", "caption", "parse", "propose")
THIS_FILE = str(Path(__file__).resolve())


# ============================================================================ fakes
class Clock:
    """Seconds and calls spent inside the fake models' own methods."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1


class FakeCaptioner:
    def __init__(self, clock: Clock) -> None:
        from engine.domain.vocabulary import ModelKind
        from engine.ports import ModelStamp

        self.stamp = ModelStamp(kind=ModelKind.CAPTIONER.value, name="fake-captioner", version="1")
        self.clock = clock

    def caption(self, images: Sequence[Any]) -> list[str]:
        started = time.perf_counter()
        out = [CAPTION] * len(images)
        self.clock.add("caption", time.perf_counter() - started)
        return out


class FakeParser:
    def __init__(self, clock: Clock) -> None:
        from engine.domain.vocabulary import ModelKind
        from engine.ports import ModelStamp

        self.stamp = ModelStamp(kind=ModelKind.PARSER.value, name="fake-parser", version="1")
        self.clock = clock

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        started = time.perf_counter()
        out: list[list[str] | str] = [list(PHRASES) for _ in captions]
        self.clock.add("parse", time.perf_counter() - started)
        return out


class FakeProposer:
    """Per phrase i: 1 + (i % 2) small rectangles at the image's size, built once per (h, w)."""

    SLOTS = 8

    def __init__(self, clock: Clock) -> None:
        from engine.domain.vocabulary import ModelKind
        from engine.ports import ModelStamp

        self.stamp = ModelStamp(kind=ModelKind.PROPOSER.value, name="fake-proposer", version="1")
        self.clock = clock
        self._cache: dict[tuple[int, int], list[list[Any]]] = {}

    def _build(self, h: int, w: int) -> list[list[Any]]:
        from engine.ports import Proposal

        slots = []
        for i in range(self.SLOTS):
            props = []
            for j in range(1 + i % 2):
                mask = np.zeros((h, w), dtype=bool)
                y0, x0 = (3 * i + 7 * j) % max(h - 8, 1), (5 * i + 11 * j) % max(w - 8, 1)
                mask[y0:y0 + max(h // 6, 2), x0:x0 + max(w // 6, 2)] = True
                props.append(Proposal(mask=mask, score=0.9 - 0.05 * i - 0.1 * j))
            slots.append(props)
        return slots

    def propose(self, image: Any, phrases: Sequence[str]) -> list[list[Any]]:
        started = time.perf_counter()
        key = (image.height, image.width)
        slots = self._cache.get(key)
        if slots is None:
            slots = self._cache[key] = self._build(*key)
        out = [slots[i % self.SLOTS] for i in range(len(phrases))]
        self.clock.add("propose", time.perf_counter() - started)
        return out


def make_models(settings: Any, clock: Clock) -> Any:
    from pipelines.models import ModelCache

    class FakeModelCache(ModelCache):
        def __init__(self) -> None:
            super().__init__(settings)
            self._fakes = {"captioner": FakeCaptioner(clock), "parser": FakeParser(clock),
                           "proposer": FakeProposer(clock)}

        def captioner(self) -> Any:
            return self._fakes["captioner"]

        def parser(self) -> Any:
            return self._fakes["parser"]

        def proposer(self) -> Any:
            return self._fakes["proposer"]

    return FakeModelCache()


# ============================================================================ workload
def ensure_images(cache_dir: Path, count: int) -> Path:
    """``count`` distinct 64x48 JPEGs of random content, one seed each (written once)."""
    from PIL import Image

    folder = cache_dir / f"orch-{IMAGE_W}x{IMAGE_H}-n{count}-v{GEN_VERSION}"
    done = folder / ".complete"
    if done.exists():
        return folder
    def build(tmp: Path) -> None:
        for i in range(count):
            rng = np.random.default_rng([20240601, i, GEN_VERSION])
            coarse = rng.integers(0, 256, size=(IMAGE_H // 4, IMAGE_W // 4, 3), dtype=np.uint8)
            img = Image.fromarray(coarse, "RGB").resize((IMAGE_W, IMAGE_H), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, size=(IMAGE_H, IMAGE_W, 3))
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(
                tmp / f"img_{i:05d}.jpg", quality=90)
        (tmp / ".complete").write_text("ok\n")

    build_dir_atomically(folder, build, prefix=".orch-build-")
    return folder


# ============================================================================ databases
def Databases(admin_url: str, tmp: Path) -> BenchDatabases:  # noqa: N802 - kept for readers of older results
    return BenchDatabases(admin_url, tmp, prefix="de_bench_orch")


def db_counts(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from engine.db.session import get_engine, normalise_url

    with get_engine(normalise_url(url)).connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in ("images", "captions", "concepts", "image_concepts", "masks", "stage_items")}


# ============================================================================ SQL timing
_PARAM = re.compile(r"%\(\w+\)s")
_LIST = re.compile(r"\?(?:\s*,\s*\?)+")
_VALUES = re.compile(r"(VALUES\s*\([^)]*\))(?:\s*,\s*\([^)]*\))+")
_COLS = re.compile(r"^SELECT (.{40,}?) FROM ")


def statement_shape(statement: str) -> str:
    s = " ".join(statement.split())
    s = _PARAM.sub("?", s)
    s = _LIST.sub("?…", s)
    s = _VALUES.sub(r"\1, …", s)
    s = _COLS.sub("SELECT … FROM ", s)
    return s[:150]


class SqlTimer:
    """Client-side execute time of every SQL statement, by stage and statement shape."""

    def __init__(self) -> None:
        self.stage = ["plan"]
        self.stats: dict[tuple[str, str], list[float]] = {}
        self.active = False

    def start(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        self.active = True

    def stop(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.active = False
        event.remove(Engine, "before_cursor_execute", self._before)
        event.remove(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        if not self.active:
            return
        entry = self.stats.setdefault((self.stage[-1], statement_shape(statement)), [0, 0.0])
        entry[0] += 1
        entry[1] += elapsed


def tracking_queue(ctx: Any, on_done: Any, sql: SqlTimer) -> Any:
    """An InProcessQueue that tells the SQL timer which stage is running (nested stages too)."""
    from pipelines.dispatch import InProcessQueue
    from pipelines.stages import BY_TASK

    class StageTrackingQueue(InProcessQueue):
        def enqueue(self, task: str, args: list[Any], *, queue: str) -> dict[str, Any]:
            sql.stage.append(BY_TASK[task].name)
            try:
                return super().enqueue(task, args, queue=queue)
            finally:
                sql.stage.pop()

    return StageTrackingQueue(ctx, on_done=on_done)


# ============================================================================ one run
def batch_sizes(config: str) -> Any:
    from engine.settings import BatchSizes

    if config == "large":
        return BatchSizes(mine=64, caption=64, parse=64, propose=64)
    if config == "defaults":
        return BatchSizes()
    raise ValueError(config)


def one_run(dbs: Databases, folder: Path, images: int, config: str, *, sql: SqlTimer | None = None,
            profile: cProfile.Profile | None = None) -> dict[str, Any]:
    from engine.settings import Settings
    from engine.storage import LocalMediaStore
    from pipelines.context import TaskContext
    from pipelines.dispatch import InProcessQueue
    from pipelines.runner import run_mine

    with dbs.database() as url, dbs.media_root() as media:
        settings = Settings(database_url=url, media_root=media, data_dir=media.parent / "data",
                            broker_url=None, batch_sizes=batch_sizes(config))
        clock = Clock()
        ctx = TaskContext(settings=settings, store=LocalMediaStore(settings.media_path),
                          models=make_models(settings, clock))
        report_seconds: dict[str, Counter[str]] = {s: Counter() for s in STAGES}
        tasks: Counter[str] = Counter()

        def on_done(report: dict[str, Any]) -> None:
            tasks[report["stage"]] += 1
            report_seconds[report["stage"]].update(report.get("seconds", {}))

        queue = tracking_queue(ctx, on_done, sql) if sql else InProcessQueue(ctx, on_done=on_done)
        cpu0 = CpuSnapshot.take(pids=[os.getpid()])
        if sql:
            sql.start()
        if profile:
            profile.enable()
        started = time.perf_counter()
        try:
            result = run_mine(settings, str(folder), job_name=f"orch-{config}", until="propose", queue=queue)
        finally:
            wall = time.perf_counter() - started
            if profile:
                profile.disable()
            if sql:
                sql.stop()
        cpu = CpuSnapshot.take(pids=[os.getpid()]).since(cpu0)
        counts = db_counts(url)
    stage_counts = {st.stage: dict(st.counts) for st in result.report.stages}
    all_done = all(stage_counts.get(s, {}).get("done", 0) == images for s in STAGES) and \
        sum(v for k, v in stage_counts.get("mine", {}).items() if k != "done") == 0 and \
        all(sum(v for k, v in stage_counts.get(s, {}).items() if k != "done") == 0 for s in STAGES)
    pairs = images * len(PHRASES)
    stage_wall = {s: float(queue.seconds.get(s, 0.0)) for s in STAGES}
    model_s = float(sum(clock.seconds.values()))
    return {
        "config": config, "batch_sizes": settings.batch_sizes.model_dump(), "images": images, "pairs": pairs,
        "wall_s": wall, "pairs_per_s": pairs / wall, "images_per_s": images / wall,
        "stage_wall_s": stage_wall, "stages_total_s": sum(stage_wall.values()),
        "outside_stages_s": wall - sum(stage_wall.values()),  # planning (listing, job_items), report
        "model_s": model_s, "model_s_by_fake": dict(clock.seconds), "model_calls": dict(clock.calls),
        "outside_model_share": (wall - model_s) / wall, "tasks": dict(tasks),
        "report_seconds": {s: dict(c) for s, c in report_seconds.items()},
        "status": stage_counts, "all_done": all_done, "db_rows": counts,
        "cpu": cpu,
    }


# ============================================================================ output
def print_runs(summary: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> None:
    rows = []
    for config, rs in runs.items():
        med = summary[config]
        bs = rs[0]["batch_sizes"]
        rows.append([f"{config} ({bs['mine']}/{bs['caption']}/{bs['parse']}/{bs['propose']})", len(rs),
                     fmt(med["pairs_per_s"], 0), f"{fmt(med['pairs_per_s_min'], 0)}..{fmt(med['pairs_per_s_max'], 0)}",
                     fmt(med["images_per_s"], 0), fmt(med["wall_s"], 2)]
                    + [fmt(med["stage_wall_s"][s], 2) for s in STAGES]
                    + [fmt(med["outside_stages_s"], 2), fmt(med["model_s"] * 1000, 1),
                       f"{med['outside_model_share'] * 100:.2f}%", fmt(med["python_cpu_s"], 1),
                       fmt(med["postgres_cpu_s"], 1), "yes" if med["all_done"] else "NO"])
    print(format_table(
        ["batches (mine/caption/parse/propose)", "runs", "pairs/s", "range", "images/s", "wall s"]
        + [f"{s} s" for s in STAGES]
        + ["plan+report s", "in fakes ms", "outside models", "python CPU s", "postgres CPU s", "all done"],
        rows, title="Medians (wall seconds per stage exclude nested stages)"))


def summarise(rs: list[dict[str, Any]]) -> dict[str, Any]:
    lo, hi = spread(r["pairs_per_s"] for r in rs)
    return {
        "pairs_per_s": median(r["pairs_per_s"] for r in rs), "pairs_per_s_min": lo, "pairs_per_s_max": hi,
        "images_per_s": median(r["images_per_s"] for r in rs), "wall_s": median(r["wall_s"] for r in rs),
        "stage_wall_s": {s: median(r["stage_wall_s"][s] for r in rs) for s in STAGES},
        "outside_stages_s": median(r["outside_stages_s"] for r in rs),
        "model_s": median(r["model_s"] for r in rs),
        "outside_model_share": median(r["outside_model_share"] for r in rs),
        "python_cpu_s": median(r["cpu"]["procs_s"] for r in rs),
        "postgres_cpu_s": median(r["cpu"]["postgres_s"] for r in rs),
        "machine_cpu_s": median(r["cpu"]["machine_s"] for r in rs),
        "all_done": all(r["all_done"] for r in rs),
        "report_seconds": {s: {k: median(r["report_seconds"][s].get(k, 0.0) for r in rs)
                               for k in sorted({k for r in rs for k in r["report_seconds"][s]})} for s in STAGES},
        "tasks": rs[0]["tasks"],
    }


def profile_table(prof: cProfile.Profile, top: int = 15) -> list[Any]:
    """[table, rows] for: top cumulative, top own time, top cumulative in engine/ + pipelines/."""
    stats = pstats.Stats(prof)
    entries = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename == THIS_FILE:
            continue  # the fakes and this harness
        if func in ("<method 'disable' of '_lsprof.Profiler' objects>",):
            continue
        entries.append({"function": func, "where": _short(filename, line), "calls": nc, "tottime_s": tt,
                        "cumtime_s": ct})
    out = []
    engine = [e for e in entries if e["where"].startswith(("engine/", "pipelines/"))
              and e["function"] not in ("<listcomp>", "<genexpr>", "<lambda>")]
    for key, label, pool in (("cumtime_s", "cumulative", entries), ("tottime_s", "own time", entries),
                             ("cumtime_s", "cumulative, engine/ and pipelines/ code only", engine)):
        best = sorted(pool, key=lambda e: -e[key])[:top]
        table = format_table(["function", "where", "calls", "own s", "cumulative s"],
                             [[e["function"][:60], e["where"], e["calls"], fmt(e["tottime_s"], 3),
                               fmt(e["cumtime_s"], 3)] for e in best],
                             title=f"cProfile, top {top} by {label}, outside the fakes", left=2)
        out += [table, best]
    return out


def _short(filename: str, line: int) -> str:
    for marker in ("/site-packages/", "/work/main/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}"


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orchestration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=None, help="images (default 1000; --quick 300)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration (default 3; --quick 1)")
    parser.add_argument("--configs", default="large,defaults", help="batch-size configurations: large,defaults")
    parser.add_argument("--quick", action="store_true", help="fewer images, one repeat")
    parser.add_argument("--no-profile", action="store_true", help="skip the SQL-timed and the cProfile runs")
    parser.add_argument("--top", type=int, default=15, help="rows of the profile tables")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
                        help="administrative PostgreSQL URL (databases de_bench_orch_* are created and dropped)")
    parser.add_argument("--settle", type=float, default=10.0, help="wait up to this long for an idle machine")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    images = args.images or (300 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 3)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    folder = ensure_images(args.cache_dir, images)
    tmp = Path(tempfile.mkdtemp(prefix="de_bench_orch_"))
    dbs = Databases(args.pg_url, tmp)
    pg_version = dbs.pg_version()
    workload = (f"{images} distinct {IMAGE_W}x{IMAGE_H} JPEGs (random content) x {len(PHRASES)} phrases = "
                f"{images * len(PHRASES)} pairs, 7 masks per image; mine -> caption -> parse -> propose with "
                f"zero-cost fakes; one process (InProcessQueue, depth first); PostgreSQL {pg_version} on 127.0.0.1, "
                f"fresh database per run; batch configs {configs}; {repeats} runs each, alternated")
    print("Orchestration overhead:", workload, flush=True)

    # warm-up: imports, first connections, SQLAlchemy statement caches (not measured)
    print("warm-up run (50 images, not measured) ...", flush=True)
    warm_folder = Path(tempfile.mkdtemp(prefix="warm_", dir=tmp))
    for p in sorted(folder.glob("*.jpg"))[:50]:
        shutil.copy(p, warm_folder / p.name)
    one_run(dbs, warm_folder, 50, configs[-1])

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    try:
        for rep in range(repeats):
            for config in (configs if rep % 2 == 0 else list(reversed(configs))):
                busy = wait_for_quiet(timeout_s=args.settle)
                r = one_run(dbs, folder, images, config)
                r["busy_cores_before"] = busy
                runs[config].append(r)
                print(f"  run {rep + 1}/{repeats} {config:8s}: {r['pairs_per_s']:7.1f} pairs/s, "
                      f"wall {r['wall_s']:6.2f} s "
                      f"(stages " + ", ".join(f"{s} {r['stage_wall_s'][s]:.2f}" for s in STAGES)
                      + f"; in fakes {r['model_s'] * 1000:.1f} ms; python CPU {r['cpu']['procs_s']:.1f} s, "
                      f"postgres CPU {r['cpu']['postgres_s']:.1f} s; all done: {r['all_done']}; "
                      f"busy before {busy})", flush=True)

        summary = {c: summarise(rs) for c, rs in runs.items()}
        print()
        print(f"Workload: {workload}")
        print_runs(summary, runs)
        print("\nWhere each stage's time goes (median seconds reported by the services, whole run):")
        for config in configs:
            rsec = summary[config]["report_seconds"]
            parts = [f"{s}: " + ", ".join(f"{k} {v:.2f}" for k, v in rsec[s].items()) for s in STAGES]
            print(f"  {config:8s} tasks {summary[config]['tasks']}; " + "; ".join(parts))
        first = runs[configs[0]][0]
        print(f"\nDatabase rows after a run: {first['db_rows']}; stage status: {first['status']}")
        for config in configs:
            print(f"Target >= {TARGET_PAIRS_PER_S:.0f} pairs/s on one process: {config} median "
                  f"{summary[config]['pairs_per_s']:.0f} pairs/s")

        sql_result: dict[str, Any] | None = None
        prof_result: dict[str, Any] | None = None
        if not args.no_profile:
            config = "defaults" if "defaults" in configs else configs[0]
            print(f"\nSQL-timed run ({config}, {images} images) ...", flush=True)
            sql = SqlTimer()
            r = one_run(dbs, folder, images, config, sql=sql)
            sql_result = sql_report(sql, r, images)
            prof = cProfile.Profile()
            print(f"\ncProfile run ({config}, {images} images) ...", flush=True)
            r2 = one_run(dbs, folder, images, config, profile=prof)
            cum_t, cum, own_t, own, eng_t, eng = profile_table(prof, args.top)
            print(f"  profiled run: {r2['pairs_per_s']:.1f} pairs/s under cProfile (wall {r2['wall_s']:.2f} s)")
            print(cum_t)
            print()
            print(own_t)
            print()
            print(eng_t)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(60)
            prof_result = {"run": r2, "top_cumulative": cum, "top_own": own, "top_engine": eng,
                           "pstats_text": buf.getvalue()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rss = peak_rss()
    print(f"\nPeak RSS of this process: {rss['self_mb']:.0f} MB")
    path = write_json("orchestration", {
        "benchmark": "orchestration", "workload": workload, "images": images, "pairs": images * len(PHRASES),
        "caption": CAPTION, "phrases": PHRASES, "target_pairs_per_s": TARGET_PAIRS_PER_S, "repeats": repeats,
        "summary": summary, "runs": runs, "sql": sql_result, "profile": prof_result, "peak_rss": rss,
        "postgres": pg_version, "environment": environment(), "argv": sys.argv[1:],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    print(f"wrote {path}")
    return 0


def sql_report(sql: SqlTimer, run: dict[str, Any], images: int) -> dict[str, Any]:
    by_stage: dict[str, list[float]] = {}
    for (stage, _shape), (calls, secs) in sql.stats.items():
        entry = by_stage.setdefault(stage, [0, 0.0])
        entry[0] += calls
        entry[1] += secs
    print(f"  SQL-timed run: {run['pairs_per_s']:.1f} pairs/s, wall {run['wall_s']:.2f} s")
    rows = []
    for stage in ("plan",) + STAGES:
        calls, secs = by_stage.get(stage, [0, 0.0])
        wall = run["stage_wall_s"].get(stage, run["outside_stages_s"] if stage == "plan" else 0.0)
        rows.append([stage, int(calls), fmt(calls / images, 1), fmt(secs, 2), fmt(wall, 2),
                     f"{secs / wall * 100:.0f}%" if wall else "-", fmt(secs * 1e6 / calls, 0) if calls else "-"])
    print(format_table(["stage", "statements", "per image", "SQL s (client)", "stage wall s", "SQL share",
                        "us/statement"], rows,
                       title="SQL statements by stage (client-side execute time; commits not included)"))
    top = sorted(sql.stats.items(), key=lambda kv: -kv[1][1])[:15]
    print()
    print(format_table(["statement", "stage", "calls", "per image", "total s", "us/call"],
                       [[shape[:110], st, int(c), fmt(c / images, 2), fmt(s, 3), fmt(s * 1e6 / c, 0)]
                        for (st, shape), (c, s) in top],
                       title="Top 15 SQL statement shapes by client-side time", left=2))
    return {"run": run, "by_stage": {k: {"statements": v[0], "seconds": v[1]} for k, v in by_stage.items()},
            "statements": [{"stage": st, "shape": shape, "calls": c, "seconds": s}
                           for (st, shape), (c, s) in sorted(sql.stats.items(), key=lambda kv: -kv[1][1])]}


if __name__ == "__main__":
    sys.exit(main())
