"""Similarity search at scale: the product's USearch index (``engine.index.SimilarityIndex``: cosine, HNSW,
f32) against exact brute-force numpy search, at 1,000,000 vectors by default.

    python -m bench.similarity_search [--n 1000000] [--dim 256] [--quick] [--queries 1000] [--k 10]

Workload (seeded): ``--n`` unit vectors of ``--dim`` dimensions (default 256: the width of SAM 3's pooled
FPN features, ``annotators.image_embedder.pool_vision_features``), keys 1..n as image ids, added in chunks of
100,000 through ``SimilarityIndex.add`` (what ``dataengine similar index`` does), then saved with
``SimilarityIndex.save``. ``--data random`` (default): independent random unit vectors — no neighbourhood
structure at all (every pair nearly orthogonal), the hardest case for HNSW, so its recall is a lower bound;
``--data clustered``: points around ``--clusters`` random centres (cosine ≈ 0.7 to their centre), closer to
what image embeddings look like. Queries: ``--queries`` new vectors drawn the same way, one
``SimilarityIndex.search(q, k)`` call each (the similar-images endpoint asks one at a time).

Reported, side by side:

* build: seconds and vectors/s (USearch adds with every core the process may use);
* query latency p50/p90/p99 (ms) of the index against exact search (one ``vectors @ q`` plus an
  ``argpartition`` over all n, the baseline a product without an index would run) on ``--exact-queries``
  of the same queries, and their ratio;
* recall@k of the index against the exact top-k on those queries, at USearch's default search breadth
  (``expansion_search`` 64, what ``SimilarityIndex`` uses) and at the wider ones of ``--expansions``
  (set on the index for the measurement only: what a wider search would cost);
* memory: the index file's size, USearch's own ``memory_usage`` and the RSS the index adds to a fresh
  process that loads it (``SimilarityIndex(path, dim)``; a child process, so the bench's own copy of the
  vectors is not counted), next to the raw f32 vectors' size (n × dim × 4 bytes).

A measurement, never pass/fail. Results: bench/results/similarity_search[_N].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench._common import REPO, environment, fmt, format_table, hwm_mb, proc_status_kb, write_json

CHUNK = 100_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.similarity_search",
                                     description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--n", type=int, default=None, help="vectors in the index (default 1,000,000; --quick 100,000)")
    add("--quick", action="store_true", help="100,000 vectors")
    add("--dim", type=int, default=256, help="dimensions (default 256: SAM 3's pooled FPN width)")
    add("--queries", type=int, default=1000, help="index queries timed (default 1,000)")
    add("--exact-queries", type=int, default=200,
        help="of those, how many also run exact numpy search (its latency and the recall ground truth; default 200)")
    add("--k", type=int, default=10, help="neighbours per query (default 10)")
    add("--data", choices=("random", "clustered"), default="random",
        help="random unit vectors (default; no structure: recall's lower bound) or points around --clusters centres")
    add("--clusters", type=int, default=1000, help="centres of --data clustered (default 1,000)")
    add("--expansions", default="64,128,256",
        help="USearch expansion_search values measured (default 64,128,256; 64 is the default SimilarityIndex uses)")
    add("--expansion-add", type=int, default=None,
        help="USearch expansion_add while building (default: USearch's 128, what SimilarityIndex uses); lower builds "
             "faster with a coarser graph (same memory) — for a box too small to build the product's graph in time")
    add("--seed", type=int, default=0)
    add("--keep", default=None, help="keep the built index file at this path (default: a temporary file)")
    add("--out", default=None, help="name of the JSON under bench/results (default similarity_search[_N])")
    add("--_load_child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def unit_vectors(rng: np.random.Generator, n: int, dim: int,
                 centres: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """``n`` unit vectors, built chunk by chunk (no float64 copy of the whole set): random directions, or
    with ``centres`` a random centre each plus noise of the same norm (cosine ≈ 0.7 to the centre)."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        block = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
        if centres is not None:
            block /= np.float32(np.sqrt(dim))
            block += centres[rng.integers(0, len(centres), len(block))]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = block
    return out


