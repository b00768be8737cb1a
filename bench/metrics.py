"""cgF1 / pmF1 / IL_MCC: our evaluator against the official SA-Co evaluator on the same files.

    python -m bench.metrics [--pairs 100000] [--repeats 3] [--settle 20]

Implementations, each run in its own process (so peak RSS is per run), alternating (ours,
official, official, ours, …), on the same two files:

- ``ours``: ``engine.domain.saco_eval.evaluate_files(gt, results)`` — reads the files (orjson),
  matches each pair with pycocotools' ``maskUtils.iou`` and ``linear_sum_assignment`` and
  accumulates with engine/domain/metrics.py (what ``dataengine report`` computes from the
  database, minus the queries);
- ``official``: ``CGF1Evaluator(gt).evaluate(results)`` from Meta's ``sam3/eval/cgf1_eval.py``
  (sam3 0.1.4, loaded by its path from ``.venv/sam3-oracle`` by tests/saco_oracle.py; run
  ``scripts/setup-venv.sh dev`` first): a COCO index and a COCOeval pass per pair.

Workload (seeded, cached under bench/results/metrics-data-<pairs>-v<n>/): SA-Co ground truth of
``--pairs`` (image, phrase) pairs on 640×480 images — 45 % positive with 1–4 instances (16-gon
ellipses, COCO compressed RLE), 50 % negative, 5 % not instance-exhaustive (a crowd mask, or
flagged 0: scored by neither) — and a COCO results file: per instance a jittered copy with
probability 0.8 (score uniform in 0.3–1), a second identical copy on 2 % of them (an exact tie), a
false positive on 30 % of positive and 25 % of negative pairs. Timed: from reading the files to
the three numbers (process start and imports excluded). Both must give the same numbers (1e-6).
Results: bench/results/metrics.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
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
    median,
    run_child,
    spread,
    wait_for_quiet,
    write_json,
)

GEN_VERSION = 1
W, H = 640, 480
IMPLEMENTATIONS = ("ours", "official")


# ============================================================================ data
def _ellipse(cx: float, cy: float, rx: float, ry: float) -> list[float]:
    import math

    poly: list[float] = []
    for k in range(16):
        a = 2 * math.pi * k / 16
        poly += [min(max(cx + rx * math.cos(a), 0.0), W - 1.0), min(max(cy + ry * math.sin(a), 0.0), H - 1.0)]
    return poly


def generate(folder: Path, pairs: int, seed: int = 0) -> dict[str, Any]:
    """Write ``ground_truth.json`` and ``predictions.json`` into ``folder`` (see the module doc)."""
    import numpy as np
    import orjson
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)

    def rle(poly: list[float]) -> dict[str, Any]:
        r = mask_utils.frPyObjects([poly], H, W)[0]
        return {"size": [H, W], "counts": r["counts"].decode("ascii"), "area": int(mask_utils.area(r))}

    def result(pair_id: int, seg: dict[str, Any]) -> dict[str, Any]:
        return {"image_id": pair_id, "category_id": 1, "score": float(rng.uniform(0.3, 1.0)),
                "segmentation": {"size": seg["size"], "counts": seg["counts"]}}

    def shape() -> tuple[float, float, float, float]:
        rx, ry = rng.uniform(15, 90), rng.uniform(15, 90)
        return rng.uniform(rx, W - rx), rng.uniform(ry, H - ry), rx, ry

    images, annotations, results = [], [], []
    counts = {"positive": 0, "negative": 0, "not_exhaustive": 0, "gt_masks": 0, "predictions": 0, "ties": 0}
    ann_id = 0
    for pair_id in range(1, pairs + 1):
        u = rng.random()
        kind = "positive" if u < 0.45 else "negative" if u < 0.95 else "not_exhaustive"
        counts[kind] += 1
        exhaustive = 1
        if kind == "negative":
            if rng.random() < 0.25:
                results.append(result(pair_id, rle(_ellipse(*shape()))))
        else:
            crowd_pair = kind == "not_exhaustive" and rng.random() < 0.5
            exhaustive = 0 if kind == "not_exhaustive" else 1
            for i in range(int(rng.integers(1, 5))):
                cx, cy, rx, ry = shape()
                ann_id += 1
                seg = rle(_ellipse(cx, cy, rx, ry))
                annotations.append({"id": ann_id, "image_id": pair_id, "category_id": 1,
                                    "segmentation": {"size": seg["size"], "counts": seg["counts"]},
                                    "area": seg["area"] / (W * H), "bbox": [rx / W, ry / H, rx / W, ry / H],
                                    "iscrowd": 1 if crowd_pair and i == 0 else 0})
                if rng.random() < 0.8:
                    jitter = _ellipse(cx + rng.uniform(-0.15, 0.15) * rx, cy + rng.uniform(-0.15, 0.15) * ry,
                                      rx * rng.uniform(0.85, 1.15), ry * rng.uniform(0.85, 1.15))
                    copies = 2 if rng.random() < 0.02 else 1
                    counts["ties"] += copies - 1
                    seg = rle(jitter)
                    for _ in range(copies):
                        results.append(result(pair_id, seg))
            if rng.random() < 0.3:
                results.append(result(pair_id, rle(_ellipse(*shape()))))
        images.append({"id": pair_id, "file_name": f"{pair_id}.jpg", "height": H, "width": W,
                       "text_input": "thing", "queried_category": "1", "is_instance_exhaustive": exhaustive,
                       "is_pixel_exhaustive": exhaustive})
    counts["gt_masks"], counts["predictions"] = len(annotations), len(results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ground_truth.json").write_bytes(orjson.dumps({
        "info": {"description": "bench.metrics workload"}, "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}]}))
    (folder / "predictions.json").write_bytes(orjson.dumps(results))
    (folder / "workload.json").write_text(json.dumps(counts))
    return counts


def ensure_data(pairs: int) -> tuple[Path, dict[str, Any]]:
    folder = RESULTS_DIR / f"metrics-data-{pairs}-v{GEN_VERSION}"
    if (folder / "workload.json").is_file():
        return folder, json.loads((folder / "workload.json").read_text())
    t0 = time.perf_counter()
    counts = generate(folder, pairs)
    print(f"generated {pairs:,} pairs in {time.perf_counter() - t0:.1f} s: {counts}", flush=True)
    return folder, counts


# ============================================================================ runs
def run_ours(gt: Path, results: Path) -> dict[str, Any]:
    from engine.domain.saco_eval import evaluate_files

    t0 = time.perf_counter()
    q = evaluate_files(gt, results)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs": q.pairs, "cgF1": q.cg_f1, "pmF1": q.pm_f1, "IL_MCC": q.il_mcc}


def run_official(gt: Path, results: Path) -> dict[str, Any]:
    from tests.saco_oracle import KEYS, official_module

    module = official_module()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = module.CGF1Evaluator(str(gt))
        out = evaluator.evaluate(str(results))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs": len(evaluator.eval_img_ids),
            **{name: float(out[key]) for name, key in KEYS.items()}}


def child_main(spec: dict[str, Any]) -> None:
    fn = run_ours if spec["run"] == "ours" else run_official
    result = fn(Path(spec["gt"]), Path(spec["results"]))
    result["peak_rss_mb"] = hwm_mb("self")
    child_result(result)


def measure(run: str, folder: Path) -> dict[str, Any]:
    spec = {"run": run, "gt": str(folder / "ground_truth.json"), "results": str(folder / "predictions.json")}
    return run_child("bench.metrics", spec, run)


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = child_parser("bench.metrics", __doc__)
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs in the ground truth (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each implementation (default 3)")
    args = parser.parse_args(argv)
    if args._child:
        child_main(json.loads(args._child))
        return 0
    folder, workload = ensure_data(args.pairs)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        order = IMPLEMENTATIONS if repeat % 2 == 0 else IMPLEMENTATIONS[::-1]
        for run in order:
            busy = wait_for_quiet(timeout_s=args.settle) if args.settle else None
            r = measure(run, folder)
            r.update(run=run, repeat=repeat, busy_cores_before=busy)
            runs.append(r)
            print(f"  {run}: {r['seconds']:.2f} s, {r['peak_rss_mb']:.0f} MB peak RSS, cgF1 {r['cgF1']:.6f}",
                  flush=True)
    summary = report(runs, args.pairs, workload)
    path = write_json("metrics", {"environment": environment(), "pairs": args.pairs, "workload": workload,
                                  "summary": summary, "runs": runs})
    print(f"\nwritten {path.relative_to(RESULTS_DIR.parent.parent)}")
    return 0


def report(runs: list[dict[str, Any]], pairs: int, workload: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for run in IMPLEMENTATIONS:
        mine = [r for r in runs if r["run"] == run]
        lo, hi = spread(r["seconds"] for r in mine)
        summary[run] = {"median_s": median(r["seconds"] for r in mine), "min_s": lo, "max_s": hi,
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in mine), "scored_pairs": mine[0]["pairs"],
                        "cgF1": mine[0]["cgF1"], "pmF1": mine[0]["pmF1"], "IL_MCC": mine[0]["IL_MCC"]}
    ours, official = summary["ours"], summary["official"]
    summary["same_numbers"] = all(abs(ours[k] - official[k]) <= 1e-6 for k in ("cgF1", "pmF1", "IL_MCC"))
    summary["speedup"] = official["median_s"] / ours["median_s"]
    rows = [[run, s["scored_pairs"], f"{s['median_s']:.2f}", f"{s['min_s']:.2f}–{s['max_s']:.2f}",
             round(s["scored_pairs"] / s["median_s"]), round(s["peak_rss_mb"]), f"{s['cgF1']:.6f}",
             f"{s['pmF1']:.6f}", f"{s['IL_MCC']:.6f}"] for run, s in ((r, summary[r]) for r in IMPLEMENTATIONS)]
    rows.append(["official / ours", "", f"{summary['speedup']:.1f}x", "", "",
                 f"{official['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x", "", "", ""])
    print()
    print(format_table(["evaluator", "scored pairs", "median s", "min–max s", "pairs/s", "peak RSS MB", "cgF1",
                        "pmF1", "IL_MCC"], rows,
                       title=f"cgF1 on {pairs:,} SA-Co pairs ({workload['gt_masks']:,} gt masks, "
                             f"{workload['predictions']:,} predictions); same numbers: {summary['same_numbers']}"))
    return summary


if __name__ == "__main__":
    sys.exit(main())
