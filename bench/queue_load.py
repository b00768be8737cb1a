"""The annotation queue under load: the real server against PostgreSQL with 1,000,000 open tasks.

    python -m bench.queue_load [--tasks 1000000] [--clients 32] [--duration 60] [--workers 1,2] [--quick]

Data. A PostgreSQL template database ``de_bench_queue_tmpl_<revision>_<schema hash>_<tasks>_v<n>`` is
built once (``migrations.upgrade``, then INSERT … SELECT generate_series, VACUUM ANALYZE) and
copied for every server configuration (``CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY``; the
copies are dropped afterwards, ``--drop-template`` drops the template too). For ``--tasks T``:
T/50 images of 640x480 (rows only, except the last 8, which are real PNGs in a content-addressed
media folder cached beside the template), one caption per image, 50 concepts, 30 pairs per image,
one candidate mask per pair (the same valid COCO RLE ellipse), the AI verdicts the router decided
on (one mask verification per mask and one exhaustivity verdict per pair: 1.2 M rows for 1 M
tasks), and T open human tasks: one verify_mask task per mask (60 %) and one
check_exhaustivity task for 20 of the 30 pairs of every image (40 %), interleaved per image as the
router creates them, priority 5 (audit) for 2 % of them and 0 otherwise. 32 annotators and one
click user are created with ``engine.services.users.create_user``.

Server. ``dataengine serve --workers N`` as a separate process tree (uvicorn with httptools and uvloop,
``serve.threads`` 8: what the project ships), on 127.0.0.1 and a free port, with ``DATAENGINE_DATABASE_URL``,
``DATAENGINE_MEDIA_ROOT``, ``DATAENGINE_MODELS__CACHE_DIR`` (bench/results/cache/models, reused),
``DATAENGINE_QUEUE__GOLD_RATE=0`` (no gold items in the data) and
``DATAENGINE_QUEUE__MULTI_REVIEW_RATE=0.1`` (the default: 10 % of tasks go back to the queue for a
second annotator). Every worker count of ``--workers`` gets its own copy of the template.

Clients. One asyncio process (bench/_loadgen.py: HTTP/1.1 keep-alive over asyncio streams, one
connection per annotator), each annotator signed in with the session cookie and echoing the CSRF
token. A client loops: POST /api/v1/tasks/next → (think) → POST /api/v1/tasks/{id}/verdict with a
label drawn per kind (verify_mask accept 70 % / reject 20 % / ungroundable 10 %; check_exhaustivity
complete 70 % / missing 15 % / not_present 15 %; correct tasks, made by "missing", not_present).

* realistic: think time uniform 2–4 s between receiving a task and submitting it, clients start
  staggered over 3 s, ``--warmup`` s not measured, then ``--duration`` s measured;
* capacity: no think time, ``--capacity-warmup`` s, then ``--capacity-duration`` s measured.

Latency is measured in the client from writing the request to reading the whole answer; requests
that start inside the window count. At the end of a phase every client submits the task it holds,
so each handed-out task gets one verdict. Any status other than 2xx counts as an error.

Correctness (per server, after both phases): every 201 verdict is in the database exactly once
(by client id), the verdicts per task equal the hand-outs per task, no task was handed out more
often than it needed reviews, no annotator got the same task twice, nothing is left leased.

PostgreSQL. EXPLAIN (ANALYZE, BUFFERS) of the exact lease statement the server runs (captured from
``engine.services.queue.next_task``) on the fresh copy and after the phases (autovacuum is off on the
bench server: dead index entries of leased tasks accumulate), the statement's median time, index
sizes and dead tuples; latency per 5 s bucket of the capacity phase shows drift.

Click to segment (on the first server, a single worker): the tiny random-weight SAM 3 tracker
(annotators/tiny.py), POST /api/v1/tasks/{id}/segment with one positive point, first click on an
image (embedding computed) and 15 later clicks (embedding cached) on 7 images, measured over HTTP
and compared with ``Sam3TrackerSegmenter.segment`` timed in this process on the same images and
points (and its ``last_timing`` split), so the share spent outside the model is known.

CPU: the server's process tree, PostgreSQL's processes and this load generator, from /proc.
Everything is written to bench/results/queue_load.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    CLK_TCK,
    RESULTS_DIR,
    Pg,
    _stat_fields,
    all_process_cpu,
    build_dir_atomically,
    environment,
    fmt,
    format_table,
    machine_cpu_s,
    proc_cpu_s,
    process_tree,
    wait_for_quiet,
    write_json,
)
from bench._loadgen import Connection, HttpError, LoopLag, summary_ms

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
CONFLICT_STORED = 4090  # a submit's logged status: 409 decision_conflict, the verdict stored
GEN_VERSION = 2
TASKS_PER_IMAGE = 50          # 30 verify_mask (one per pair) + 20 check_exhaustivity
PAIRS_PER_IMAGE = 30
EXHAUSTIVITY_PAIRS = 20
IMAGE_W, IMAGE_H = 640, 480
REAL_IMAGES = 8
PASSWORD = "bench-password-123"
ANNOTATOR = "bench-ann-{:02d}"
CLICK_USER = "bench-click"
TARGET_P99_MS = 25.0
CLICK_OVERHEAD_SHARE = 0.25   # a later click: outside segment() at most 25 % of the HTTP time …
CLICK_OVERHEAD_FLOOR_MS = 3.0  # … or 3 ms at p50, whichever is larger (issue 21, item 2)
TARGET_TASKS_PER_S = 300.0
LABEL_STUDIO_NEXT_MS = (80.0, 100.0)
LABELS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "verify_mask": (("accept", "reject", "ungroundable"), (0.70, 0.20, 0.10)),
    "check_exhaustivity": (("complete", "missing", "not_present"), (0.70, 0.15, 0.15)),
    "correct": (("not_present",), (1.0,)),
}
CONCEPTS = (
    "dog", "cat", "person", "car", "bicycle", "red ball", "wooden table", "green cup", "blue chair", "tree",
    "window", "door", "lamp", "book", "laptop", "bottle", "plate", "fork", "knife", "spoon",
    "horse", "bird", "boat", "traffic light", "stop sign", "bench", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skateboard", "surfboard", "kite", "tennis racket", "wine glass", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "pizza", "donut", "cake", "potted plant", "bed", "toilet",
    "television",
)
assert len(CONCEPTS) == 50


# ============================================================================ admin helpers
def schema_fingerprint() -> tuple[str, str]:
    """(head revision, 8 hex digits of the migration scripts' sha256): a template is rebuilt when a
    migration changes, even one edited without a new revision."""
    import migrations

    digest = hashlib.sha256()
    folder = Path(migrations.__file__).resolve().parent
    for path in sorted([folder / "env.py", *(folder / "versions").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return migrations.head(), digest.hexdigest()[:8]


def template_name(tasks: int) -> str:
    rev, digest = schema_fingerprint()
    return f"de_bench_queue_tmpl_{rev}_{digest}_{tasks}_v{GEN_VERSION}"


# ============================================================================ data
def photo(seed: int) -> Any:
    """A photo-like 640x480 RGB image (gradients, discs, noise), deterministic per seed."""
    from PIL import Image

    rng = np.random.default_rng([20240917, seed])
    y, x = np.mgrid[0:IMAGE_H, 0:IMAGE_W].astype(np.float32)
    chans = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 6.28)
        chans.append(127 + 100 * np.sin(x / IMAGE_W * fx * 6.28 + phase) * np.cos(y / IMAGE_H * fy * 6.28))
    arr = np.stack(chans, axis=-1)
    for _ in range(8):
        cx, cy, r = rng.uniform(0, IMAGE_W), rng.uniform(0, IMAGE_H), rng.uniform(30, 160)
        arr[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def ensure_media(folder: Path) -> list[dict[str, Any]]:
    """The real images (PNG) in a content-addressed media folder; [{sha256, key, size}] in order."""
    from engine.storage import LocalMediaStore

    manifest = folder / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())

    def build(tmp: Path) -> None:
        store = LocalMediaStore(tmp)
        rows = []
        for i in range(REAL_IMAGES):
            buf = io.BytesIO()
            photo(i).save(buf, "PNG")
            data = buf.getvalue()
            sha = hashlib.sha256(data).hexdigest()
            rows.append({"sha256": sha, "key": store.put(sha, "png", data), "size": len(data)})
        (tmp / "manifest.json").write_text(json.dumps(rows, indent=1))

    build_dir_atomically(folder, build, prefix=".queue-media-")
    return json.loads(manifest.read_text())


def bench_mask() -> Any:
    """The candidate mask of every pair: an ellipse on the 640x480 image, as compressed COCO RLE."""
    from engine.domain.masks import encode_mask

    y, x = np.mgrid[0:IMAGE_H, 0:IMAGE_W]
    return encode_mask(((x - 300) / 140.0) ** 2 + ((y - 250) / 110.0) ** 2 <= 1.0)


def build_template(pg: Pg, name: str, tasks: int, media: list[dict[str, Any]], log: Any = print) -> dict[str, Any]:
    """Create database ``name`` (via a build name renamed at the end) holding the workload."""
    import migrations
    from engine.db.session import dispose_engines, session_scope
    from engine.domain.vocabulary import Role
    from engine.services.users import create_user

    images = tasks // TASKS_PER_IMAGE
    if images < REAL_IMAGES + 1:
        raise SystemExit(f"--tasks must be at least {(REAL_IMAGES + 1) * TASKS_PER_IMAGE}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with pg.building(name) as build:
        url = pg.url(build)
        migrations.upgrade(url)
        timings["migrate_s"] = time.perf_counter() - started
        with session_scope(url) as session:
            for i in range(32):
                create_user(session, ANNOTATOR.format(i), PASSWORD, Role.ANNOTATOR)
            create_user(session, CLICK_USER, PASSWORD, Role.ANNOTATOR)
        dispose_engines(close=True)
        timings["users_s"] = time.perf_counter() - started - sum(timings.values())
        rle = bench_mask()
        n_syn = images - REAL_IMAGES
        steps = [
            ("model_versions", """
                INSERT INTO model_versions (id, kind, name, version, params, params_hash, random_weights,
                                            is_promoted, metrics, created_at)
                SELECT id, kind, name, '1', '{}', repeat('0', 64), false, false, '{}', now()
                FROM (VALUES (1, 'proposer', 'bench-proposer'), (2, 'mask_verifier', 'bench-mv'),
                             (3, 'exhaustivity_verifier', 'bench-ev'), (4, 'captioner', 'bench-captioner'))
                     AS v(id, kind, name)"""),
            ("concepts", "INSERT INTO concepts (id, text, created_at) "
                         "SELECT ord, t, now() FROM unnest(%(concepts)s::text[]) WITH ORDINALITY AS u(t, ord)"),
            ("images", """
                INSERT INTO images (id, sha256, phash, phash_b0, phash_b1, phash_b2, phash_b3, width, height,
                                    format, byte_size, storage_key, source_uri, created_at)
                SELECT i, s.sha, s.ph, ((s.ph >> 48) & 65535)::int, ((s.ph >> 32) & 65535)::int,
                       ((s.ph >> 16) & 65535)::int, (s.ph & 65535)::int, %(w)s, %(h)s, 'png', 250000,
                       substr(s.sha, 1, 2) || '/' || substr(s.sha, 3, 2) || '/' || s.sha || '.png',
                       'bench://image/' || i, now() - interval '2 days'
                FROM generate_series(1, %(n_syn)s) AS i,
                     LATERAL (SELECT md5(i::text) || md5('bench' || i::text) AS sha,
                                     ('x' || substr(md5('phash' || i::text), 1, 16))::bit(64)::bigint AS ph) s"""),
            ("real images", None),
            ("captions", """
                INSERT INTO captions (id, image_id, model_version_id, text, text_sha256, created_at)
                SELECT i, i, 4, c.text, encode(sha256(convert_to(c.text, 'UTF8')), 'hex'), now() - interval '2 days'
                FROM generate_series(1, %(images)s) AS i,
                     LATERAL (SELECT 'a photo of a ' || (%(concepts)s::text[])[((i * 7) %% 50) + 1] || ' next to a '
                                     || (%(concepts)s::text[])[((i * 7 + 1) %% 50) + 1] || ' and a '
                                     || (%(concepts)s::text[])[((i * 7 + 2) %% 50) + 1] || ' on a sunny day'
                                     AS text) c"""),
            ("image_concepts", """
                INSERT INTO image_concepts (id, image_id, concept_id, polarity, origin, created_at)
                SELECT (i - 1) * %(ppi)s + j + 1, i, ((i * 7 + j) %% 50) + 1, 'unknown', 'caption',
                       now() - interval '2 days'
                FROM generate_series(1, %(images)s) AS i, generate_series(0, %(ppi)s - 1) AS j"""),
            ("masks", """
                INSERT INTO masks (id, pair_id, model_version_id, rle_counts, height, width, bbox_x, bbox_y,
                                   bbox_w, bbox_h, area, score, is_crowd, state, created_at)
                SELECT p, p, 1, %(counts)s, %(h)s, %(w)s, %(bx)s, %(by)s, %(bw)s, %(bh)s, %(area)s,
                       0.30 + (p %% 60) / 100.0, false, 'candidate', now() - interval '2 days'
                FROM generate_series(1, %(pairs)s) AS p"""),
            ("verdicts", """  -- the AI verdicts the router decided on: one MV per mask, one EV per pair

                INSERT INTO verdicts (id, kind, source, pair_id, mask_id, model_version_id, label, probabilities,
                                      created_at)
                SELECT p, 'mask_verification', 'ai', p, p, 2,
                       CASE WHEN a >= 0.485 THEN 'accept' ELSE 'reject' END,
                       json_build_object('accept', a, 'accept_as_text', 0.01, 'flag_label', 0.01, 'whole_image', 0.01,
                                         'reject', 0.97 - a),
                       now() - interval '2 days'
                FROM generate_series(1, %(pairs)s) AS p, LATERAL (SELECT 0.20 + (p %% 61) / 100.0 AS a) s
                UNION ALL
                SELECT %(pairs)s + p, 'exhaustivity', 'ai', p, NULL, 3,
                       CASE WHEN a >= 0.475 THEN 'accept' ELSE 'reject_missing' END,
                       json_build_object('accept', a, 'reject_missing', 0.90 - a, 'reject_unseparated', 0.02,
                                         'flag_label', 0.02, 'whole_image', 0.02, 'ungroundable', 0.04),
                       now() - interval '2 days'
                FROM generate_series(1, %(pairs)s) AS p, LATERAL (SELECT 0.20 + (p %% 53) / 100.0 AS a) s"""),
            ("human_tasks", """
                INSERT INTO human_tasks (id, kind, pair_id, mask_id, state, priority, reason, attempts, is_gold,
                                         reviews_required, reviews_done, created_at, updated_at)
                SELECT t.id, t.kind, t.pair_id, t.mask_id, 'open',
                       CASE WHEN (t.id::bigint * 2654435761) %% 50 = 0 THEN 5 ELSE 0 END,
                       CASE WHEN t.kind = 'verify_mask'
                            THEN 'MV P(accept) 0.' || lpad(((t.id * 37) %% 100)::text, 2, '0')
                                 || ' lies between the thresholds 0.18 and 0.93'
                            ELSE 'EV P(complete) 0.' || lpad(((t.id * 53) %% 100)::text, 2, '0')
                                 || ' lies between the thresholds 0.25 and 0.95' END,
                       0, false, 1, 0, now() - interval '1 day', now() - interval '1 day'
                FROM (
                    SELECT (i - 1) * %(tpi)s + CASE WHEN j < %(ex)s THEN 2 * j ELSE %(ex)s + j END + 1 AS id,
                           'verify_mask' AS kind, (i - 1) * %(ppi)s + j + 1 AS pair_id,
                           (i - 1) * %(ppi)s + j + 1 AS mask_id
                    FROM generate_series(1, %(images)s) AS i, generate_series(0, %(ppi)s - 1) AS j
                    UNION ALL
                    SELECT (i - 1) * %(tpi)s + 2 * j + 2, 'check_exhaustivity', (i - 1) * %(ppi)s + j + 1, NULL
                    FROM generate_series(1, %(images)s) AS i, generate_series(0, %(ex)s - 1) AS j
                ) AS t ORDER BY t.id"""),
        ]
        params = {"concepts": list(CONCEPTS), "w": IMAGE_W, "h": IMAGE_H, "n_syn": n_syn, "images": images,
                  "ppi": PAIRS_PER_IMAGE, "tpi": TASKS_PER_IMAGE, "ex": EXHAUSTIVITY_PAIRS,
                  "pairs": images * PAIRS_PER_IMAGE, "counts": rle.counts, "bx": rle.bbox[0], "by": rle.bbox[1],
                  "bw": rle.bbox[2], "bh": rle.bbox[3], "area": rle.area}
        with pg.connect(build, autocommit=False) as conn:
            for label, statement in steps:
                t0 = time.perf_counter()
                if statement is None:  # the real PNGs: the last REAL_IMAGES image ids
                    for k, row in enumerate(media):
                        conn.execute(
                            """INSERT INTO images (id, sha256, phash, phash_b0, phash_b1, phash_b2, phash_b3, width,
                                   height, format, byte_size, storage_key, source_uri, created_at)
                               VALUES (%s, %s, %s, 0, 0, 0, %s, %s, %s, 'png', %s, %s, %s, now())""",
                            (n_syn + 1 + k, row["sha256"], k + 1, k + 1, IMAGE_W, IMAGE_H, row["size"], row["key"],
                             f"bench://real/{k}"))
                else:
                    conn.execute(statement, {k: v for k, v in params.items() if f"%({k})s" in statement})
                timings[f"{label}_s"] = time.perf_counter() - t0
                log(f"    {label}: {timings[f'{label}_s']:.1f} s", flush=True)
            conn.commit()
            for table in ("model_versions", "concepts", "images", "captions", "image_concepts", "masks", "verdicts",
                          "human_tasks"):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            conn.commit()
        t0 = time.perf_counter()
        with pg.connect(build) as conn:
            conn.execute("VACUUM (ANALYZE)")
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("images", "captions", "concepts", "image_concepts", "masks", "verdicts", "human_tasks",
                                "users")}
            counts["open_by_kind"] = dict(conn.execute(
                "SELECT kind, count(*) FROM human_tasks WHERE state = 'open' GROUP BY kind").fetchall())
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        timings["vacuum_analyze_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    return {"name": name, "rows": counts, "database_bytes": size, "build_timings_s": timings}


def ensure_template(pg: Pg, tasks: int, cache_dir: Path,
                    rebuild: bool = False) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(template name, real images of its media folder, build info or {'reused': True})."""
    name = template_name(tasks)
    media_dir = cache_dir / f"{name}-media"
    if rebuild:
        pg.drop(name)
    if pg.exists(name) and (media_dir / "manifest.json").exists():
        return name, json.loads((media_dir / "manifest.json").read_text()), {"name": name, "reused": True}
    print(f"building template database {name} ({tasks:,} tasks; once) ...", flush=True)
    pg.drop(name)
    # older templates of this size (another schema) are stale
    with pg.connect() as conn:
        stale = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'de\\_bench\\_queue\\_tmpl\\_%%' AND datname LIKE %s",
            (f"%\\_{tasks}\\_v%",)).fetchall()]
    for old in stale:
        if old != name:
            print(f"  dropping stale template {old}", flush=True)
            pg.drop(old)
    media = ensure_media(media_dir)
    info = build_template(pg, name, tasks, media)
    print(f"  built in {info['build_timings_s']['total_s']:.0f} s: {info['rows']}, "
          f"{info['database_bytes'] / 2**20:,.0f} MiB", flush=True)
    return name, media, info


