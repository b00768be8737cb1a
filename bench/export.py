"""COCO export from PostgreSQL: the streaming export beside its ceiling (a bare server-side cursor
with orjson) and beside building the COCO dict in memory.

    python -m bench.export [--masks 100000,1000000] [--repeats 1] [--rebuild]

Data. A PostgreSQL template database ``de_bench_export_tmpl_<revision>_<schema hash>_<masks>_v<n>``
is built once per size (``migrations.upgrade``, then INSERT … SELECT generate_series, VACUUM
ANALYZE; ``--drop-templates`` drops them afterwards) and copied for the runs. For ``--masks M``:
M/8 images of 640x480 (rows only), 50 concepts, 8 pairs per image: 4 positive exhaustive pairs
with 2 accepted masks each (decided by people on even images, by the AI router on odd ones — the
exported masks, M in all), 2 negative pairs, 2 undecided pairs with one candidate mask each (read
by the query, left out of the export): 1.25·M mask rows. The masks are COCO compressed RLE of
four ellipses (≈ 200 characters each).

Runs, each in its own process (so peak RSS is per run), on the same database copy (read once,
untimed, before the first run; the order of the runs is reversed on odd repeats):

- ``stream``: ``engine.services.export.export_dataset(…, "coco", …)`` — the real export: server-side
  cursor, streaming writers, split files, manifest with sha256, snapshot row;
- ``ceiling``: what the export could do at best — the same rows (the export's own label and image
  queries) through bare psycopg server-side cursors, each fetched batch of tuples written with one
  ``orjson.dumps``; no grouping, no per-row Python objects, no hashing, no fsync;
- ``in-memory``: the baseline — the same data fetched at once (one joined query, ``.all()``), the
  COCO dict built in memory (``images``, ``annotations``, ``categories``) and ``json.dump``-ed to
  one file (no split, no manifest).

Throughput is exported masks per wall-clock second of the whole run (query included; the process
start and imports are not). Peak RSS is the process's VmHWM. Every run must export (the ceiling:
read) the same masks, and every figure is printed with its ratio to the ceiling of the same repeat.
Results go to bench/results/export.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    child_parser,
    child_result,
    environment,
    format_table,
    hwm_mb,
    run_child,
    wait_for_quiet,
    write_json,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GEN_VERSION = 1
MASKS_PER_IMAGE = 8
IMAGE_W, IMAGE_H = 640, 480
TARGET_MASKS_PER_S = 100_000
TARGET_RSS_MB = 200
RUNS = ("stream", "ceiling", "in-memory")
CEILING_BATCH = 5000  # rows per fetchmany of the ceiling's named cursors (the export's YIELD_PER)


# ============================================================================ data
def template_name(masks: int) -> str:
    from bench.queue_load import schema_fingerprint

    rev, digest = schema_fingerprint()
    return f"de_bench_export_tmpl_{rev}_{digest}_{masks}_v{GEN_VERSION}"


def ellipses() -> list[Any]:
    import numpy as np

    from engine.domain.masks import encode_mask

    y, x = np.mgrid[0:IMAGE_H, 0:IMAGE_W]
    out = []
    for cx, cy, rx, ry in ((200, 150, 90, 60), (420, 300, 120, 80), (320, 240, 60, 140), (150, 380, 100, 50)):
        out.append(encode_mask(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0))
    return out


STEPS = [
    ("model_versions", """
        INSERT INTO model_versions (id, kind, name, version, params, params_hash, random_weights, is_promoted,
                                    metrics, created_at)
        SELECT id, kind, name, '1', '{}', repeat('0', 64), false, false, '{}', now()
        FROM (VALUES (1, 'proposer', 'bench-proposer'), (2, 'parser', 'bench-parser')) AS v(id, kind, name)"""),
    ("concepts", """
        INSERT INTO concepts (id, text, created_at)
        SELECT c, 'concept ' || c, now() FROM generate_series(1, 50) AS c"""),
    ("images", """
        INSERT INTO images (id, sha256, phash, phash_b0, phash_b1, phash_b2, phash_b3, width, height, format,
                            byte_size, storage_key, source_uri, created_at)
        SELECT i, s.sha, i, 0, 0, 0, (i %% 65536)::int, %(w)s, %(h)s, 'png', 250000,
               substr(s.sha, 1, 2) || '/' || substr(s.sha, 3, 2) || '/' || s.sha || '.png',
               'bench://image/' || i, now() - interval '2 days'
        FROM generate_series(1, %(images)s) AS i, LATERAL (SELECT md5(i::text) || md5('x' || i::text) AS sha) s"""),
    ("image_concepts", """
        INSERT INTO image_concepts (id, image_id, concept_id, polarity, origin, model_version_id, is_exhaustive,
                                    decided_by, created_at)
        SELECT (i - 1) * 8 + j + 1, i, ((i * 7 + j) %% 50) + 1,
               CASE WHEN j < 4 THEN 'positive' WHEN j < 6 THEN 'negative' ELSE 'unknown' END, 'caption', 2,
               CASE WHEN j < 6 THEN true END,
               CASE WHEN j < 6 THEN (CASE WHEN i %% 2 = 0 THEN 'human' ELSE 'ai' END) END,
               now() - interval '2 days'
        FROM generate_series(1, %(images)s) AS i, generate_series(0, 7) AS j"""),
    ("masks", """
        INSERT INTO masks (id, pair_id, model_version_id, rle_counts, height, width, bbox_x, bbox_y, bbox_w, bbox_h,
                           area, score, is_crowd, state, decided_by, created_at)
        SELECT row_number() OVER (ORDER BY p.id, k), p.id, 1, (%(counts)s::text[])[e + 1], %(h)s, %(w)s,
               (%(bx)s::float8[])[e + 1], (%(by)s::float8[])[e + 1], (%(bw)s::float8[])[e + 1],
               (%(bh)s::float8[])[e + 1], (%(area)s::int[])[e + 1], 0.9, false,
               CASE WHEN p.polarity = 'positive' THEN 'accepted' ELSE 'candidate' END, p.decided_by,
               now() - interval '2 days'
        FROM image_concepts p, generate_series(0, 1) AS k, LATERAL (SELECT ((p.id + k) %% 4)::int AS e) s
        WHERE p.polarity = 'positive' OR (p.polarity = 'unknown' AND k = 0)"""),
]


def build_template(pg: Any, name: str, masks: int) -> dict[str, Any]:
    import migrations
    from engine.db.session import dispose_engines

    timings: dict[str, float] = {}
    with pg.building(name) as build:
        url = pg.url(build)
        migrations.upgrade(url)
        dispose_engines(close=True)
        shapes = ellipses()
        params = {"images": masks // MASKS_PER_IMAGE, "w": IMAGE_W, "h": IMAGE_H,
                  "counts": [m.counts for m in shapes], "bx": [m.bbox[0] for m in shapes],
                  "by": [m.bbox[1] for m in shapes], "bw": [m.bbox[2] for m in shapes],
                  "bh": [m.bbox[3] for m in shapes], "area": [m.area for m in shapes]}
        with pg.connect(build, autocommit=False) as conn:
            for label, statement in STEPS:
                t0 = time.perf_counter()
                conn.execute(statement, {k: v for k, v in params.items() if f"%({k})s" in statement})
                timings[f"{label}_s"] = round(time.perf_counter() - t0, 2)
                print(f"    {label}: {timings[f'{label}_s']:.1f} s", flush=True)
            for table in ("model_versions", "concepts", "images", "image_concepts", "masks"):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            conn.commit()
        with pg.connect(build) as conn:
            conn.execute("VACUUM (ANALYZE)")
            rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("images", "image_concepts", "masks")}
            rows["accepted_masks"] = conn.execute("SELECT count(*) FROM masks WHERE state = 'accepted'").fetchone()[0]
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"name": name, "rows": rows, "database_bytes": size, "build_timings_s": timings}


def ensure_template(pg: Any, masks: int, rebuild: bool) -> dict[str, Any]:
    name = template_name(masks)
    if rebuild:
        pg.drop(name)
    if pg.exists(name):
        return {"name": name, "reused": True}
    print(f"building template database {name} ({masks:,} exported masks; once) ...", flush=True)
    with pg.connect() as conn:
        stale = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'de\\_bench\\_export\\_tmpl\\_%%' AND datname LIKE %s",
            (f"%\\_{masks}\\_v%",)).fetchall()]
    for old in stale:
        if old != name:
            pg.drop(old)
    return build_template(pg, name, masks)


# ============================================================================ the runs (children)
def run_stream(url: str, out: Path) -> dict[str, Any]:
    from engine.db.session import session_scope
    from engine.services.export import ExportFilters, commit_or_discard, export_dataset
    from engine.settings import Settings

    settings = Settings(database_url=url, data_dir=out.parent / "data")
    t0 = time.perf_counter()
    with session_scope(url) as session:
        result = export_dataset(session, settings, "coco", out, ExportFilters(), force=True)
        commit_or_discard(session, result)
    seconds = time.perf_counter() - t0
    counts = result.manifest["counts"]
    return {"seconds": seconds, "masks": sum(c.get("annotations", 0) for c in counts.values()),
            "images": sum(c.get("images", 0) for c in counts.values()),
            "bytes": sum(f["bytes"] for f in result.manifest["files"].values())}


BASELINE_SQL = """
    SELECT images.id, images.sha256, images.storage_key, images.width, images.height,
           image_concepts.concept_id, concepts.text, masks.id, masks.rle_counts, masks.height, masks.width,
           masks.bbox_x, masks.bbox_y, masks.bbox_w, masks.bbox_h, masks.area, masks.is_crowd
    FROM images JOIN image_concepts ON image_concepts.image_id = images.id
         JOIN concepts ON concepts.id = image_concepts.concept_id
         LEFT JOIN masks ON masks.pair_id = image_concepts.id AND masks.state = 'accepted'
                        AND masks.decided_by IS NOT NULL AND image_concepts.polarity <> 'negative'
    WHERE (image_concepts.polarity = 'negative' AND image_concepts.decided_by IS NOT NULL) OR masks.id IS NOT NULL
    ORDER BY images.id, image_concepts.concept_id, masks.id"""


def run_in_memory(url: str, out: Path) -> dict[str, Any]:
    """The same data fetched at once (one joined query, all rows), the COCO dict built in memory,
    then ``json.dump``."""
    from sqlalchemy import text

    from engine.db.session import get_engine

    t0 = time.perf_counter()
    images: dict[int, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    categories: dict[int, str] = {}
    with get_engine(url).connect() as conn:
        rows = conn.execute(text(BASELINE_SQL)).all()
    for r in rows:
        image = images.setdefault(r[0], {"id": r[0], "file_name": r[2], "width": r[3], "height": r[4],
                                         "sha256": r[1], "neg_category_ids": []})
        categories[r[5]] = r[6]
        if r[7] is None:
            image["neg_category_ids"].append(r[5])
            continue
        annotations.append({"id": r[7], "image_id": r[0], "category_id": r[5],
                            "segmentation": {"size": [r[9], r[10]], "counts": r[8]},
                            "bbox": [r[11], r[12], r[13], r[14]], "area": r[15], "iscrowd": int(bool(r[16]))})
    data = {"images": list(images.values()), "annotations": annotations,
            "categories": [{"id": k, "name": v} for k, v in sorted(categories.items())]}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "instances.json", "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "masks": len(annotations), "images": len(images),
            "bytes": (out / "instances.json").stat().st_size}


def ceiling_sql() -> tuple[str, str]:
    """The SQL of the COCO export's two scans (label rows, image rows) for the default filters,
    rendered with literal values (what the export sends, bar the bind parameters)."""
    from sqlalchemy.dialects import postgresql

    from engine.services.export_formats import _image_rows, _label_rows
    from engine.services.export_rows import ExportFilters

    def render(stmt: Any) -> str:
        return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    return render(_label_rows(ExportFilters())), render(_image_rows(ExportFilters()))


def run_ceiling(url: str, out: Path) -> dict[str, Any]:
    """The ceiling: the same rows the COCO export reads (its label and image queries), each through
    a bare psycopg server-side (named) cursor, ``CEILING_BATCH`` rows a fetch, each batch of tuples
    written as one ``orjson.dumps`` (JSON arrays of arrays) — no per-row Python work beyond the
    driver's tuple, no grouping, no hashing, no fsync. What the export could do at best with this
    driver and this JSON encoder."""
    import orjson
    import psycopg

    labels_sql, images_sql = ceiling_sql()
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    masks = images = 0
    with psycopg.connect(dsn) as conn, open(out / "ceiling.json", "wb", buffering=1 << 20) as handle:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for sql, kind in ((labels_sql, "labels"), (images_sql, "images")):
            with conn.cursor(name=f"ceiling_{kind}") as cur:
                cur.execute(sql)
                while rows := cur.fetchmany(CEILING_BATCH):
                    handle.write(orjson.dumps(rows))
                    if kind == "labels":
                        masks += sum(1 for r in rows if r[7] is not None)
                    else:
                        images += len(rows)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "masks": masks, "images": images, "bytes": (out / "ceiling.json").stat().st_size}


def child_main(spec: dict[str, Any]) -> None:
    fn = {"stream": run_stream, "ceiling": run_ceiling, "in-memory": run_in_memory}[spec["run"]]
    result = fn(spec["url"], Path(spec["out"]))
    result["peak_rss_mb"] = hwm_mb("self")
    child_result(result)


def measure(run: str, url: str, out: Path) -> dict[str, Any]:
    result = run_child("bench.export", {"run": run, "url": url, "out": str(out)}, run)
    result["masks_per_s"] = result["masks"] / result["seconds"]
    shutil.rmtree(out, ignore_errors=True)
    return result


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = child_parser("bench.export", __doc__)
    parser.add_argument("--masks", default="100000,1000000", help="exported masks per size, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each kind per size (default 1)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the template databases")
    parser.add_argument("--drop-templates", action="store_true", help="drop the template databases afterwards")
    args = parser.parse_args(argv)
    if args._child:
        child_main(json.loads(args._child))
        return 0
    from bench._common import Pg
    from bench.queue_load import database_copy

    pg = Pg.from_url(args.pg_url)
    sizes = [int(s) for s in args.masks.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    templates = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        for masks in sizes:
            info = ensure_template(pg, masks, args.rebuild)
            templates.append(info)
            with database_copy(pg, info["name"], f"de_bench_export_{os.getpid()}") as (url, _):
                # one untimed read of every row first: no run pays for the fresh copy's cold pages
                run_child("bench.export", {"run": "ceiling", "url": url, "out": str(tmp / "warm-up")}, "warm-up")
                shutil.rmtree(tmp / "warm-up", ignore_errors=True)
                for repeat in range(args.repeats):
                    for run in (RUNS if repeat % 2 == 0 else RUNS[::-1]):  # no run always goes first
                        busy = wait_for_quiet(timeout_s=args.settle) if args.settle else None
                        r = measure(run, url, tmp / f"{run}-{masks}-{repeat}")
                        r.update(run=run, size=masks, repeat=repeat, busy_cores_before=busy)
                        results.append(r)
                        print(f"  {masks:,} masks, {run}: {r['masks_per_s']:,.0f} masks/s, "
                              f"{r['peak_rss_mb']:,.0f} MB peak RSS", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.drop_templates:
            for info in templates:
                pg.drop(info["name"])
    report(results, sizes)
    path = write_json("export", {"environment": environment(), "postgres": pg.version(), "templates": templates,
                                 "targets": {"masks_per_s": TARGET_MASKS_PER_S, "peak_rss_mb": TARGET_RSS_MB},
                                 "runs": results, "ratios_to_ceiling": summary(results)})
    print(f"\nwritten {path.relative_to(RESULTS_DIR.parent.parent)}")
    return 0


def report(results: list[dict[str, Any]], sizes: list[int]) -> None:
    """One table: every run's figures and, beside them, its ratio to the ceiling measured in the
    same invocation (same database copy, same repeat)."""
    rows = []
    for masks in sizes:
        of_size = [r for r in results if r["size"] == masks]
        ceilings = {r["repeat"]: r for r in of_size if r["run"] == "ceiling"}
        for r in sorted(of_size, key=lambda r: (r["repeat"], RUNS.index(r["run"]))):
            ceiling = ceilings.get(r["repeat"])
            if ceiling and r["masks"] != ceiling["masks"]:
                print(f"WARNING: {masks:,}: {r['run']} exported {r['masks']} masks, "
                      f"the ceiling read {ceiling['masks']}")
            ratio = f"{r['masks_per_s'] / ceiling['masks_per_s']:.2f}" if ceiling else ""
            rss_ratio = f"{r['peak_rss_mb'] / ceiling['peak_rss_mb']:.2f}" if ceiling else ""
            rows.append([f"{masks:,}", r["run"], r["masks"], round(r["seconds"], 2), round(r["masks_per_s"]),
                         ratio, round(r["peak_rss_mb"], 1), rss_ratio, round(r["bytes"] / 2**20, 1)])
    print()
    print(format_table(["masks", "run", "exported", "seconds", "masks/s", "/ ceiling", "peak RSS MB", "/ ceiling",
                        "output MiB"], rows, left=2,
                       title=f"COCO export from PostgreSQL beside the bare-cursor + orjson ceiling (targets: "
                             f"stream ≥ {TARGET_MASKS_PER_S:,} masks/s, peak RSS < {TARGET_RSS_MB} MB at every size)"))


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and repeat: the stream's and the in-memory run's masks/s as a ratio of the ceiling's."""
    out = []
    for r in results:
        if r["run"] == "ceiling":
            continue
        ceiling = next((c for c in results if c["run"] == "ceiling" and c["size"] == r["size"]
                        and c["repeat"] == r["repeat"]), None)
        if ceiling:
            out.append({"size": r["size"], "repeat": r["repeat"], "run": r["run"],
                        "masks_per_s": round(r["masks_per_s"]), "ceiling_masks_per_s": round(ceiling["masks_per_s"]),
                        "ratio_to_ceiling": round(r["masks_per_s"] / ceiling["masks_per_s"], 3),
                        "peak_rss_mb": r["peak_rss_mb"], "ceiling_peak_rss_mb": ceiling["peak_rss_mb"]})
    return out


if __name__ == "__main__":
    sys.exit(main())
