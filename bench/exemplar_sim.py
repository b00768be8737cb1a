"""Exemplar correction vs click correction: human seconds per positive pair (a simulation).

    python -m bench.exemplar_sim [--pairs 4000] [--instances 1,2,4,8,16,32] [--p-recall 0.7]
                                 [--recalls 0.3,0.5,0.7,0.9] [--fp-mean 0.5] [--miss-rate 0.4] [--seed N]

Workload (seeded): for each instance count N of the sweep, ``--pairs`` positive image–phrase pairs sent
to correction because instances are missing: the model's first proposals miss each instance with
probability ``--miss-rate`` (pairs with nothing missing are drawn again: they never reach correction).

Two ways to correct one pair:

* clicks (today): the annotator adds every missing instance with SAM clicks;
* exemplar: the annotator draws ONE box around a missing instance; the model re-proposes with it as a
  positive exemplar: the boxed instance is recovered, every other missing instance with probability
  ``p_recall``, and it adds Poisson(``--fp-mean``) false positives. The annotator reviews each
  re-proposed mask, deletes the false positives and adds what is still missing with clicks.

Cost model (seconds of human work; the SAM 3 paper publishes per-NP times only, Table 15 of arXiv
2511.16719, Wiki-Food&Drink, as quoted in /work/shared/design/SAM3_DATA_ENGINE.md — no per-click,
per-box or per-mask times, so those are stated assumptions anchored on it):

* ``open``: 30 s per correction task — Table 15, a negative NP in the all-human engine is one
  exhaustivity look at the image (the same 30 s bench.annotation_efficiency charges for a correction
  where nothing is missing);
* ``add_instance``: 30.5 s per instance added by clicks — ASSUMPTION: chosen so that a pair with 4
  missing instances costs the 152 s Table 15 gives per positive NP in the engine with AI verifiers
  (30 + 4 × 30.5 = 152);
* ``box``: 7 s per exemplar box — ASSUMPTION from outside the paper: extreme-clicking box annotation,
  Papadopoulos et al., ICCV 2017 (≈7 s per box);
* ``review_mask``: 5 s per re-proposed mask judged — bench.annotation_efficiency's verify_mask
  (Table 15: 207 − 152 s saved on a positive NP by MV + EV, less the 30 s check, over 5 masks);
* ``delete``: 2 s per false positive removed — ASSUMPTION (one selection click and a key), on top of
  its review.
* ``p_recall``: 0.7 by default — ASSUMPTION (the paper gives no recall of exemplar re-proposal);
  the table sweeps ``--recalls``.

A measurement, never pass/fail. Results: bench/results/exemplar_sim.json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from bench._common import environment, format_table, write_json

SEED = 20251205
SECONDS = {"open": 30.0, "add_instance": 30.5, "box": 7.0, "review_mask": 5.0, "delete": 2.0}
SOURCES = {
    "open": "SAM 3 Table 15: negative NP, engine all-human, 30 s (one exhaustivity look)",
    "add_instance": "assumption: (152 - 30) / 4 — Table 15 positive NP with AI verifiers, 4 missing instances",
    "box": "assumption: extreme clicking, Papadopoulos et al. ICCV 2017, ~7 s per box",
    "review_mask": "bench.annotation_efficiency verify_mask: (207 - 152 - 30) s over 5 masks (Table 15)",
    "delete": "assumption: one click and a key",
    "p_recall": "assumption: the paper gives no exemplar re-proposal recall; swept",
}


def draw_missing(n_instances: int, pairs: int, miss_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Missing instances per pair that reaches correction (at least one missing)."""
    out = np.empty(0, dtype=int)
    while out.size < pairs:
        m = rng.binomial(n_instances, miss_rate, size=pairs)
        out = np.concatenate([out, m[m > 0]])
    return out[:pairs]


def clicks_seconds(missing: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
    return seconds["open"] + missing * seconds["add_instance"]


def exemplar_seconds(missing: np.ndarray, p_recall: float, fp_mean: float, rng: np.random.Generator,
                     seconds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per pair with one exemplar box, and the missing instances the box recovered."""
    others = rng.binomial(missing - 1, p_recall)
    recovered = 1 + others
    false_pos = rng.poisson(fp_mean, size=missing.size)
    left = missing - recovered
    total = (seconds["open"] + seconds["box"] + (recovered + false_pos) * seconds["review_mask"]
             + false_pos * seconds["delete"] + left * seconds["add_instance"])
    return total, recovered


def one_cell(n: int, p_recall: float, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng([args.seed, n])  # same pairs for every p_recall: common random numbers
    missing = draw_missing(n, args.pairs, args.miss_rate, rng)
    base = clicks_seconds(missing, SECONDS)
    fx_rng = np.random.default_rng([args.seed, n, 1])
    with_ex, recovered = exemplar_seconds(missing, p_recall, args.fp_mean, fx_rng, SECONDS)
    return {"instances": n, "p_recall": p_recall, "pairs": int(missing.size),
            "mean_missing": float(missing.mean()), "mean_recovered": float(recovered.mean()),
            "clicks_s_per_pair": float(base.mean()), "exemplar_s_per_pair": float(with_ex.mean()),
            "ratio": float(base.mean() / with_ex.mean()),
            "exemplar_worse_share": float((with_ex > base).mean())}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--instances", default="1,2,4,8,16,32")
    ap.add_argument("--p-recall", type=float, default=0.7)
    ap.add_argument("--recalls", default="0.3,0.5,0.7,0.9")
    ap.add_argument("--fp-mean", type=float, default=0.5)
    ap.add_argument("--miss-rate", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=SEED)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    counts = [int(x) for x in args.instances.split(",")]
    recalls = [float(x) for x in args.recalls.split(",")]
    print(f"Exemplar vs click correction: {args.pairs} pairs per instance count, miss rate {args.miss_rate}, "
          f"false positives per re-proposal Poisson({args.fp_mean}), seed {args.seed}")
    print("Seconds: " + ", ".join(f"{k} {v:g}" for k, v in SECONDS.items()))
    main_rows = [one_cell(n, args.p_recall, args) for n in counts]
    print(format_table(["instances", "missing", "recovered", "clicks s/pair", "exemplar s/pair", "ratio",
                        "exemplar worse"],
                       [[str(r["instances"]), f"{r['mean_missing']:.2f}", f"{r['mean_recovered']:.2f}",
                         f"{r['clicks_s_per_pair']:.1f}", f"{r['exemplar_s_per_pair']:.1f}", f"{r['ratio']:.2f}x",
                         f"{100 * r['exemplar_worse_share']:.1f}%"] for r in main_rows],
                       title=f"p_recall {args.p_recall}"))
    sweep = [[one_cell(n, p, args) for n in counts] for p in recalls]
    print(format_table(["p_recall"] + [f"N={n}" for n in counts],
                       [[f"{p:g}"] + [f"{c['ratio']:.2f}x" for c in row] for p, row in zip(recalls, sweep,
                                                                                           strict=True)],
                       title="ratio clicks / exemplar seconds per positive pair"))
    path = write_json("exemplar_sim", {
        "config": vars(args), "seconds": SECONDS, "sources": SOURCES, "results": main_rows,
        "sweep": [c for row in sweep for c in row], "environment": environment()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
