"""Failures found per human hour: random review order vs failure-mined order (a simulation, numpy only).

    python -m bench.failure_mining_sim [--pool 20000] [--dim 32] [--clusters 50] [--noise 0.15]
                                       [--hard-share 0.1]
                                       [--base-rate 0.02] [--hard-rate 0.4] [--budget 2000] [--round 100]
                                       [--explore 0.2] [--explores 0,0.1,0.2,0.5] [--draws 5] [--seed N]

Workload (seeded): ``--pool`` images with latent embeddings: ``--clusters`` random unit centres in
``--dim`` dimensions, each image its centre plus Gaussian noise (``--noise`` σ per axis; at the default
0.15 two images of one cluster have cosine ≈ 0.6, of two clusters ≈ 0; at 0.35 the noise's norm
outweighs the centre and clusters blur: cosine ≈ 0.2 within), L2-normalised like engine ImageEmbedding vectors. A
share ``--hard-share`` of the clusters are hard: the model fails there on an image with probability
``--hard-rate``, elsewhere with ``--base-rate``. The failure is latent: only a human review reveals it.

Two review orders, each for ``--budget`` reviews:

* A, random: the pool in a seeded random order;
* B, failure-mined: rounds of ``--round`` items; the first round random; afterwards a share
  ``1 − explore`` of each round is the unreviewed images nearest to the failures found so far (score =
  max cosine similarity to any found failure: exact nearest neighbour, refreshed after every round)
  and ``explore`` of it random unreviewed images (exploration, so clusters not yet hit get found).

Cost: every review is one human task at 30 s — SAM 3 paper Table 15 (arXiv 2511.16719,
Wiki-Food&Drink, as quoted in /work/shared/design/SAM3_DATA_ENGINE.md): 30 s per negative NP in the
all-human engine, one exhaustivity look at an image, the cheapest whole-image human task; the same
30 s bench.annotation_efficiency charges for check_exhaustivity. The per-review cost cancels in the
ratio; it sets only the per-hour figures.

Reported per order: failures found, failures per human hour, hard clusters hit; the ratio B / A;
``--draws`` workload draws (seeds) for the mean and range; a sweep of the exploration share. A
measurement, never pass/fail. Results: bench/results/failure_mining_sim.json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench._common import environment, format_table, write_json

SEED = 20251205
REVIEW_SECONDS = 30.0  # SAM 3 Table 15: negative NP, engine all-human (one exhaustivity look)


@dataclass
class Pool:
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    cluster: np.ndarray  # (n,) latent cluster id
    hard: np.ndarray  # (clusters,) bool: the model fails more there
    fails: np.ndarray  # (n,) bool: the model fails on this image (revealed by a review)


def make_pool(args: argparse.Namespace, seed: int) -> Pool:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(args.clusters, args.dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, args.clusters, size=args.pool)
    vectors = centres[cluster] + rng.normal(scale=args.noise, size=(args.pool, args.dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hard = np.zeros(args.clusters, dtype=bool)
    hard[rng.choice(args.clusters, size=max(1, round(args.hard_share * args.clusters)), replace=False)] = True
    rate = np.where(hard[cluster], args.hard_rate, args.base_rate)
    fails = rng.random(args.pool) < rate
    return Pool(vectors.astype(np.float32), cluster, hard, fails)


def random_order(pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(pool.fails.size)[:budget]


def mined_order(pool: Pool, budget: int, round_size: int, explore: float, rng: np.random.Generator) -> np.ndarray:
    """Rounds: nearest neighbours of the failures found so far, plus a random exploration share."""
    n = pool.fails.size
    reviewed = np.zeros(n, dtype=bool)
    best = np.full(n, -np.inf, dtype=np.float32)  # max cosine similarity to any failure found so far
    order: list[np.ndarray] = []
    while sum(o.size for o in order) < budget:
        size = min(round_size, budget - sum(o.size for o in order))
        n_near = 0 if not np.isfinite(best).any() else size - int(round(explore * size))
        near: np.ndarray = np.empty(0, dtype=int)
        if n_near:
            score = np.where(reviewed, -np.inf, best)
            near = np.argsort(-score, kind="stable")[:n_near]
            reviewed[near] = True
        free = np.flatnonzero(~reviewed)
        far = rng.choice(free, size=size - near.size, replace=False)
        reviewed[far] = True
        picked = np.concatenate([near, far])
        order.append(picked)
        found = picked[pool.fails[picked]]
        if found.size:
            best = np.maximum(best, (pool.vectors @ pool.vectors[found].T).max(axis=1))
    return np.concatenate(order)


def summarise(pool: Pool, order: np.ndarray) -> dict[str, Any]:
    found = int(pool.fails[order].sum())
    hours = order.size * REVIEW_SECONDS / 3600.0
    hard_hit = np.unique(pool.cluster[order[pool.fails[order]]])
    return {"reviews": int(order.size), "failures": found, "hours": hours, "per_hour": found / hours,
            "hard_clusters_hit": int(pool.hard[hard_hit].sum()), "hard_clusters": int(pool.hard.sum()),
            "clusters_with_failure_hit": int(hard_hit.size)}


def one_draw(args: argparse.Namespace, seed: int, explore: float) -> dict[str, Any]:
    pool = make_pool(args, seed)
    a = summarise(pool, random_order(pool, args.budget, np.random.default_rng([seed, 1])))
    b = summarise(pool, mined_order(pool, args.budget, args.round, explore, np.random.default_rng([seed, 2])))
    return {"seed": seed, "explore": explore, "pool_failures": int(pool.fails.sum()),
            "random": a, "mined": b, "ratio": b["per_hour"] / a["per_hour"] if a["per_hour"] else float("inf")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--hard-share", type=float, default=0.1)
    ap.add_argument("--base-rate", type=float, default=0.02)
    ap.add_argument("--hard-rate", type=float, default=0.4)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--round", type=int, default=100)
    ap.add_argument("--explore", type=float, default=0.2)
    ap.add_argument("--explores", default="0,0.1,0.2,0.5")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=SEED)
    return ap.parse_args(argv)


def row(label: str, d: dict[str, Any]) -> list[str]:
    a, b = d["random"], d["mined"]
    return [label, f"{a['failures']}", f"{a['per_hour']:.1f}", f"{b['failures']}", f"{b['per_hour']:.1f}",
            f"{d['ratio']:.2f}x", f"{a['hard_clusters_hit']}/{a['hard_clusters']}",
            f"{b['hard_clusters_hit']}/{b['hard_clusters']}"]


HEADERS = ["draw", "A failures", "A per h", "B failures", "B per h", "B / A", "A hard hit", "B hard hit"]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seeds = [args.seed + k for k in range(args.draws)]
    print(f"Failure mining: pool {args.pool} images, {args.clusters} clusters ({args.hard_share:.0%} hard: fail rate "
          f"{args.hard_rate} vs {args.base_rate}), dim {args.dim}, noise {args.noise}; "
          f"{args.budget} reviews at {REVIEW_SECONDS:g} s "
          f"({args.budget * REVIEW_SECONDS / 3600:.1f} h); rounds of {args.round}; explore {args.explore}")
    draws = [one_draw(args, s, args.explore) for s in seeds]
    print(format_table(HEADERS, [row(f"seed {d['seed']}", d) for d in draws],
                       title="A = random order, B = nearest neighbours of the failures found so far"))
    ratios = [d["ratio"] for d in draws]
    print(f"B / A failures per human hour: mean {np.mean(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
    sweep = []
    for explore in [float(x) for x in args.explores.split(",")]:
        runs = [one_draw(args, s, explore) for s in seeds]
        sweep.append({"explore": explore, "ratio_mean": float(np.mean([r["ratio"] for r in runs])),
                      "ratio_min": min(r["ratio"] for r in runs), "ratio_max": max(r["ratio"] for r in runs),
                      "mined_per_hour_mean": float(np.mean([r["mined"]["per_hour"] for r in runs])),
                      "hard_hit_mean": float(np.mean([r["mined"]["hard_clusters_hit"] for r in runs]))})
    print(format_table(["explore", "B / A mean", "range", "B per h", "B hard clusters hit"],
                       [[f"{s['explore']:g}", f"{s['ratio_mean']:.2f}x", f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}",
                         f"{s['mined_per_hour_mean']:.1f}", f"{s['hard_hit_mean']:.1f}"] for s in sweep],
                       title="exploration share (mean over the draws)"))
    path = write_json("failure_mining_sim", {
        "config": vars(args), "review_seconds": REVIEW_SECONDS, "draws": draws,
        "ratio_mean": float(np.mean(ratios)), "explore_sweep": sweep, "environment": environment()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
