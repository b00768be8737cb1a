"""Time to recover from a fault without a person: from the fault to the job done, per fault and broker.

    python -m bench.recovery [--repeats 1] [-k EXPRESSION] [--settle 20]

Runs the fault-injection suite (tests/faults: real ``dataengine worker`` / ``beat`` / ``mine``
processes on a private PostgreSQL and private Redis and RabbitMQ brokers, a local HTTP server) with
``DATAENGINE_TEST_RECOVERY_LOG`` set; each test appends the seconds from its fault to the job done:

* ``main_process_killed_while_holding_a_batch``: kill -9 of a worker's main process (and its pool)
  while its batch waits on a download; a second worker and the beat healer finish the job;
* ``pool_child_killed_mid_batch``: kill -9 of the pool child; the main process survives, the batch
  comes back and is split; the foreground follow loop heals;
* ``poison_item_fails_alone_after_bounded_crashes``: an item that SIGSEGVs its worker every time,
  from the job's start (the crashes are the fault) until it is failed alone and the job is done;
* ``broker_restart_with_work_queued``: Redis restarted (queued messages lost) / RabbitMQ node
  restarted (durable messages kept) with one batch running and two queued;
* ``database_restart_under_the_foreground_follow_loop``: the private PostgreSQL restarted (fast
  shutdown) mid-job under ``dataengine mine --until caption`` (tiny models), which must not die;
* ``disk_full_items_fail_with_reason_then_complete_once_freed``: from the space being freed to done;
* ``worker_on_another_database_refuses_loudly_and_marks_nothing``: from the correctly configured
  worker being started to done.

The tests shrink the healer's timings (tests/faults/conftest.py ``FAULT_PIPELINE``: heal every 1 s,
stale after 4 s, Redis visibility timeout 6 s, 2 crashes per item); production defaults are 60 s /
600 s / 300 s, so production recovery from a lost message is bounded by ``stale_after_s`` +
``heal_interval_s`` rather than these figures. Medians (min–max) over ``--repeats`` suite runs are
printed and written to bench/results/recovery.json. A measurement, never a pass/fail test (a
failing test is reported, and its fault has no figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench._common import REPO, environment, format_table, median, spread, wait_for_quiet, write_json


def run_suite(expression: str | None) -> tuple[list[dict[str, Any]], int, float, str]:
    """One run of tests/faults: (recorded recoveries, pytest exit status, wall seconds, output tail)."""
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        log = Path(tmp) / "recovery.jsonl"
        env = {**os.environ, "DATAENGINE_TEST_RECOVERY_LOG": str(log), "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
               "--basetemp", str(Path(tmp) / "t")]
        if expression:
            cmd += ["-k", expression]
        began = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - began
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rows, proc.returncode, wall, (proc.stdout + proc.stderr)[-30000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of the whole fault suite")
    parser.add_argument("-k", dest="expression", help="pytest -k expression: only these faults")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="before each run wait up to this many seconds for the shared machine to be idle")
    args = parser.parse_args(argv)

    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    runs = []
    for n in range(args.repeats):
        busy = wait_for_quiet(timeout_s=args.settle)
        rows, status, wall, tail = run_suite(args.expression)
        runs.append({"run": n, "pytest_exit": status, "suite_wall_s": round(wall, 1), "busy_cores_before": busy})
        print(f"run {n + 1}/{args.repeats}: pytest exit {status}, suite {wall:.0f} s, {len(rows)} recoveries")
        if status != 0:
            print(tail, file=sys.stderr)
        for row in rows:
            seconds[(row["fault"], row["broker"])].append(float(row["seconds"]))

    table = []
    results = []
    for (fault, broker), values in sorted(seconds.items()):
        low, high = spread(values)
        mid = median(values)
        table.append([fault, broker, len(values), mid, low, high])
        results.append({"fault": fault, "broker": broker, "n": len(values), "median_s": mid,
                        "min_s": low, "max_s": high, "values_s": values})
    print(format_table(["fault", "broker", "n", "median s", "min s", "max s"], table, left=2,
                       title="time from the fault to the job done, without a person"))
    path = write_json("recovery", {"environment": environment(), "runs": runs, "results": results,
                                   "timings": "tests/faults/conftest.py FAULT_PIPELINE"})
    print(f"written to {path}")
    return 0 if all(r["pytest_exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
