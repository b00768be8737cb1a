"""Label Studio bridge throughput: push and pull of 2,000 tasks with one mask each against a real
Label Studio 1.23.2 (SQLite, started by tests/labelstudio_server.py exactly as the tests start it).

    python -m bench.labelstudio [--tasks 2000] [--db postgresql|sqlite] [--size 640x480]

Data. A fresh migrated database (PostgreSQL by default), ``tasks / 10`` stored PNG images of
``--size`` with 10 phrases each, one candidate mask per pair (an ellipse, a few hundred rows tall
at 640x480, as a proposer's mask) and one open verify_mask task per mask.

Phases, side by side in one run:

* convert: read the tasks and encode their masks as Label Studio brush RLE (no leases, no HTTP);
* LS import only: Label Studio's bulk import of exactly those payloads into a second project, in
  batches of ``--batch-size`` (the floor Label Studio itself sets);
* push: ``annotators.label_studio.push`` (lease to the bridge, convert, import, record links, commit);
* annotate: annotations made through Label Studio's API (``--threads`` at once), each the prediction's
  brush region plus a choice, as the editor sends them (Label Studio's side; not ours);
* LS listing only: the annotated-only paged listing the pull reads, without storing anything;
* pull: ``annotators.label_studio.pull`` storing 2,000 verdicts (decodes every brush region);
* pull again: nothing new; every annotation is recognised as stored.

Results: bench/results/labelstudio.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import BenchDatabases, environment, format_table, wait_for_quiet, write_json

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
SIGNING = "bench-signing-secret-0123456789abcdef"


def seed(db_url: str, media: Path, tasks: int, size: tuple[int, int]) -> list[int]:
    """Images with 10 phrases each, one ellipse mask per pair, one open verify_mask task per mask."""
    from engine.db.models import HumanTask
    from engine.db.session import session_scope
    from engine.domain.masks import encode_mask
    from engine.domain.vocabulary import ModelKind, TaskKind, TaskState
    from engine.repositories.labels import add_mask
    from engine.repositories.model_versions import get_or_create
    from tests.factories import seed_review_items

    phrases = tuple(f"thing {i}" for i in range(10))
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    ids = []
    with session_scope(db_url) as s:
        made = seed_review_items(s, media, n_images=(tasks + 9) // 10, phrases=phrases, size=size, masks_per_pair=0,
                                 kinds=())
        proposer = get_or_create(s, ModelKind.PROPOSER, "bench-proposer", "1")
        rng = np.random.default_rng(0)
        for pair_id in made["pairs"][:tasks]:
            cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
            rx, ry = rng.uniform(0.1, 0.25) * width, rng.uniform(0.15, 0.3) * height
            grid = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            mask = add_mask(s, pair_id, proposer.id, encode_mask(grid), score=float(rng.uniform(0.3, 0.9)))
            s.flush()
            task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair_id, mask_id=mask.id, state=TaskState.OPEN,
                             priority=0, reason="bench")
            s.add(task)
            s.flush()
            ids.append(task.id)
    return ids


def convert_only(db_url: str, task_ids: list[int], public_url: str) -> tuple[list[dict[str, Any]], float]:
    from engine.db.session import session_scope
    from engine.services import labelstudio as bridge

    started = time.perf_counter()
    with session_scope(db_url) as s:
        items = bridge.describe_outgoing(s, task_ids)
    payloads = [bridge.ls_task(item, public_url, SIGNING, int(time.time()) + 3600) for item in items]
    return payloads, time.perf_counter() - started


def annotate_all(client: Any, project_id: int, threads: int) -> tuple[int, float]:
    listing = list(client.annotated_tasks(project_id, 500, annotated=False))

    def one(task: dict[str, Any]) -> None:
        label = "accept" if task["id"] % 3 else "reject"
        result = [*task["predictions"][0]["result"],
                  {"type": "choices", "from_name": "verdict", "to_name": "image", "value": {"choices": [label]}}]
        client.sdk.annotations.create(id=task["id"], result=result, lead_time=2.5)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, listing))
    return len(listing), time.perf_counter() - started


def run(args: argparse.Namespace, db_url: str, media: Path, ls: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from annotators.label_studio import LabelStudioClient, pull, push
    from engine.db.models import Verdict
    from engine.db.session import session_scope
    from engine.domain.vocabulary import TaskKind
    from engine.settings import FetchSettings, LabelStudioSettings, Settings

    # the bench's Label Studio runs on 127.0.0.1: the outbound-fetch policy must allow it
    fetch = FetchSettings(allow_networks=["127.0.0.0/8"], allow_ports=["1-65535"])
    settings = Settings(database_url=db_url, media_root=media, data_dir=media.parent, fetch=fetch,
                        labelstudio=LabelStudioSettings(url=ls.url, token=ls.token, signing_secret=SIGNING,
                                                        batch_size=args.batch_size, page_size=args.page_size))
    settings.queue.multi_review_rate = 0.0
    client = LabelStudioClient(ls.url, ls.token, fetch=fetch)
    started = time.perf_counter()
    task_ids = seed(db_url, media, args.tasks, args.size)
    seeded = time.perf_counter() - started
    print(f"  seeded {len(task_ids)} tasks in {seeded:.1f} s", flush=True)
    rows: dict[str, dict[str, Any]] = {}

    wait_for_quiet()
    payloads, seconds = convert_only(db_url, task_ids, settings.labelstudio.public_url)
    rows["convert (DB read + brush encode)"] = {"tasks": len(payloads), "seconds": seconds}
    rle_bytes = sum(len(p["predictions"][0]["result"][0]["value"]["rle"]) for p in payloads)

    wait_for_quiet()
    raw_project, _ = client.project_for(f"bench-raw-{uuid.uuid4().hex[:8]}", TaskKind.VERIFY_MASK)
    started = time.perf_counter()
    for i in range(0, len(payloads), args.batch_size):
        client.import_tasks(raw_project, payloads[i:i + args.batch_size])
    rows["LS import only (same payloads)"] = {"tasks": len(payloads), "seconds": time.perf_counter() - started}
    print("  LS import only done", flush=True)

    wait_for_quiet()
    report = push(settings, client, TaskKind.VERIFY_MASK, project=f"bench-{uuid.uuid4().hex[:8]}")
    rows["push (lease + convert + import + links)"] = {"tasks": report.pushed, "seconds": report.seconds}
    print(f"  pushed {report.pushed} in {report.seconds:.1f} s", flush=True)

    annotated, seconds = annotate_all(client, report.project_id, args.threads)
    rows[f"annotate via LS API ({args.threads} threads; LS side)"] = {"tasks": annotated, "seconds": seconds}
    print(f"  annotated {annotated} in {seconds:.1f} s", flush=True)

    wait_for_quiet()
    started = time.perf_counter()
    listed = sum(1 for _ in client.annotated_tasks(report.project_id, args.page_size))
    rows["LS annotated listing only (paged)"] = {"tasks": listed, "seconds": time.perf_counter() - started}

    wait_for_quiet()
    first = pull(settings, client)
    rows["pull (decode + store verdicts)"] = {"tasks": first.tasks, "seconds": first.seconds,
                                              "stored": first.report.count("stored"),
                                              "failed": len(first.report.failures)}
    wait_for_quiet()
    again = pull(settings, client)
    rows["pull again (nothing new)"] = {"tasks": again.tasks, "seconds": again.seconds,
                                        "stored": again.report.count("stored"),
                                        "unchanged": again.report.count("unchanged")}
    with session_scope(db_url) as s:
        verdicts = s.scalar(select(func.count()).select_from(Verdict))
    for row in rows.values():
        row["tasks_per_s"] = row["tasks"] / row["seconds"] if row["seconds"] else None
    return {"rows": rows, "verdicts": verdicts, "rle_bytes_per_mask": rle_bytes / max(len(payloads), 1),
            "seed_seconds": seeded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.labelstudio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--size", default="640x480", help="image size WxH")
    parser.add_argument("--batch-size", type=int, default=500, help="tasks per import request")
    parser.add_argument("--page-size", type=int, default=200, help="tasks per page when pulling")
    parser.add_argument("--threads", type=int, default=4, help="annotation-creating threads")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--output", default="labelstudio")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    args.size = (width, height)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tests import labelstudio_server

    started = time.perf_counter()
    ls = labelstudio_server.start()
    ls_start = time.perf_counter() - started
    print(f"Label Studio {labelstudio_server.VERSION} at {ls.url} (ready in {ls_start:.1f} s)", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ls-") as tmp:
            media = Path(tmp) / "media"
            if args.db == "sqlite":
                import migrations

                db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                migrations.upgrade(db_url)
                result = run(args, db_url, media, ls)
            else:
                dbs = BenchDatabases(args.pg_url, Path(tmp))
                with dbs.database() as db_url:
                    result = run(args, db_url, media, ls)
    finally:
        labelstudio_server.stop(ls)

    rows = result["rows"]
    base_push = rows["LS import only (same payloads)"]["tasks_per_s"]
    base_pull = rows["LS annotated listing only (paged)"]["tasks_per_s"]
    table = []
    for name, row in rows.items():
        base = base_push if "push" in name or "import" in name or "convert" in name else base_pull
        ratio = row["tasks_per_s"] / base if base and ("push" in name or "pull" in name) else None
        table.append([name, row["tasks"], row["seconds"], row["tasks_per_s"], ratio])
    print()
    print(format_table(["phase", "tasks", "seconds", "tasks/s", "× LS alone"], table,
                       title=f"Label Studio bridge, {args.tasks} tasks with one mask each, {width}x{height}, "
                             f"database {args.db}, batch {args.batch_size}, page {args.page_size}"))
    print(f"\nverdicts stored: {result['verdicts']}; brush RLE per mask: {result['rle_bytes_per_mask']:.0f} bytes; "
          f"Label Studio start from the template: {ls_start:.1f} s")
    path = write_json(args.output, {"args": {**vars(args), "size": f"{width}x{height}"}, "environment": environment(),
                                    "label_studio": labelstudio_server.VERSION, "ls_start_s": ls_start, **result})
    print(f"wrote {path}")
    return 0 if result["verdicts"] == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