@contextlib.contextmanager
def database_copy(pg: Pg, template: str, name: str) -> Iterator[tuple[str, float]]:
    """A copy of the template, dropped afterwards; yields (url, seconds the copy took)."""
    from psycopg import sql

    from engine.db.session import dispose_engines

    pg.drop(name)
    t0 = time.perf_counter()
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(template)))
    seconds = time.perf_counter() - t0
    try:
        yield pg.url(name), seconds
    finally:
        dispose_engines(close=True)
        try:
            pg.drop(name)
        except Exception as exc:  # noqa: BLE001 - report, do not mask the run's own error
            print(f"  warning: could not drop database {name}: {exc}", file=sys.stderr)


# ============================================================================ server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``dataengine serve --workers N`` in its own process group."""

    def __init__(self, workers: int, db_url: str, media_root: Path, data_dir: Path, models_dir: Path,
                 multi_review_rate: float, extra_env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.env = {**os.environ,
                    "DATAENGINE_DATABASE_URL": db_url, "DATAENGINE_MEDIA_ROOT": str(media_root),
                    "DATAENGINE_DATA_DIR": str(data_dir), "DATAENGINE_MODELS__CACHE_DIR": str(models_dir),
                    "DATAENGINE_QUEUE__GOLD_RATE": "0", "DATAENGINE_QUEUE__MULTI_REVIEW_RATE": str(multi_review_rate),
                    "DATAENGINE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.env.pop("DATAENGINE_CONFIG_FILE", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{workers}.log"

    @property
    def env_shown(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k.startswith("DATAENGINE_") and k != "DATAENGINE_DATABASE_URL"}

    def start(self, timeout_s: float = 90.0) -> float:
        t0 = time.perf_counter()
        exe = Path(sys.executable).with_name("dataengine")
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "dataengine.cli.main"]),
               "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2) as r:
                    if r.status == 200 and len(self.pids()) >= self.workers:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not answer in {timeout_s} s: {self.log_tail()}")
        if self.workers > 1:  # every worker process imports the app on its own: give them time
            deadline = time.monotonic() + 30
            while len(self.pids()) < self.workers + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)
        return time.perf_counter() - t0

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group of the process started here
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# ============================================================================ CPU probes
PG_AUX = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical replication", "archiver",
          "startup", "walreceiver", "walsender", "stats")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_cpu(database: str) -> dict[str, Any]:
    """CPU seconds so far of PostgreSQL, split by whom it worked for: the backends connected to
    ``database`` (the process title names it), the server's shared processes (WAL writer,
    checkpointer, background writer: they work for every database, ours mostly while we load it),
    other databases' backends (other users of a shared machine), and backends that have exited
    (reaped by the postmaster, in its cutime: a pool that closes overflow connections makes these)."""
    out: dict[str, Any] = {"ours": 0.0, "shared": 0.0, "other_databases": 0.0, "exited": 0.0, "our_pids": set()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        f = _stat_fields(pid)
        if f is None or len(f) < 16 or not f[0].startswith(("postgres", "postmaster")):
            continue
        own = (int(f[12]) + int(f[13])) / CLK_TCK
        title = _cmdline(pid)
        if not title.startswith("postgres:"):  # the postmaster
            out["shared"] += own
            out["exited"] += (int(f[14]) + int(f[15])) / CLK_TCK
            continue
        words = title.split(":", 2)[-1].split()
        if any(title.split(":", 2)[-1].strip().startswith(a) for a in PG_AUX) or len(words) < 2:
            out["shared"] += own
        elif words[1] == database:
            out["ours"] += own
            out["our_pids"].add(pid)
        else:
            out["other_databases"] += own
    return out


@dataclass
class CpuProbe:
    """CPU seconds of: the server's process tree (fixed once it runs), PostgreSQL (see
    :func:`postgres_cpu`), this load generator, and the whole machine."""

    server: list[int]
    database: str

    def take(self) -> dict[str, Any]:
        return {"server": sum(proc_cpu_s(p) for p in self.server), "pg": postgres_cpu(self.database),
                "loadgen": proc_cpu_s(os.getpid()), "machine": machine_cpu_s(), "wall": time.perf_counter(),
                "everyone": all_process_cpu(), "members": list(self.server)}

    @staticmethod
    def since(later: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
        wall = later["wall"] - earlier["wall"]
        out: dict[str, Any] = {"wall_s": round(wall, 3)}

        def put(key: str, used: float) -> None:
            out[f"{key}_s"] = round(used, 3)
            out[f"{key}_cores"] = round(used / wall, 3) if wall > 0 else 0.0

        for key in ("server", "loadgen", "machine"):
            put(key, later[key] - earlier[key])
        pg1, pg0 = later["pg"], earlier["pg"]
        # ours: this database's backends + the shared WAL writer, checkpointer, background writer
        put("postgres", pg1["ours"] - pg0["ours"] + pg1["shared"] - pg0["shared"])
        put("postgres_backends", pg1["ours"] - pg0["ours"])
        put("postgres_other_databases", pg1["other_databases"] - pg0["other_databases"])
        put("postgres_exited", pg1["exited"] - pg0["exited"])
        out["postgres_new_backends"] = len(pg1["our_pids"] - pg0["our_pids"])
        out["postgres_backends_gone"] = len(pg0["our_pids"] - pg1["our_pids"])
        # everything else: other users of the machine, other databases, the kernel's own work
        put("other", out["machine_s"] - out["server_s"] - out["postgres_s"] - out["loadgen_s"])
        others = []
        skip = set(later.get("members", ()))
        for pid, (comm, cpu) in later["everyone"].items():
            before = earlier["everyone"].get(pid)
            used = cpu - (before[1] if before and before[0] == comm else 0.0)
            if used >= 0.2 and pid != os.getpid() and pid not in skip:
                others.append({"comm": comm, "pid": pid, "cpu_s": round(used, 2)})
        out["busiest_processes"] = sorted(others, key=lambda o: -o["cpu_s"])[:6]
        return out


# ============================================================================ clients
@dataclass
class Annotator:
    index: int
    username: str
    user_id: int
    conn: Connection
    csrf: str = ""
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class PhaseLog:
    """Everything the clients saw in one phase."""

    name: str
    samples: list[tuple[str, float, float, int]] = field(default_factory=list)  # endpoint, start, seconds, status
    handouts: list[tuple[int, int, str]] = field(default_factory=list)  # task id, user id, kind
    submits: list[tuple[int, int, str, int, str]] = field(default_factory=list)  # task, user, client id, status, label
    errors: list[dict[str, Any]] = field(default_factory=list)
    empty: int = 0
    conflicts: int = 0  # verdicts stored but not applied (409 decision_conflict): not errors


async def sign_in(host: str, port: int, users: dict[str, int], names: list[str]) -> list[Annotator]:
    out = []
    for i, name in enumerate(names):
        conn = Connection(host, port)
        r = await conn.request("POST", "/api/v1/auth/login",
                               json.dumps({"username": name, "password": PASSWORD}).encode())
        if r.status != 200 or "de_session" not in conn.cookies:
            raise RuntimeError(f"log-in of {name} failed: {r.status} {r.body[:200]!r}")
        a = Annotator(i, name, users[name], conn, r.json()["csrf_token"], random.Random(f"{name}-{i}"))
        conn.headers["X-CSRF-Token"] = a.csrf
        out.append(a)
    return out


async def timed(a: Annotator, log: PhaseLog, endpoint: str, path: str, body: bytes | None) -> Any:
    t0 = time.perf_counter()
    try:
        r = await asyncio.wait_for(a.conn.request("POST", path, body), timeout=30.0)
    except (TimeoutError, HttpError, OSError) as exc:
        log.samples.append((endpoint, t0, time.perf_counter() - t0, 0))
        log.errors.append({"endpoint": endpoint, "status": 0, "detail": f"{type(exc).__name__}: {exc}"[:300]})
        await a.conn.close()
        return None
    log.samples.append((endpoint, t0, time.perf_counter() - t0, CONFLICT_STORED if decision_conflict(r) else r.status))
    if decision_conflict(r):
        log.conflicts += 1  # stored, not applied: a late verdict on a pair someone settled (random labels)
    elif not (200 <= r.status < 300):
        log.errors.append({"endpoint": endpoint, "status": r.status, "detail": r.body[:300].decode(errors="replace")})
    return r


def decision_conflict(r: Any) -> bool:
    """409 decision_conflict: the verdict was stored but disagrees with a decision made meanwhile."""
    return r.status == 409 and r.headers.get(b"x-error-code") == b"decision_conflict"


async def annotate(a: Annotator, log: PhaseLog, *, think: tuple[float, float] | None, start_delay: float,
                   end_at: float, tag: str, max_requests: int) -> None:
    """next → (think) → verdict, until ``end_at``; the task held at the end is submitted at once."""
    await asyncio.sleep(start_delay)
    seq = 0
    while time.perf_counter() < end_at and seq < max_requests:
        r = await timed(a, log, "next", "/api/v1/tasks/next", None)
        if r is None or r.status != 200:
            await asyncio.sleep(0.1)
            continue
        task = r.json()
        if task.get("id") is None:  # the empty answer: {task: null, message, blocked, waiting}
            log.empty += 1
            # its sample (the last one: nothing ran since timed() appended it) is not a hand-out
            log.samples[-1] = ("next (empty)", *log.samples[-1][1:])
            await asyncio.sleep(0.2)
            continue
        log.handouts.append((task["id"], a.user_id, task["kind"]))
        pause = a.rng.uniform(*think) if think else 0.0
        if pause:
            await asyncio.sleep(max(0.0, min(pause, end_at - time.perf_counter())))
        labels, weights = LABELS[task["kind"]]
        label = a.rng.choices(labels, weights)[0]
        seq += 1
        client_id = f"{tag}-{a.index:02d}-{seq:07d}"
        body = json.dumps({"client_id": client_id, "label": label,
                           "active_ms": int(pause * 1000) if pause else a.rng.randint(1500, 4000)}).encode()
        r = await timed(a, log, "submit", f"/api/v1/tasks/{task['id']}/verdict", body)
        status = 0 if r is None else (CONFLICT_STORED if decision_conflict(r) else r.status)
        log.submits.append((task["id"], a.user_id, client_id, status, label))


async def run_phase(host: str, port: int, users: dict[str, int], names: list[str], probe: CpuProbe, *, name: str,
                    think: tuple[float, float] | None, warmup_s: float, duration_s: float, stagger_s: float,
                    tag: str, bucket_s: float = 5.0) -> tuple[dict[str, Any], PhaseLog]:
    annotators = await sign_in(host, port, users, names)
    log = PhaseLog(name)
    lag = LoopLag()
    lag.start()
    start = time.perf_counter()
    window_start, window_end = start + warmup_s, start + warmup_s + duration_s
    # a generous bound on requests per client (the loop is time-bounded anyway)
    max_requests = int((warmup_s + duration_s) * 2000) + 10
    tasks = [asyncio.create_task(annotate(a, log, think=think, start_delay=random.Random(a.index).uniform(0, stagger_s),
                                          end_at=window_end, tag=tag, max_requests=max_requests))
             for a in annotators]
    await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
    cpu0 = probe.take()
    await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
    cpu1 = probe.take()
    await asyncio.gather(*tasks)
    lag_ms = await lag.stop()
    for a in annotators:
        await a.conn.close()
    return summarise_phase(log, name, think, warmup_s, duration_s, window_start, window_end, bucket_s,
                           CpuProbe.since(cpu1, cpu0), lag_ms, annotators), log


def summarise_phase(log: PhaseLog, name: str, think: Any, warmup_s: float, duration_s: float, w0: float, w1: float,
                    bucket_s: float, cpu: dict[str, float], lag_ms: dict[str, Any],
                    annotators: list[Annotator]) -> dict[str, Any]:
    inside = [s for s in log.samples if w0 <= s[1] < w1]
    lat: dict[str, dict[str, Any]] = {}
    for endpoint in ("next", "submit"):
        lat[endpoint] = summary_ms([s[2] for s in inside
                                    if s[0] == endpoint and s[3] in (200, 201, 204, CONFLICT_STORED)])
    done_in = [s for s in log.samples if w0 <= s[1] + s[2] < w1]
    handed = sum(1 for s in done_in if s[0] == "next" and s[3] == 200)
    submitted = sum(1 for s in done_in if s[0] == "submit" and s[3] in (200, 201, CONFLICT_STORED))
    requests = len(inside)
    buckets = []
    n_buckets = max(1, int(round(duration_s / bucket_s)))
    for b in range(n_buckets):
        lo, hi = w0 + b * bucket_s, w0 + (b + 1) * bucket_s
        sel = [s for s in inside if lo <= s[1] < hi]
        nxt = summary_ms([s[2] for s in sel if s[0] == "next" and s[3] in (200, 204)])
        sub = summary_ms([s[2] for s in sel if s[0] == "submit" and s[3] in (200, 201, CONFLICT_STORED)])
        buckets.append({"t_s": round(b * bucket_s, 1), "tasks": sum(1 for s in sel if s[0] == "next" and s[3] == 200),
                        "next_p50": nxt["p50"], "next_p99": nxt["p99"], "submit_p50": sub["p50"],
                        "submit_p99": sub["p99"]})
    statuses = Counter(f"{s[0]} {s[3]}" for s in log.samples)
    all_requests = len(log.samples)
    return {
        "phase": name, "think_s": list(think) if think else None, "warmup_s": warmup_s, "duration_s": duration_s,
        "clients": len(annotators), "requests_in_window": requests, "requests_total": all_requests,
        "statuses_total": dict(statuses), "errors": len(log.errors), "error_samples": log.errors[:10],
        "empty": log.empty, "decision_conflicts": log.conflicts,
        "latency_ms": lat, "tasks_handed_per_s": round(handed / duration_s, 2),
        "tasks_submitted_per_s": round(submitted / duration_s, 2), "requests_per_s": round(requests / duration_s, 2),
        "cpu": cpu, "loadgen_cpu_us_per_request": round(cpu["loadgen_s"] / max(1, requests) * 1e6, 1),
        "server_cpu_ms_per_task": round(cpu["server_s"] / max(1, submitted) * 1000, 3),
        "postgres_cpu_ms_per_task": round(cpu["postgres_s"] / max(1, submitted) * 1000, 3),
        "loop_lag_ms": lag_ms, "buckets": buckets,
        "reconnects": sum(a.conn.connects - 1 for a in annotators), "resent": sum(a.conn.retries for a in annotators),
    }


# ============================================================================ framework probes
async def hammer(host: str, port: int, users: dict[str, int], names: list[str], probe: CpuProbe, *, method: str,
                 path: str, seconds: float, expect: int = 200, warmup_s: float = 1.0) -> dict[str, Any]:
    """All clients call one endpoint back to back, to price the layers under the queue: a path no
    route matches (404: HTTP parsing, the middleware, routing, an error response; no thread
    hand-off, no database), GET /api/v1/auth/me (plus the session dependency, the session lookup
    in the database, a response model) and GET /api/v1/health (a query and Alembic's revision)."""
    annotators = await sign_in(host, port, users, names)
    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    w0, w1 = start + warmup_s, start + warmup_s + seconds

    async def loop(a: Annotator) -> None:
        nonlocal errors
        while time.perf_counter() < w1:
            t0 = time.perf_counter()
            r = await a.conn.request(method, path)
            if r.status != expect:
                errors += 1
            if t0 >= w0:
                lat.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(loop(a)) for a in annotators]
    await asyncio.sleep(max(0.0, w0 - time.perf_counter()))
    cpu0 = probe.take()
    await asyncio.sleep(max(0.0, w1 - time.perf_counter()))
    cpu1 = probe.take()
    await asyncio.gather(*tasks)
    for a in annotators:
        await a.conn.close()
    cpu = CpuProbe.since(cpu1, cpu0)
    n = max(1, len(lat))
    return {"endpoint": f"{method} {path}", "requests": len(lat), "errors": errors,
            "requests_per_s": round(len(lat) / seconds, 1), "latency_ms": summary_ms(lat), "cpu": cpu,
            "server_cpu_us_per_request": round(cpu["server_s"] / n * 1e6, 1),
            "postgres_cpu_us_per_request": round(cpu["postgres_s"] / n * 1e6, 1),
            "loadgen_cpu_us_per_request": round(cpu["loadgen_s"] / n * 1e6, 1)}


async def client_cost(host: str, port: int, requests: int = 1500, connections: int = 8) -> dict[str, Any]:
    """CPU of this process per request for GET /api/v1/health: the minimal client against httpx."""
    import httpx

    out: dict[str, Any] = {}
    per_conn = requests // connections

    async def own() -> None:
        conns = [Connection(host, port) for _ in range(connections)]

        async def run(c: Connection) -> None:
            for _ in range(per_conn):
                await c.request("GET", "/api/v1/health")

        await asyncio.gather(*(run(c) for c in conns))
        for c in conns:
            await c.close()

    async def with_httpx() -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", limits=limits) as client:
            async def run() -> None:
                for _ in range(per_conn):
                    (await client.get("/api/v1/health")).raise_for_status()

            await asyncio.gather(*(run() for _ in range(connections)))

    for name, fn in (("minimal", own), ("httpx", with_httpx), ("minimal_again", own)):
        c0, t0 = proc_cpu_s(os.getpid()), time.perf_counter()
        await fn()
        c1, t1 = proc_cpu_s(os.getpid()), time.perf_counter()
        out[name] = {"cpu_us_per_request": round((c1 - c0) / (per_conn * connections) * 1e6, 1),
                     "requests_per_s": round(per_conn * connections / (t1 - t0), 1)}
    return out


# ============================================================================ in-process breakdown
def service_breakdown(url: str, names: list[str], users: dict[str, int], multi_review_rate: float,
                      iterations: int) -> dict[str, Any]:
    """What the two requests of a task cost inside the engine, called in this process (no HTTP, no
    framework): wall and CPU (this thread) per step, median over ``iterations`` tasks. Steps as
    the endpoints run them: open a session (pool checkout with pre-ping), the session lookup, the
    lease, describe, JSON encoding as FastAPI does it (jsonable_encoder + json.dumps), commit and
    close; then for the verdict: session, session lookup, annotation.submit, commit and close."""
    from fastapi.encoders import jsonable_encoder

    from engine.db.session import session_factory
    from engine.domain.vocabulary import TaskKind
    from engine.services import annotation, queue
    from engine.services import auth as auth_service
    from engine.settings import QueueSettings

    qs = QueueSettings(gold_rate=0.0, multi_review_rate=multi_review_rate)
    make = session_factory(url)
    tokens = []
    with make() as session:
        for name in names:
            token, _p = auth_service.log_in(session, name, PASSWORD, "127.0.0.1", ttl_s=3600, max_failures=100,
                                            window_s=60)
            tokens.append((token, users[name]))
        session.commit()
    rng = random.Random(7)
    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.thread_time()

    def mark(name: str, since: tuple[float, float]) -> tuple[float, float]:
        now = clock()
        steps[name].append((now[0] - since[0], now[1] - since[1]))
        return now

    for i in range(iterations):
        token, uid = tokens[i % len(tokens)]
        t = clock()
        session = make()
        session.connection()  # the checkout (and pre-ping) happens on first use
        t = mark("next: open session", t)
        principal = auth_service.from_session(session, token)
        t = mark("next: session lookup (auth)", t)
        task = queue.lease_for(session, principal.user_id, list(TaskKind), lease_s=600, gold_rate=0.0, rng=rng)
        t = mark("next: lease", t)
        if task is None:
            raise RuntimeError("the queue is empty")
        body = annotation.describe(session, task)
        t = mark("next: describe", t)
        json.dumps(jsonable_encoder(body), ensure_ascii=False, separators=(",", ":")).encode()
        t = mark("next: JSON (jsonable_encoder + dumps)", t)
        session.commit()
        session.close()
        t = mark("next: commit + close", t)
        labels, weights = LABELS[body["kind"]]
        verdict = annotation.VerdictIn(client_id=f"breakdown-{os.getpid()}-{i:06d}",
                                       label=rng.choices(labels, weights)[0], active_ms=2000)
        session = make()
        session.connection()
        t = mark("submit: open session", t)
        principal = auth_service.from_session(session, token)
        t = mark("submit: session lookup (auth)", t)
        annotation.submit(session, body["id"], principal.user_id, verdict, qs)
        t = mark("submit: annotation.submit", t)
        session.commit()
        session.close()
        mark("submit: commit + close", t)
    out: dict[str, Any] = {"iterations": iterations, "steps": {}}
    for name, vals in steps.items():
        walls, cpus = sorted(v[0] for v in vals), sorted(v[1] for v in vals)
        out["steps"][name] = {"wall_ms_p50": round(walls[len(walls) // 2] * 1000, 3),
                              "wall_ms_mean": round(sum(walls) / len(walls) * 1000, 3),
                              "cpu_ms_mean": round(sum(cpus) / len(cpus) * 1000, 3)}
    # the server looks a credential up once per serve.auth_cache_s, not per request: not counted
    out["cpu_ms_per_task"] = round(sum(v["cpu_ms_mean"] for k, v in out["steps"].items() if "(auth)" not in k), 3)
    out["wall_ms_per_task"] = round(sum(v["wall_ms_mean"] for k, v in out["steps"].items() if "(auth)" not in k), 3)
    return out


# ============================================================================ correctness
def check_correctness(url: str, logs: list[PhaseLog], users: dict[str, int]) -> dict[str, Any]:
    """Hand-outs and verdicts seen by the clients against the rows in the database."""
    import psycopg

    handouts: Counter[int] = Counter()
    pairs: Counter[tuple[int, int]] = Counter()
    ok_submits: dict[str, int] = {}
    for log in logs:
        for task_id, user_id, _kind in log.handouts:
            handouts[task_id] += 1
            pairs[(task_id, user_id)] += 1
        for task_id, _user, client_id, status, _label in log.submits:
            if status in (200, 201, CONFLICT_STORED):  # a conflicting verdict is stored too
                ok_submits[client_id] = task_id
    ids = list(handouts)
    bench_users = list(users.values())
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database) as conn:
        stored = dict(conn.execute(
            "SELECT client_id, task_id FROM verdicts WHERE client_id = ANY(%s)", (list(ok_submits),)).fetchall())
        dup_client = conn.execute(
            "SELECT count(*) FROM (SELECT client_id FROM verdicts WHERE client_id = ANY(%s) "
            "GROUP BY client_id HAVING count(*) > 1) d", (list(ok_submits),)).fetchone()[0]
        human = conn.execute("SELECT count(*) FROM verdicts WHERE source = 'human' AND user_id = ANY(%s)",
                             (bench_users,)).fetchone()[0]
        per_task = dict(conn.execute(
            "SELECT task_id, count(*) FROM verdicts WHERE task_id = ANY(%s) GROUP BY task_id", (ids,)).fetchall())
        required = dict(conn.execute(
            "SELECT id, reviews_required FROM human_tasks WHERE id = ANY(%s)", (ids,)).fetchall())
        states = dict(conn.execute("SELECT state, count(*) FROM human_tasks GROUP BY state").fetchall())
        leased_left = conn.execute("SELECT count(*) FROM human_tasks "
                                   "WHERE state = 'leased' AND lease_owner_id = ANY(%s)",
                                   (bench_users,)).fetchone()[0]
        created_corrections = conn.execute(
            "SELECT count(*) FROM human_tasks WHERE kind = 'correct'").fetchone()[0]
    missing = [c for c in ok_submits if c not in stored]
    wrong_task = [c for c, t in ok_submits.items() if c in stored and stored[c] != t]
    mismatch = [t for t, n in handouts.items() if per_task.get(t, 0) != n]
    over = [t for t, n in handouts.items() if n > required.get(t, 1)]
    twice_same_user = [k for k, n in pairs.items() if n > 1]
    multi = sum(1 for n in handouts.values() if n > 1)
    result = {
        "handouts": sum(handouts.values()), "distinct_tasks": len(handouts), "tasks_handed_to_2_annotators": multi,
        "verdicts_acknowledged": len(ok_submits), "verdicts_in_db_for_bench_users": human,
        "acknowledged_missing_in_db": len(missing), "acknowledged_stored_twice": dup_client,
        "stored_for_another_task": len(wrong_task),
        "tasks_where_verdicts_differ_from_handouts": len(mismatch),
        "tasks_handed_out_more_than_reviews_required": len(over),
        "same_task_twice_to_one_annotator": len(twice_same_user),
        "leased_left": leased_left, "task_states": states, "correct_tasks_created": created_corrections,
    }
    result["ok"] = (not missing and not dup_client and not wrong_task and not mismatch and not over
                    and not twice_same_user and leased_left == 0 and human == len(ok_submits))
    return result


# ============================================================================ PostgreSQL plans
def capture_lease_sql(url: str, user_id: int) -> tuple[str, dict[str, Any]]:
    """The locking statement that ``queue.next_task`` sends (SQL and parameters), from a rolled-back call."""
    from sqlalchemy import event

    from engine.db.session import get_engine, session_factory
    from engine.domain.vocabulary import TaskKind
    from engine.services import queue

    engine = get_engine(url)
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        session = session_factory(url)()
        try:
            queue.next_task(session, user_id, list(TaskKind), lease_s=600)
        finally:
            session.rollback()
            session.close()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    for statement, params in seen:  # a SELECT … FOR UPDATE, or an UPDATE around one
        if "SKIP LOCKED" in statement.upper():
            return statement, params
    raise RuntimeError(f"no SKIP LOCKED statement among {len(seen)}: {[s[:80] for s, _ in seen]}")


def explain_lease(url: str, user_id: int, repeats: int = 30) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the lease statement, its median time over ``repeats`` runs
    (each in a rolled-back transaction), index sizes and dead tuples."""
    from sqlalchemy import text

    from engine.db.session import get_engine

    statement, params = capture_lease_sql(url, user_id)
    engine = get_engine(url)
    times = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for _ in range(repeats):
            t0 = time.perf_counter()
            with raw.cursor() as cur:
                cur.execute(statement, params)
                cur.fetchall()
            times.append(time.perf_counter() - t0)
            raw.rollback()
        with raw.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            plan = "\n".join(r[0] for r in cur.fetchall())
        raw.rollback()
        sizes = dict(conn.execute(text(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE i.indrelid = 'human_tasks'::regclass")).fetchall())
        stats = conn.execute(text(
            "SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
            "WHERE relname = 'human_tasks'")).one()
        verdicts = conn.execute(text("SELECT count(*) FROM verdicts")).scalar_one()
        conn.rollback()
    times.sort()
    return {"statement": statement, "params": {k: str(v) for k, v in (params or {}).items()},
            "median_ms": round(times[len(times) // 2] * 1000, 3), "max_ms": round(times[-1] * 1000, 3),
            "plan": plan, "index_bytes": sizes,
            "human_tasks": {"n_live_tup": stats[0], "n_dead_tup": stats[1], "n_tup_upd": stats[2],
                            "n_tup_hot_upd": stats[3]}, "verdicts": verdicts}


# ============================================================================ click to segment
def click_points(rng: random.Random, n: int) -> list[list[float]]:
    return [[round(rng.uniform(20, IMAGE_W - 20), 1), round(rng.uniform(20, IMAGE_H - 20), 1)] for _ in range(n)]


def lease_click_tasks(url: str, user_id: int, images: int) -> list[tuple[int, int]]:
    """One task per real image, leased to the click user directly in the database (the segment
    endpoint needs a lease; taking them through /next would hand out the queue's first tasks)."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    first_real = images - REAL_IMAGES + 1
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database) as conn:
        rows = conn.execute(
            """UPDATE human_tasks t SET state = 'leased', lease_owner_id = %s,
                   lease_expires_at = now() + interval '1 hour',
                   attempts = attempts + 1, updated_at = now()
               FROM (SELECT DISTINCT ON (p.image_id) t2.id, p.image_id FROM human_tasks t2
                     JOIN image_concepts p ON p.id = t2.pair_id
                     WHERE p.image_id >= %s AND t2.state = 'open' ORDER BY p.image_id, t2.id) pick
               WHERE t.id = pick.id RETURNING t.id, pick.image_id""", (user_id, first_real)).fetchall()
        conn.commit()
    return sorted((int(r[0]), int(r[1])) for r in rows)


def make_local_segmenter(settings: Any) -> tuple[Any, float]:
    from annotators.registry import make_segmenter

    t0 = time.perf_counter()
    segmenter = make_segmenter(settings)
    return segmenter, time.perf_counter() - t0


async def clicks_interleaved(host: str, port: int, users: dict[str, int], tasks: list[tuple[int, int]],
                             media: list[dict[str, Any]], media_root: Path, images: int, segmenter: Any,
                             clicks_per_image: int) -> dict[str, Any]:
    """Per image: a first click and ``clicks_per_image`` later clicks (one positive point each),
    every click sent over HTTP and then given to the in-process segmenter (its own embedding
    cache, the same image and point), alternately, so that both see the same machine. The first
    image only warms up (model load in the server, first calls)."""
    from PIL import Image as PILImage

    from engine.domain.masks import encode_mask
    from engine.storage import LocalMediaStore

    store = LocalMediaStore(media_root)
    first_real = images - REAL_IMAGES + 1
    [a] = await sign_in(host, port, users, [CLICK_USER])
    raw: dict[str, Any] = {"warmup_http_ms": [], "warmup_local_ms": [], "errors": []}
    for which in ("first", "later"):
        raw[which] = {"http": [], "local": [], "timing": [], "encode": [], "paired": [], "server": []}
    for n, (task_id, image_id) in enumerate(tasks):
        row = media[image_id - first_real]

        def load(key: str = row["key"]) -> Any:  # what the endpoint's loader does: read, decode, RGB
            with PILImage.open(io.BytesIO(store.open_bytes(key))) as handle:
                return handle.convert("RGB")

        rng = random.Random(f"click-{image_id}")
        for k, (x, y) in enumerate(click_points(rng, clicks_per_image + 1)):
            t0 = time.perf_counter()
            r = await a.conn.request("POST", f"/api/v1/tasks/{task_id}/segment",
                                     json.dumps({"points": [[x, y, 1]]}).encode())
            h = time.perf_counter() - t0
            server = server_timing(r.headers.get(b"server-timing", b""))
            if r.status != 200:
                raw["errors"].append({"status": r.status, "detail": r.body[:300].decode(errors="replace")})
                continue
            t0 = time.perf_counter()
            result = segmenter.segment(row["sha256"], load, [(x, y, 1)])
            loc = time.perf_counter() - t0
            timing = dict(segmenter.last_timing)
            t0 = time.perf_counter()
            rle = encode_mask(result.mask)  # what the endpoint does after the model
            json.dumps({"rle": rle.to_coco(), "bbox": list(rle.bbox), "area": rle.area, "score": float(result.score)})
            enc = time.perf_counter() - t0
            if n == 0:
                raw["warmup_http_ms"].append(round(h * 1000, 1))
                raw["warmup_local_ms"].append(round(loc * 1000, 1))
                continue
            d = raw["first" if k == 0 else "later"]
            d["http"].append(h)
            d["local"].append(loc)
            d["timing"].append(timing)
            d["encode"].append(enc)
            d["paired"].append(h - loc)
            d["server"].append(server)
    await a.conn.close()
    raw["cache_info_local"] = segmenter.cache_info()
    return raw


def server_timing(header: bytes) -> dict[str, float]:
    """``Server-Timing: db;dur=0.4, model;dur=3.1, …`` → {"db": 0.4, "model": 3.1, …} in seconds."""
    out: dict[str, float] = {}
    for part in header.decode("latin-1").split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if name and key == "dur":
                out[name] = float(value) / 1000.0
    return out


def click_overhead(http: list[float], server: list[dict[str, float]]) -> dict[str, Any]:
    """The share of a click's HTTP time spent outside the model, from the server's own timing of the same
    request (``Server-Timing: model``: the tracker's ``segment()`` call), against the target: outside
    the model at most 25 % of the HTTP time or 3 ms at p50, whichever is larger (issue 21)."""
    pairs = [(h, t) for h, t in zip(http, server, strict=True) if "model" in t]
    if not pairs:
        return {"n": 0}
    outside = [h - t["model"] for h, t in pairs]
    h50 = summary_ms([h for h, _ in pairs])["p50"]
    m50 = summary_ms([t["model"] for _, t in pairs])["p50"]
    o = summary_ms(outside)
    allowed = max(CLICK_OVERHEAD_SHARE * h50, CLICK_OVERHEAD_FLOOR_MS)
    parts = {k: summary_ms([t[k] for _, t in pairs if k in t])["p50"] for k in ("db", "encode")}
    return {"n": len(pairs), "http_ms_p50": h50, "model_ms_p50": m50, "outside_ms": o,
            "server_parts_ms_p50": parts,
            "outside_share_p50": round(o["p50"] / h50, 4) if h50 else None,
            "outside_share_median_per_click": round(float(np.median([x / h for x, (h, _) in zip(
                outside, pairs, strict=True)])), 4),
            "target_ms": round(allowed, 3), "ratio_to_target": round(o["p50"] / allowed, 3),
            "met": o["p50"] <= allowed}


def summarise_clicks(raw: dict[str, Any], model_load_s: float) -> dict[str, Any]:
    res: dict[str, Any] = {"http_warmup_ms": raw["warmup_http_ms"], "local_warmup_ms": raw["warmup_local_ms"],
                           "local_model_load_s": round(model_load_s, 2), "errors": raw["errors"][:5],
                           "n_errors": len(raw["errors"]), "cache_info_local": raw["cache_info_local"]}
    for which in ("first", "later"):
        d = raw[which]
        h, m, e, p = summary_ms(d["http"]), summary_ms(d["local"]), summary_ms(d["encode"]), summary_ms(d["paired"])
        split = {k: round(float(np.median([t[k] for t in d["timing"]])), 3)
                 for k in ("load_ms", "embed_ms", "decode_ms", "post_ms")} if d["timing"] else {}
        share = round(p["p50"] / h["p50"], 4) if h["p50"] and p["p50"] is not None else None
        res[which] = {"http_ms": h, "model_ms": m, "model_split_ms_median": split, "encode_json_ms": e,
                      "outside_model_ms": p, "outside_model_share_p50": share,
                      "same_request": click_overhead(d["http"], d["server"])}
    return res


# ============================================================================ one server configuration
def load_users(url: str) -> dict[str, int]:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database) as conn:
        return {r[0]: int(r[1]) for r in conn.execute("SELECT username, id FROM users").fetchall()}


def run_config(pg: Pg, template: str, media: list[dict[str, Any]], workers: int, args: argparse.Namespace,
               tmp: Path, images: int, clicks: bool, first: bool) -> dict[str, Any]:
    name = f"de_bench_queue_{os.getpid()}_w{workers}"
    out: dict[str, Any] = {"workers": workers}
    media_dir = args.cache_dir / f"{template}-media"
    with database_copy(pg, template, name) as (url, copy_s):
        out["copy_database_s"] = round(copy_s, 2)
        users = load_users(url)
        names = [ANNOTATOR.format(i) for i in range(args.clients)]
        if args.clients > 32:
            raise SystemExit("--clients: at most 32 annotators exist in the template")
        out["explain_before"] = explain_lease(url, users[names[0]])
        server = Server(workers, url, media_dir, tmp / f"data-{workers}", args.cache_dir / "models",
                        args.multi_review_rate)
        out["server_env"] = server.env_shown
        busy = wait_for_quiet(timeout_s=args.settle)
        out["busy_cores_before"] = busy
        out["server_start_s"] = round(server.start(), 2)
        print(f"  workers={workers}: database copied in {copy_s:.1f} s, server up in {out['server_start_s']:.1f} s "
              f"(pids {server.pids()}), lease statement {out['explain_before']['median_ms']:.2f} ms median",
              flush=True)
        logs: list[PhaseLog] = []
        try:
            probe = CpuProbe(server.pids(), name)
            phases = [("realistic", (args.think_min, args.think_max), args.warmup, args.duration, 3.0),
                      ("capacity", None, args.capacity_warmup, args.capacity_duration, 0.0)]
            if args.only_clicks:
                phases = []
            for phase, think, warm, dur, stagger in phases:
                res, log = asyncio.run(run_phase("127.0.0.1", server.port, users, names, probe, name=phase,
                                                 think=think, warmup_s=warm, duration_s=dur, stagger_s=stagger,
                                                 tag=f"{phase[0]}{workers}"))
                logs.append(log)
                out[phase] = res
                lat = res["latency_ms"]
                print(f"    {phase:9s}: {res['tasks_handed_per_s']:7.1f} tasks/s handed out, "
                      f"{res['tasks_submitted_per_s']:7.1f} submitted; next p50 {fmt(lat['next']['p50'], 1)} "
                      f"p99 {fmt(lat['next']['p99'], 1)} ms, submit p50 {fmt(lat['submit']['p50'], 1)} "
                      f"p99 {fmt(lat['submit']['p99'], 1)} ms; errors {res['errors']}; CPU server "
                      f"{res['cpu']['server_cores']:.2f}, postgres {res['cpu']['postgres_cores']:.2f}, loadgen "
                      f"{res['cpu']['loadgen_cores']:.2f} cores ({res['loadgen_cpu_us_per_request']:.0f} us/request)",
                      flush=True)
            out["probes"] = []
            probes = (("GET", "/api/v1/no-such-route", 404), ("GET", "/api/v1/auth/me", 200),
                      ("GET", "/api/v1/health", 200))
            for method, path, expect in () if args.only_clicks else probes:
                r = asyncio.run(hammer("127.0.0.1", server.port, users, names, probe, method=method, path=path,
                                       seconds=args.probe_duration, expect=expect))
                out["probes"].append(r)
                print(f"    probe {r['endpoint']:20s}: {r['requests_per_s']:7.1f} requests/s, p50 "
                      f"{fmt(r['latency_ms']['p50'], 1)} ms, "
                      f"server CPU {r['server_cpu_us_per_request']:.0f} us/request, "
                      f"postgres {r['postgres_cpu_us_per_request']:.0f} us, "
                      f"loadgen {r['loadgen_cpu_us_per_request']:.0f} us",
                      flush=True)
            if first and not args.only_clicks:
                out["client_cost"] = asyncio.run(client_cost("127.0.0.1", server.port))
                print(f"    load generator CPU per request (GET /api/v1/health): {out['client_cost']}", flush=True)
            if clicks:
                from engine.settings import Settings

                tasks = lease_click_tasks(url, users[CLICK_USER], images)
                settings = Settings(database_url=url, media_root=media_dir, data_dir=tmp / "clicks",
                                    models={"cache_dir": args.cache_dir / "models"})
                segmenter, load_s = make_local_segmenter(settings)
                raw = asyncio.run(clicks_interleaved("127.0.0.1", server.port, users, tasks, media, media_dir, images,
                                                     segmenter, args.clicks))
                out["clicks"] = summarise_clicks(raw, load_s)
                del segmenter
        finally:
            server.stop()
            out["server_log_tail"] = server.log_tail(1500)
        if args.only_clicks:
            return out
        out["correctness"] = check_correctness(url, logs, {n: users[n] for n in names})
        out["explain_after"] = explain_lease(url, users[names[0]])
        if first and args.breakdown:
            out["breakdown"] = service_breakdown(url, names[:8], users, args.multi_review_rate, args.breakdown)
    c = out["correctness"]
    print(f"    correctness: {'OK' if c['ok'] else 'FAILED'} "
          f"({c['handouts']} hand-outs of {c['distinct_tasks']} tasks, "
          f"{c['verdicts_acknowledged']} verdicts acknowledged, "
          f"{c['verdicts_in_db_for_bench_users']} in the database); "
          f"lease statement after: {out['explain_after']['median_ms']:.2f} ms median, "
          f"{out['explain_after']['human_tasks']['n_dead_tup']} dead tuples", flush=True)
    return out


# ============================================================================ output
def print_results(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        for phase in ("realistic", "capacity"):
            p = r.get(phase)
            if not p:
                continue
            lat = p["latency_ms"]
            rows.append([f"{phase} (workers={r['workers']})", p["requests_in_window"], p["errors"],
                         p["tasks_handed_per_s"], p["tasks_submitted_per_s"],
                         fmt(lat["next"]["p50"], 1), fmt(lat["next"]["p90"], 1), fmt(lat["next"]["p99"], 1),
                         fmt(lat["next"]["max"], 1), fmt(lat["submit"]["p50"], 1), fmt(lat["submit"]["p90"], 1),
                         fmt(lat["submit"]["p99"], 1), fmt(lat["submit"]["max"], 1),
                         fmt(p["cpu"]["server_cores"], 2), fmt(p["cpu"]["postgres_cores"], 2),
                         fmt(p["cpu"]["loadgen_cores"], 2), fmt(p["cpu"]["other_cores"], 2),
                         fmt(p["cpu"]["machine_cores"], 2)])
    print(format_table(["workload", "requests", "errors", "tasks/s out", "tasks/s in", "next p50", "p90", "p99", "max",
                        "submit p50", "p90", "p99", "max", "server cores", "pg cores", "loadgen cores",
                        "other cores", "machine cores"], rows,
                       title="Queue under load (latency in ms, measured window only; cores = CPU s / wall s)"))


def print_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows, out = [], []
    for r in results:
        w = r["workers"]
        if "realistic" in r:
            lat = r["realistic"]["latency_ms"]
            for ep in ("next", "submit"):
                v = lat[ep]["p99"]
                out.append({"target": f"realistic {ep} p99 <= {TARGET_P99_MS:.0f} ms", "workers": w, "value": v,
                            "ratio": round(v / TARGET_P99_MS, 2) if v is not None else None,
                            "met": v is not None and v <= TARGET_P99_MS})
        if "capacity" in r:
            v = r["capacity"]["tasks_submitted_per_s"]
            out.append({"target": f"capacity >= {TARGET_TASKS_PER_S:.0f} tasks/s", "workers": w, "value": v,
                        "ratio": round(v / TARGET_TASKS_PER_S, 2), "met": v >= TARGET_TASKS_PER_S})
        if "realistic" in r:
            v = r["realistic"]["latency_ms"]["next"]["p50"]
            out.append({"target": "next p50 vs Label Studio ~80-100 ms (1 client, 10k tasks)", "workers": w,
                        "value": v, "ratio": round(v / LABEL_STUDIO_NEXT_MS[0], 3) if v else None, "met": None})
    for t in out:
        rows.append([t["target"], t["workers"], fmt(t["value"], 1), fmt(t["ratio"], 2),
                     "-" if t["met"] is None else ("yes" if t["met"] else "NO")])
    print(format_table(["target", "workers", "measured", "ratio to target", "met"], rows, title="Targets"))
    return out


def print_probes(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        for p in r.get("probes", []):
            rows.append([f"{p['endpoint']} (workers={r['workers']})", p["requests_per_s"],
                         fmt(p["latency_ms"]["p50"], 1),
                         fmt(p["latency_ms"]["p99"], 1), fmt(p["server_cpu_us_per_request"], 0),
                         fmt(p["postgres_cpu_us_per_request"], 0), fmt(p["loadgen_cpu_us_per_request"], 0),
                         fmt(p["cpu"]["server_cores"], 2), p["errors"]])
    print(format_table(["probe, 32 clients, no think", "requests/s", "p50 ms", "p99 ms", "server us/req",
                        "postgres us/req", "loadgen us/req", "server cores", "unexpected status"], rows,
                       title="What a request costs before any queue work"))


def print_breakdown(b: dict[str, Any], capacity: dict[str, Any] | None) -> None:
    rows = [[name, fmt(v["wall_ms_p50"], 3), fmt(v["wall_ms_mean"], 3), fmt(v["cpu_ms_mean"], 3)]
            for name, v in b["steps"].items()]
    rows.append(["total per task (next + submit), without the auth lookups", "", fmt(b["wall_ms_per_task"], 3),
                 fmt(b["cpu_ms_per_task"], 3)])
    print(format_table(["step (engine called in this process, no HTTP)", "wall p50 ms", "wall mean ms",
                        "CPU mean ms"], rows, title=f"Where a task's time goes, {b['iterations']} tasks, one thread"))
    if capacity:
        server = capacity["server_cpu_ms_per_task"]
        rest = server - b["cpu_ms_per_task"]
        print(f"  server CPU per task in the capacity phase: {server:.2f} ms; "
              f"engine calls: {b['cpu_ms_per_task']:.2f} ms; "
              f"the rest (HTTP parsing, FastAPI routing, validation, dependencies, thread hand-offs, response): "
              f"{rest:.2f} ms ({rest / server * 100:.0f}%)")


def print_clicks(c: dict[str, Any]) -> None:
    rows = []
    for which, label in (("first", "first click (embedding computed)"), ("later", "later clicks (embedding cached)")):
        d = c[which]
        rows.append([label, d["http_ms"]["n"], fmt(d["http_ms"]["p50"], 1), fmt(d["http_ms"]["p90"], 1),
                     fmt(d["model_ms"]["p50"], 1), fmt(d["model_ms"]["p90"], 1),
                     ", ".join(f"{k[:-3]} {v:.1f}" for k, v in d["model_split_ms_median"].items()),
                     fmt(d["encode_json_ms"]["p50"], 2), fmt(d["outside_model_ms"]["p50"], 1),
                     f"{d['outside_model_share_p50'] * 100:.0f}%" if d["outside_model_share_p50"] is not None else "-"])
    print(format_table(["clicks (tiny SAM 3 tracker)", "n", "HTTP p50", "HTTP p90", "segment() p50", "segment() p90",
                        "segment() split, median ms", "RLE+JSON p50", "outside p50", "outside share"], rows,
                       title="Click to segment, one client, server with 1 worker (ms); outside = HTTP - segment() "
                             "of the same click, paired"))
    rows = []
    for which, label in (("first", "first click"), ("later", "later clicks")):
        o = c[which].get("same_request", {})
        if not o.get("n"):
            rows.append([label, 0, "-", "-", "-", "-", "-", "-", "-", "no Server-Timing from the server"])
            continue
        rows.append([label, o["n"], fmt(o["http_ms_p50"], 2), fmt(o["model_ms_p50"], 2), fmt(o["outside_ms"]["p50"], 2),
                     fmt(o["outside_ms"]["p90"], 2),
                     ", ".join(f"{k} {fmt(v, 2)}" for k, v in o["server_parts_ms_p50"].items()),
                     f"{o['outside_share_p50'] * 100:.0f}%", fmt(o["target_ms"], 2),
                     f"{o['ratio_to_target']:.2f} ({'met' if o['met'] else 'NOT met'})"])
    print(format_table(["same request (Server-Timing)", "n", "HTTP p50", "segment() p50", "outside p50", "outside p90",
                        "server parts p50", "outside share", "target ms", "ratio to target"], rows,
                       title="Outside the model, from the server's timing of the same click (ms); target: outside "
                             f"<= max({CLICK_OVERHEAD_SHARE:.0%} of HTTP, {CLICK_OVERHEAD_FLOOR_MS:g} ms) at p50"))
    print(f"  warm-up image (first is model load + embedding): HTTP {c['http_warmup_ms']} ms, in-process "
          f"{c['local_warmup_ms']} ms; in-process model load {c['local_model_load_s']} s; errors {c['n_errors']}")


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=None, help="open tasks (default 1,000,000; --quick 20,000)")
    parser.add_argument("--clients", type=int, default=32, help="annotators (at most 32)")
    parser.add_argument("--duration", type=float, default=None, help="realistic phase, measured seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=None, help="realistic phase, unmeasured seconds (default 5)")
    parser.add_argument("--capacity-duration", type=float, default=None, help="capacity phase seconds (default 20)")
    parser.add_argument("--capacity-warmup", type=float, default=None, help="capacity warm-up seconds (default 3)")
    parser.add_argument("--think-min", type=float, default=2.0)
    parser.add_argument("--think-max", type=float, default=4.0)
    parser.add_argument("--workers", default="1,2", help="server worker counts, one server each (e.g. 1,2,3)")
    parser.add_argument("--multi-review-rate", type=float, default=0.1)
    parser.add_argument("--clicks", type=int, default=15, help="later clicks per image (7 images)")
    parser.add_argument("--no-clicks", action="store_true", help="skip the click-to-segment benchmark")
    parser.add_argument("--only-clicks", action="store_true",
                        help="only the click-to-segment benchmark (one server, no queue phases, probes or breakdown)")
    parser.add_argument("--probe-duration", type=float, default=None,
                        help="seconds of each framework probe, GET /health and GET /auth/me (default 5)")
    parser.add_argument("--breakdown", type=int, default=None,
                        help="tasks of the in-process cost breakdown (default 300; 0 skips it)")
    parser.add_argument("--quick", action="store_true", help="20,000 tasks, short phases, workers 1,2")
    parser.add_argument("--rebuild-template", action="store_true")
    parser.add_argument("--drop-template", action="store_true", help="drop the template database at the end")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--settle", type=float, default=10.0, help="wait up to this long for an idle machine")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")
    parser.add_argument("--output", default=None, help="results name (default queue_load, --quick queue_load_quick)")
    args = parser.parse_args(argv)

    q = args.quick
    args.tasks = args.tasks or (20_000 if q else 1_000_000)
    args.duration = args.duration or (10.0 if q else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if q else 5.0)
    args.capacity_duration = args.capacity_duration or (5.0 if q else 20.0)
    args.capacity_warmup = args.capacity_warmup if args.capacity_warmup is not None else (1.0 if q else 3.0)
    args.probe_duration = args.probe_duration or (2.0 if q else 5.0)
    args.breakdown = args.breakdown if args.breakdown is not None else (60 if q else 300)
    if q:
        args.clicks = min(args.clicks, 5)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.only_clicks:
        workers, args.no_clicks, args.breakdown = [1], False, 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    import logging

    logging.basicConfig(level=logging.WARNING)
    pg = Pg.from_url(args.pg_url)
    t_start = time.perf_counter()
    template, media, build_info = ensure_template(pg, args.tasks, args.cache_dir, args.rebuild_template)
    images = args.tasks // TASKS_PER_IMAGE
    workload = (f"{images * TASKS_PER_IMAGE:,} open tasks (60% verify_mask, 40% check_exhaustivity) "
                f"on {images:,} images, "
                f"{args.clients} annotators over HTTP/1.1 keep-alive, session cookies + CSRF; realistic: think "
                f"{args.think_min:g}-{args.think_max:g} s, {args.warmup:g} s warm-up + {args.duration:g} s; "
                f"capacity: no "
                f"think, {args.capacity_warmup:g} s + {args.capacity_duration:g} s; multi-review rate "
                f"{args.multi_review_rate:g}, gold rate 0; PostgreSQL {pg.version()} on 127.0.0.1, a fresh copy of "
                f"the template per server; server: dataengine serve --workers N (uvicorn, httptools, uvloop)")
    print("Queue load:", workload, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="de_bench_queue_"))
    results = []
    try:
        for i, w in enumerate(workers):
            results.append(run_config(pg, template, media, w, args, tmp, images,
                                      clicks=not args.no_clicks and i == 0, first=i == 0))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if args.drop_template:
            pg.drop(template)

    print()
    print(f"Workload: {workload}")
    print_results(results)
    print()
    targets = print_targets(results)
    for r in [] if args.only_clicks else results:
        c = r["correctness"]
        print(f"\nCorrectness, workers={r['workers']}: {'OK' if c['ok'] else 'FAILED'}: " + ", ".join(
            f"{k} {v}" for k, v in c.items() if k != "ok"))
        cap = r.get("capacity")
        if cap:
            print(f"Capacity phase per {cap['buckets'][0]['t_s'] if cap['buckets'] else 0:g}+5 s bucket "
                  f"(tasks, next p50/p99, submit p50/p99 ms): " + "; ".join(
                      f"{b['tasks']} {fmt(b['next_p50'], 1)}/{fmt(b['next_p99'], 1)} "
                      f"{fmt(b['submit_p50'], 1)}/{fmt(b['submit_p99'], 1)}" for b in cap["buckets"]))
        for key in ("explain_before", "explain_after"):
            e = r[key]
            print(f"Lease statement {key.split('_')[1]} the phases: median {e['median_ms']:.2f} ms, "
                  f"max {e['max_ms']:.2f} ms, "
                  f"dead tuples {e['human_tasks']['n_dead_tup']}, open-queue index "
                  f"{e['index_bytes'].get('ix_human_tasks_open_queue', 0) / 2**20:.1f} MiB")
    print()
    print_probes(results)
    first = results[0] if results else {}
    if first.get("client_cost"):
        print(f"  load generator CPU per request, GET /api/v1/health, 8 connections: {first['client_cost']}")
    if first.get("breakdown"):
        print()
        print_breakdown(first["breakdown"], first.get("capacity"))
    if first.get("explain_after"):
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the lease statement after the phases (workers="
              f"{first['workers']}):\n{first['explain_after']['plan']}")
    if first.get("clicks"):
        print()
        print_clicks(first["clicks"])
    path = write_json(args.output or ("queue_load_quick" if q else "queue_load"), {
        "benchmark": "queue_load", "workload": workload, "tasks": images * TASKS_PER_IMAGE, "images": images,
        "template": build_info, "targets": targets, "results": results,
        "postgres": {"version": pg.version(), "settings": pg.settings()}, "environment": environment(),
        "argv": sys.argv[1:], "args": {k: str(v) for k, v in vars(args).items()},
        "wall_s": round(time.perf_counter() - t_start, 1), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
