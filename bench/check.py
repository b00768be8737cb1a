"""``dataengine check`` on PostgreSQL at 1,000,000 tasks: seconds per invariant, total, peak RSS.

    python -m bench.check [--tasks 1000000] [--repeats 3] [--plant 100] [--rebuild] [--drop-template]

Data. A PostgreSQL template database ``de_bench_check_tmpl_<revision>_<schema hash>_<tasks>_v<n>`` is
built once per size (``migrations.upgrade``, then INSERT … SELECT generate_series, VACUUM ANALYZE)
and copied for the runs (``CREATE DATABASE … TEMPLATE``). For ``--tasks T``: P = T / 3.1 pairs, 4 per
image (rows only), 200 concepts, 50 annotators, 3 masks per pair (every one with the MV's AI verdict;
every pair with the EV's), and per pair a verify_mask task for two of its masks (the third was
decided by the router), a check_exhaustivity task, and for one pair in ten a correction task:
≈ T tasks, 0.97·T masks, 0.32·T pairs. The pairs' states, by pair number mod 10, as the services
leave them (the built database is clean):

- 0–3 exhaustive positive (people): masks accepted (person), rejected (person), accepted (AI);
  their three tasks done; one verify task in ten judged by two people (``reviews_required`` 2), one
  task in 97 with a Label Studio edit (a verdict superseding the person's first);
- 4–5 negative (people, "not present"): masks rejected; the exhaustivity task done, the verify tasks
  cancelled as moot;
- 6–7 undecided: candidate masks, open tasks (one pair in 100 with a leased verify task);
- 8 positive, no claim: one mask accepted by a person (its task done), the other tasks open;
- 9 instances missing (people): candidate masks, exhaustivity done, verify and correction tasks open;
- one gold task per 100 pairs of states 0–3, done, with its verdict.

Verdicts: one per done task and person (≈ 0.55·T), plus the AI's (≈ 1.3·T).

Runs, each in its own process (peak RSS = VmHWM of that process), on one copy of the template:
``clean`` (``--repeats`` times), then ``--plant`` violations of every invariant are written with SQL
(the same kinds of faults as tests/engine/services/test_check.py), ``planted`` (``--repeats`` times;
every planted violation must be found), then ``repair`` once (the M1/T1/T5 fixes, committed) and a
last ``after-repair`` check. Each run is ``engine.services.check.check(session,
limit_per_invariant=100)``: the seconds of each invariant's query (with its count when more than 100
are found) and the total. Results go to bench/results/check.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench._common import (
    RESULTS_DIR,
    child_parser,
    child_result,
    environment,
    format_table,
    hwm_mb,
    median,
    run_child,
    spread,
    wait_for_quiet,
    write_json,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GEN_VERSION = 1
TARGET_S = 60.0
USERS = 50
PAIRS_PER_IMAGE = 4
CONCEPTS = 200


def template_name(tasks: int) -> str:
    from bench.queue_load import schema_fingerprint

    rev, digest = schema_fingerprint()
    return f"de_bench_check_tmpl_{rev}_{digest}_{tasks}_v{GEN_VERSION}"


# ============================================================================ data
# pair k (1..P), s = k % 10; mask ids 3(k-1)+1..3k; task ids 4(k-1)+1..4k (j = 0, 1 verify masks j;
# 2 exhaustivity; 3 correction when s = 9); gold task ids from 4P+1; person verdict ids 4·task + r
# (r 0: first person, 1: second person, 2: a superseding edit); AI verdict ids from 4·(4P + G) + 4
STEPS = [
    ("model_versions", """
        INSERT INTO model_versions (id, kind, name, version, params, params_hash, random_weights, is_promoted,
                                    metrics, created_at)
        SELECT id, kind, name, '1', '{}', repeat('0', 64), false, false, '{}', now()
        FROM (VALUES (1, 'proposer', 'bench-proposer'), (2, 'parser', 'bench-parser'),
                     (3, 'mask_verifier', 'bench-mv'), (4, 'exhaustivity_verifier', 'bench-ev'))
             AS v(id, kind, name)"""),
    ("users", f"""
        INSERT INTO users (id, username, role, is_active, created_at)
        SELECT u, 'bench-ann-' || u, 'annotator', true, now() FROM generate_series(1, {USERS}) AS u"""),
    ("concepts", f"""
        INSERT INTO concepts (id, text, created_at)
        SELECT c, 'concept ' || c, now() FROM generate_series(1, {CONCEPTS}) AS c"""),
    ("images", f"""
        INSERT INTO images (id, sha256, phash, phash_b0, phash_b1, phash_b2, phash_b3, width, height, format,
                            byte_size, storage_key, created_at)
        SELECT i, md5(i::text) || md5('x' || i::text), i, 0, 0, 0, (i %% 65536)::int, 640, 480, 'png', 250000,
               'bench/' || i || '.png', now()
        FROM generate_series(1, (%(pairs)s + {PAIRS_PER_IMAGE - 1}) / {PAIRS_PER_IMAGE}) AS i"""),
    ("image_concepts", f"""
        INSERT INTO image_concepts (id, image_id, concept_id, polarity, origin, model_version_id, is_exhaustive,
                                    decided_by, created_at)
        SELECT k, (k - 1) / {PAIRS_PER_IMAGE} + 1,
               ((k - 1) %% {PAIRS_PER_IMAGE}) * 50 + (((k - 1) / {PAIRS_PER_IMAGE}) %% 50) + 1,
               CASE WHEN k %% 10 < 4 OR k %% 10 >= 8 THEN 'positive' WHEN k %% 10 < 6 THEN 'negative'
                    ELSE 'unknown' END,
               'caption', 2,
               CASE WHEN k %% 10 < 6 THEN true WHEN k %% 10 = 9 THEN false END,
               CASE WHEN k %% 10 < 6 OR k %% 10 = 9 THEN 'human' END, now()
        FROM generate_series(1, %(pairs)s) AS k"""),
    ("masks", """
        INSERT INTO masks (id, pair_id, model_version_id, rle_counts, height, width, bbox_x, bbox_y, bbox_w, bbox_h,
                           area, score, is_crowd, state, decided_by, created_at)
        SELECT 3 * (k - 1) + j + 1, k, 1, 'PPYo0', 480, 640, 10, 10, 100, 100, 10000, 0.9, false,
               CASE WHEN k %% 10 < 4 THEN (ARRAY['accepted', 'rejected', 'accepted'])[j + 1]
                    WHEN k %% 10 < 6 THEN 'rejected'
                    WHEN k %% 10 = 8 AND j = 0 THEN 'accepted'
                    ELSE 'candidate' END,
               CASE WHEN k %% 10 < 6 THEN (ARRAY['human', 'human', 'ai'])[j + 1]
                    WHEN k %% 10 = 8 AND j = 0 THEN 'human' END,
               now()
        FROM generate_series(1, %(pairs)s) AS k, generate_series(0, 2) AS j"""),
    ("human_tasks", """
        INSERT INTO human_tasks (id, kind, pair_id, mask_id, state, priority, reason, lease_owner_id, lease_expires_at,
                                 attempts, is_gold, reviews_required, reviews_done, created_at, updated_at)
        SELECT t.id, CASE WHEN j < 2 THEN 'verify_mask' WHEN j = 2 THEN 'check_exhaustivity' ELSE 'correct' END,
               k, CASE WHEN j < 2 THEN 3 * (k - 1) + j + 1 END, st.state, 0, 'bench',
               CASE WHEN st.state = 'leased' THEN (k %% 50) + 1 END,
               CASE WHEN st.state = 'leased' THEN now() + interval '10 minutes' END,
               CASE WHEN st.state = 'open' THEN 0 ELSE 1 END, false, rr.n,
               CASE WHEN st.state = 'done' THEN rr.n ELSE 0 END, now(), now()
        FROM generate_series(1, %(pairs)s) AS k, generate_series(0, 3) AS j,
             LATERAL (SELECT 4 * (k - 1) + j + 1 AS id) t,
             LATERAL (SELECT CASE
                 WHEN k %% 10 < 4 THEN 'done'
                 WHEN k %% 10 < 6 THEN CASE WHEN j = 2 THEN 'done' ELSE 'cancelled' END
                 WHEN k %% 10 < 8 THEN CASE WHEN j = 0 AND k %% 100 IN (6, 7) THEN 'leased' ELSE 'open' END
                 WHEN k %% 10 = 8 THEN CASE WHEN j = 0 THEN 'done' ELSE 'open' END
                 ELSE CASE WHEN j = 2 THEN 'done' ELSE 'open' END END AS state) st,
             LATERAL (SELECT CASE WHEN j < 2 AND k %% 10 < 4 AND t.id %% 10 = 1 THEN 2 ELSE 1 END AS n) rr
        WHERE j < 3 OR k %% 10 = 9"""),
    ("gold_tasks", """
        INSERT INTO human_tasks (id, kind, pair_id, mask_id, state, priority, reason, attempts, is_gold, gold_answer,
                                 reviews_required, reviews_done, created_at, updated_at)
        SELECT 4 * %(pairs)s + g, 'verify_mask', k, 3 * (k - 1) + 1, 'done', 0, 'gold item', 1, true,
               '{"label": "accept"}', 1, 1, now(), now()
        FROM (SELECT row_number() OVER (ORDER BY k) AS g, k FROM generate_series(100, %(pairs)s, 100) AS k) AS gold"""),
    ("person_verdicts", """
        INSERT INTO verdicts (id, kind, source, pair_id, mask_id, task_id, user_id, label, duration_ms, created_at)
        SELECT 4 * t.id + r,
               CASE t.kind WHEN 'verify_mask' THEN 'mask_verification' WHEN 'check_exhaustivity' THEN 'exhaustivity'
                           ELSE 'correction' END,
               'human', t.pair_id, t.mask_id, t.id, ((t.id * 7 + r) %% 50) + 1,
               CASE t.kind WHEN 'verify_mask' THEN 'accept' WHEN 'check_exhaustivity' THEN 'complete'
                           ELSE 'corrected' END, 2000, now()
        FROM human_tasks t, generate_series(0, 1) AS r
        WHERE t.state = 'done' AND r < t.reviews_required"""),
    ("superseding_edits", """
        INSERT INTO verdicts (id, kind, source, pair_id, mask_id, task_id, user_id, label, supersedes_id, duration_ms,
                              created_at)
        SELECT 4 * v.task_id + 2, v.kind, 'label_studio', v.pair_id, v.mask_id, v.task_id, v.user_id, v.label, v.id,
               1500, now()
        FROM verdicts v JOIN human_tasks t ON t.id = v.task_id
        WHERE v.id %% 4 = 0 AND v.task_id %% 97 = 0 AND NOT t.is_gold"""),
    ("ai_verdicts", """
        INSERT INTO verdicts (id, kind, source, pair_id, mask_id, model_version_id, label, probabilities, created_at)
        SELECT (SELECT 4 * max(id) + 4 FROM human_tasks) + n, kind, 'ai', pair_id, mask_id, mv, label,
               '{"accept": 0.9}', now()
        FROM (SELECT row_number() OVER () AS n, * FROM (
                SELECT 'mask_verification' AS kind, m.pair_id, m.id AS mask_id, 3 AS mv, 'accept' AS label FROM masks m
                UNION ALL
                SELECT 'exhaustivity', p.id, NULL, 4, 'accept' FROM image_concepts p) AS a) AS b"""),
]
TABLES = ("model_versions", "users", "concepts", "images", "image_concepts", "masks", "human_tasks", "verdicts")


def build_template(pg: Any, name: str, tasks: int) -> dict[str, Any]:
    import migrations
    from engine.db.session import dispose_engines

    timings: dict[str, float] = {}
    pairs = round(tasks / 3.1)
    with pg.building(name) as build:
        migrations.upgrade(pg.url(build))
        dispose_engines(close=True)
        with pg.connect(build, autocommit=False) as conn:
            for label, statement in STEPS:
                t0 = time.perf_counter()
                conn.execute(statement, {"pairs": pairs})
                timings[f"{label}_s"] = round(time.perf_counter() - t0, 2)
                print(f"    {label}: {timings[f'{label}_s']:.1f} s", flush=True)
            for table in TABLES:
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            conn.commit()
        with pg.connect(build) as conn:
            conn.execute("VACUUM (ANALYZE)")
            rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES[3:]}
            rows["person_verdicts"] = conn.execute(
                "SELECT count(*) FROM verdicts WHERE user_id IS NOT NULL").fetchone()[0]
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"name": name, "pairs": pairs, "rows": rows, "database_bytes": size, "build_timings_s": timings}


def ensure_template(pg: Any, tasks: int, rebuild: bool) -> dict[str, Any]:
    name = template_name(tasks)
    if rebuild:
        pg.drop(name)
    if pg.exists(name):
        with pg.connect() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        try:
            with pg.connect(name) as conn:
                rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES[3:]}
        finally:
            with pg.connect() as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        return {"name": name, "reused": True, "rows": rows}
    print(f"building template database {name} ({tasks:,} tasks; once) ...", flush=True)
    with pg.connect() as conn:
        stale = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'de\\_bench\\_check\\_tmpl\\_%%' AND datname LIKE %s",
            (f"%\\_{tasks}\\_v%",)).fetchall()]
    for old in stale:
        if old != name:
            pg.drop(old)
    return build_template(pg, name, tasks)


# ============================================================================ planted violations
# n faults per invariant, each invariant in its own range of pairs (so every fault shows under one code
# and all can be counted): pairs k = base + r, base + r + 10, … with r the state (pair number mod 10)
# the fault needs; t(k, j) = 4(k - 1) + j + 1 is the pair's task j, 3(k - 1) + j + 1 its mask j.
K = "generate_series(%(base)s + {r}, %(base)s + {r} + 10 * (%(n)s - 1), 10) AS k"
PLANTS: dict[str, str] = {
    # an undecided pair's candidate mask with a decider
    "M1": "UPDATE masks SET decided_by = 'ai' WHERE id IN (SELECT 3 * (k - 1) + 1 FROM " + K.format(r=6) + ")",
    # a negative pair's mask accepted by the AI
    "P1": "UPDATE masks SET state = 'accepted', decided_by = 'ai' WHERE id IN (SELECT 3 * (k - 1) + 1 FROM "
          + K.format(r=4) + ")",
    # an undecided pair made negative with no claim
    "P2": "UPDATE image_concepts SET polarity = 'negative' WHERE id IN (SELECT k FROM " + K.format(r=6) + ")",
    # an exhaustive positive pair whose masks are all rejected
    "P3": "UPDATE masks SET state = 'rejected', decided_by = 'human' WHERE pair_id IN (SELECT k FROM "
          + K.format(r=1) + ")",
    # an undecided pair's mask accepted, the pair left unknown
    "P4": "UPDATE masks SET state = 'accepted', decided_by = 'human' WHERE id IN (SELECT 3 * (k - 1) + 2 FROM "
          + K.format(r=7) + ")",
    # a positive pair without a claim loses its one accepted mask
    "P5": "UPDATE masks SET state = 'rejected' WHERE id IN (SELECT 3 * (k - 1) + 1 FROM " + K.format(r=8) + ")",
    # a decider without a claim
    "P6": "UPDATE image_concepts SET decided_by = 'ai' WHERE id IN (SELECT k FROM " + K.format(r=6) + ")",
    # an open verify task that still carries an owner and an expiry
    "T1": "UPDATE human_tasks SET lease_owner_id = 1, lease_expires_at = now() WHERE id IN "
          "(SELECT 4 * (k - 1) + 2 FROM " + K.format(r=6) + ")",
    # the person who judged a done exhaustivity task judges it again
    "T2": "INSERT INTO verdicts (kind, source, pair_id, mask_id, task_id, user_id, label, created_at) "
          "SELECT kind, source, pair_id, mask_id, task_id, user_id, 'missing', now() FROM verdicts WHERE id IN "
          "(SELECT 4 * (4 * (k - 1) + 3) FROM " + K.format(r=2) + ")",
    # an exhaustivity verdict on an open verify task
    "T3": "INSERT INTO verdicts (kind, source, pair_id, mask_id, task_id, user_id, label, created_at) "
          "SELECT 'exhaustivity', 'human', t.pair_id, t.mask_id, t.id, 50, 'complete', now() "
          "FROM human_tasks t WHERE t.id IN (SELECT 4 * (k - 1) + 1 FROM " + K.format(r=6) + ")",
    # an open exhaustivity task that names a mask
    "T4": "UPDATE human_tasks SET mask_id = 3 * (pair_id - 1) + 1 WHERE id IN (SELECT 4 * (k - 1) + 3 FROM "
          + K.format(r=7) + ")",
    # a second open correction task for a pair
    "T5": "INSERT INTO human_tasks (kind, pair_id, mask_id, state, priority, reason, attempts, is_gold, "
          "reviews_required, reviews_done, created_at, updated_at) "
          "SELECT 'correct', k, NULL, 'open', 0, 'planted duplicate', 0, false, 1, 0, now(), now() FROM "
          + K.format(r=9),
    # a second person on a done single-review exhaustivity task
    "T6": "INSERT INTO verdicts (kind, source, pair_id, mask_id, task_id, user_id, label, created_at) "
          "SELECT 'exhaustivity', 'human', k, NULL, 4 * (k - 1) + 3, ((7 * (4 * (k - 1) + 3) + 1) %% 50) + 1, "
          "'complete', now() FROM " + K.format(r=2),
}


def plant(url: str, pg: Any, n: int, pairs: int) -> dict[str, float]:
    from sqlalchemy.engine import make_url

    span = pairs // (len(PLANTS) + 1)
    if 10 * n > span:
        raise SystemExit(f"--plant {n} needs {10 * n * (len(PLANTS) + 1):,} pairs; the data has {pairs:,}")
    timings = {}
    database = make_url(url).database
    with pg.connect(database, autocommit=False) as conn:
        for i, (code, statement) in enumerate(PLANTS.items()):
            t0 = time.perf_counter()
            conn.execute(statement, {"n": n, "base": (i + 1) * span // 10 * 10})
            timings[code] = round(time.perf_counter() - t0, 2)
        for table in ("human_tasks", "verdicts"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
    with pg.connect(database) as conn:
        conn.execute("ANALYZE")
    return timings


# ============================================================================ the runs (children)
def child_main(spec: dict[str, Any]) -> None:
    from engine.db.session import session_scope
    from engine.services import check as checker

    out: dict[str, Any] = {}
    with session_scope(spec["url"]) as session:
        if spec["run"] == "repair":
            t0 = time.perf_counter()
            repairs = checker.repair(session)
            session.commit()
            out["repair_seconds"] = time.perf_counter() - t0
            out["repairs"] = {}
            for r in repairs:
                out["repairs"][r.code] = out["repairs"].get(r.code, 0) + 1
        report = checker.check(session, limit_per_invariant=100)
    out.update(seconds=report.seconds, total=report.total,
               invariants={r.invariant.code: {"seconds": r.seconds, "count": r.count} for r in report.results},
               peak_rss_mb=hwm_mb("self"))
    child_result(out)


def measure(run: str, url: str) -> dict[str, Any]:
    return run_child("bench.check", {"run": run, "url": url}, run, show_log="--log" in sys.argv)


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = child_parser("bench.check", __doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="human tasks (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="check runs per state (median reported)")
    parser.add_argument("--plant", type=int, default=100, help="violations planted per invariant")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the template database")
    parser.add_argument("--drop-template", action="store_true", help="drop the template database afterwards")
    args = parser.parse_args(argv)
    if args._child:
        child_main(json.loads(args._child))
        return 0
    from bench._common import Pg
    from bench.queue_load import database_copy

    pg = Pg.from_url(args.pg_url)
    template = ensure_template(pg, args.tasks, args.rebuild)
    runs: list[dict[str, Any]] = []
    planted: dict[str, float] = {}

    def run(kind: str) -> dict[str, Any]:
        busy = wait_for_quiet(timeout_s=args.settle) if args.settle else None
        r = measure("repair" if kind == "repair" else "check", url)
        r.update(run=kind, busy_cores_before=busy)
        runs.append(r)
        found = {c: v["count"] for c, v in r["invariants"].items() if v["count"]}
        print(f"  {kind}: {r['seconds']:.2f} s, {r['total']:,} violations {found or ''}, "
              f"{r['peak_rss_mb']:.0f} MB peak RSS" + (f", repairs {r['repairs']}" if "repairs" in r else ""),
              flush=True)
        return r

    try:
        with database_copy(pg, template["name"], f"de_bench_check_{os.getpid()}") as (url, copy_s):
            print(f"  copy of the template: {copy_s:.1f} s", flush=True)
            for _ in range(args.repeats):
                run("clean")
            planted = plant(url, pg, args.plant, round(args.tasks / 3.1))
            for _ in range(args.repeats):
                run("planted")
            run("repair")
            run("after-repair")
    finally:
        if args.drop_template:
            pg.drop(template["name"])
    report(runs, args)
    path = write_json("check", {"environment": environment(), "postgres": pg.version(),
                                "postgres_settings": pg.settings(),
                                "template": template, "tasks": args.tasks, "planted_per_invariant": args.plant,
                                "plant_seconds": planted, "target_s": TARGET_S, "runs": runs})
    print(f"\nwritten {path.relative_to(RESULTS_DIR.parent.parent)}")
    return 0


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    codes = list(runs[0]["invariants"])
    kinds = ["clean", "planted", "after-repair"]
    rows = []
    for code in codes:
        row: list[Any] = [code]
        for kind in kinds:
            rs = [r for r in runs if r["run"] == kind]
            row.append(f'{median(r["invariants"][code]["seconds"] for r in rs) or 0:.3f}')
            row.append(rs[-1]["invariants"][code]["count"] if rs else "-")
        rows.append(row)
    total: list[Any] = ["total"]
    for kind in kinds:
        rs = [r for r in runs if r["run"] == kind]
        lo, hi = spread(r["seconds"] for r in rs)
        total += [f"{median(r['seconds'] for r in rs):.2f} ({lo:.2f}–{hi:.2f})", sum(r["total"] for r in rs[-1:])]
    rows.append(total)
    rss = max(r["peak_rss_mb"] for r in runs)
    print()
    print(format_table(["invariant", "clean s", "found", "planted s", "found", "after repair s", "found"], rows,
                       title=f"dataengine check on PostgreSQL, {args.tasks:,} tasks (median of {args.repeats}; "
                             f"{args.plant} planted per invariant; target < {TARGET_S:.0f} s); "
                             f"peak RSS {rss:.0f} MB"))
    repair = next((r for r in runs if r["run"] == "repair"), None)
    if repair:
        print(f"repair: {repair['repair_seconds']:.2f} s, {repair['repairs']}")


if __name__ == "__main__":
    sys.exit(main())