def rss_mb() -> float:
    kb = proc_status_kb(os.getpid(), "VmRSS")
    return kb / 1024 if kb is not None else 0.0


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def exact_top_k(vectors: NDArray[np.float32], query: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Row indices of the k most similar vectors (unit vectors: the dot product is the cosine), best first."""
    scores = vectors @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def build(index: Any, vectors: NDArray[np.float32]) -> dict[str, Any]:
    """Add every vector through ``SimilarityIndex.add`` in chunks; timings and the RSS it added."""
    before = rss_mb()
    started = time.perf_counter()
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start:start + CHUNK]
        index.add(list(range(start + 1, start + 1 + len(block))), block)
        print(f"    {start + len(block):,} added ({time.perf_counter() - started:.0f} s)", flush=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "vectors_per_s": len(vectors) / seconds, "rss_added_mb": rss_mb() - before}


def time_index(index: Any, queries: NDArray[np.float32], k: int, expansion: int) -> tuple[list[float], list[list[int]]]:
    index._index.expansion_search = expansion  # the USearch Index behind SimilarityIndex (this run only)
    for q in queries[:10]:  # warm-up: page in the graph's upper levels
        index.search(q, k)
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        hits = index.search(q, k)
        times.append(time.perf_counter() - started)
        found.append([h.image_id for h in hits])
    return times, found


def time_exact(vectors: NDArray[np.float32], queries: NDArray[np.float32],
               k: int) -> tuple[list[float], list[list[int]]]:
    exact_top_k(vectors, queries[0], k)  # warm-up
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        top = exact_top_k(vectors, q, k)
        times.append(time.perf_counter() - started)
        found.append([int(i) + 1 for i in top])  # keys are row + 1
    return times, found


def load_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: the RSS that loading the saved index adds, and USearch's own figure."""
    import usearch.index  # noqa: F401 - the library's own footprint is not the index's

    from engine.index import SimilarityIndex

    before = rss_mb()
    started = time.perf_counter()
    index = SimilarityIndex(Path(spec["path"]), spec["dim"])
    load_s = time.perf_counter() - started
    return {"load_s": load_s, "rss_added_mb": rss_mb() - before, "size": len(index),
            "memory_usage_mb": _memory_usage_mb(index), "peak_rss_mb": hwm_mb()}


def _memory_usage_mb(index: Any) -> float | None:
    usage = getattr(index._index, "memory_usage", None)  # the USearch Index behind SimilarityIndex
    return usage / 2**20 if isinstance(usage, int) else None


def measure_load(path: Path, dim: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.similarity_search", "--_load_child",
                           json.dumps({"path": str(path), "dim": dim})], capture_output=True, text=True, cwd=REPO,
                          check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.index import SimilarityIndex

    n = args.n or (100_000 if args.quick else 1_000_000)
    rng = np.random.default_rng(args.seed)
    print(f"Similarity search: {n:,} {args.data} unit vectors of {args.dim} dimensions, k={args.k}, "
          f"{args.queries:,} queries ({args.exact_queries} also exact), {os.cpu_count()} cores", flush=True)
    centres = unit_vectors(rng, args.clusters, args.dim) if args.data == "clustered" else None
    vectors = unit_vectors(rng, n, args.dim, centres)
    queries = unit_vectors(rng, args.queries, args.dim, centres)
    expansions = [int(e) for e in args.expansions.split(",") if e.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_similarity_") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "index.usearch"
        index = SimilarityIndex(path, args.dim)
        if args.expansion_add:
            index._index.expansion_add = args.expansion_add  # the USearch Index behind it (this build only)
        expansion_add, connectivity = int(index._index.expansion_add), int(index._index.connectivity)
        print(f"  building the index (connectivity {connectivity}, expansion_add {expansion_add}) ...",
              flush=True)
        built = build(index, vectors)
        started = time.perf_counter()
        index.save()
        built["save_s"] = time.perf_counter() - started
        built["file_mb"] = path.stat().st_size / 2**20
        built["memory_usage_mb"] = _memory_usage_mb(index)
        searched = {}
        for expansion in expansions:
            print(f"  querying the index (expansion_search {expansion}) ...", flush=True)
            searched[expansion] = time_index(index, queries, args.k, expansion)
        del index
        print("  exact search ...", flush=True)
        exact_times, exact_found = time_exact(vectors, queries[:args.exact_queries], args.k)
        print("  loading the saved index in a fresh process ...", flush=True)
        loaded = measure_load(path, args.dim)
    exact_lat = percentiles(exact_times)
    index_runs = []
    for expansion, (times, found) in searched.items():
        lat = percentiles(times)
        recall = float(np.mean([len(set(a) & set(b)) / args.k
                                for a, b in zip(found[:len(exact_found)], exact_found, strict=True)]))
        index_runs.append({"expansion_search": expansion, **lat, "recall_at_k": recall,
                           "p99_ratio_exact_over_index": exact_lat["p99_ms"] / lat["p99_ms"],
                           "p50_ratio_exact_over_index": exact_lat["p50_ms"] / lat["p50_ms"]})
    return {"benchmark": "similarity_search", "n": n, "dim": args.dim, "k": args.k, "data": args.data,
            "clusters": args.clusters if args.data == "clustered" else None, "queries": args.queries,
            "exact_queries": len(exact_found), "seed": args.seed, "vectors_mb": vectors.nbytes / 2**20,
            "connectivity": connectivity, "expansion_add": expansion_add, "build": built, "index": index_runs,
            "exact": exact_lat, "loaded": loaded, "peak_rss_mb": hwm_mb()}


def print_tables(r: dict[str, Any]) -> None:
    ex = r["exact"]
    rows = [[f"USearch HNSW, expansion_search {i['expansion_search']}"
             + (" (SimilarityIndex)" if i["expansion_search"] == 64 else ""), r["queries"], fmt(i["p50_ms"], 3),
             fmt(i["p90_ms"], 3), fmt(i["p99_ms"], 3), fmt(i["recall_at_k"], 3),
             f"{i['p99_ratio_exact_over_index']:.1f}x"] for i in r["index"]]
    rows.append(["exact numpy (vectors @ q, argpartition)", r["exact_queries"], fmt(ex["p50_ms"], 3),
                 fmt(ex["p90_ms"], 3), fmt(ex["p99_ms"], 3), "1.000", "1.0x"])
    print(format_table(["search", "queries", "p50 ms", "p90 ms", "p99 ms", f"recall@{r['k']}", "exact p99 / p99"],
                       rows, title=f"\nQuery latency at {r['n']:,} {r['data']} vectors × {r['dim']} (k={r['k']}, "
                                   f"one query per call; graph built with connectivity {r['connectivity']}, "
                                   f"expansion_add {r['expansion_add']})"))
    b, ld = r["build"], r["loaded"]
    rows = [["raw f32 vectors (n × dim × 4)", fmt(r["vectors_mb"], 0)],
            ["index file (SimilarityIndex.save)", fmt(b["file_mb"], 0)],
            ["USearch memory_usage (after build)", fmt(b["memory_usage_mb"], 0)],
            ["RSS added by building (this process)", fmt(b["rss_added_mb"], 0)],
            ["USearch memory_usage (loaded, fresh process)", fmt(ld.get("memory_usage_mb"), 0)],
            ["RSS added by loading (fresh process)", fmt(ld.get("rss_added_mb"), 0)]]
    print(format_table(["memory", "MiB"], rows, title="\nIndex memory"))
    print(f"build: {b['seconds']:.1f} s ({b['vectors_per_s']:,.0f} vectors/s on {os.cpu_count()} cores), "
          f"save {b['save_s']:.1f} s, load {fmt(ld.get('load_s'), 2)} s; bench peak RSS {fmt(r['peak_rss_mb'], 0)} MiB")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._load_child:
        print(json.dumps(load_child(json.loads(args._load_child))))
        return 0
    started = time.monotonic()
    result = run(args)
    print_tables(result)
    result.update({"environment": environment(), "argv": sys.argv[1:],
                   "elapsed_s": round(time.monotonic() - started, 1),
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    import usearch

    result["environment"]["usearch"] = usearch.__version__
    name = args.out or "_".join(["similarity_search"] + ([] if result["n"] == 1_000_000 else [str(result["n"])])
                                + ([] if args.data == "random" else [args.data])
                                + ([f"ea{args.expansion_add}"] if args.expansion_add else []))
    print(f"wrote {write_json(name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
