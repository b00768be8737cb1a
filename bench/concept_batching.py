"""SAM 3 concept batching: naive (full forward per phrase) vs vision reuse, 8 and 32 phrases on one image.

    python -m bench.concept_batching [--tiny-repeats 7] [--mid-repeats 2] [--mid-phrases 8,32] [--quick]

Workload: one deterministic 640x480 photo-like RGB image, 8 and 32 distinct noun phrases, on two
random-weight ``Sam3Model`` checkpoints of the real architecture (loaded from disk with
``annotators.sam3.Sam3Proposer(path, score_threshold=0.5, mask_threshold=0.5, device="cpu")``):

* ``tiny``: :func:`annotators.tiny.build_tiny_sam3` (112 px input, 0.26 M parameters);
* ``mid``:  :func:`annotators.tiny.build_mid_sam3` (1008 px input, ~105 M parameters), built once into
  ``bench/results/cache/mid-sam3``.

Three ways are timed, alternated inside every repeat (the order flips between repeats):

* ``naive``      ``propose_naive``: image and text encoders run again for every phrase;
* ``reuse``      ``propose`` with the proposer's text cache cleared first: the image is encoded once,
                 every phrase's text is encoded once, then one decode per phrase;
* ``reuse-warm`` ``propose`` again right after, with every phrase's text features cached (the steady
                 state of a worker that has seen those phrases before).

Before timing, each model runs both paths once on 1 phrase (warm-up). Medians over the repeats and
the ratio naive/reuse are printed per model size and phrase count. The proposals of the two paths
are compared (same number of masks per phrase, equal masks, scores within 1e-4). torch uses 2
threads. Everything goes to bench/results/concept_batching.json. A measurement, never pass/fail.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    RESULTS_DIR,
    build_dir_atomically,
    environment,
    fmt,
    format_table,
    machine_cpu_s,
    median,
    peak_rss,
    proc_cpu_s,
    spread,
    wait_for_quiet,
    write_json,
)

IMAGE_SIZE = (640, 480)  # width, height
TARGET_MID_8 = 2.5  # naive/reuse at 8 phrases on the mid config (from the issue)
SCORE_TOL = 1e-4
PHRASES = [
    "red ball", "wooden table", "green cup", "small dog", "blue chair", "white cat", "black car",
    "tall tree", "yellow umbrella", "metal bicycle", "glass bottle", "leather bag", "striped shirt",
    "paper lamp", "orange traffic cone", "brick wall", "potted plant", "ceramic plate", "silver spoon",
    "wooden door", "open window", "grey sofa", "woolen blanket", "framed picture", "plastic bucket",
    "rubber boot", "straw hat", "wicker basket", "stone bench", "iron fence", "brown horse",
    "pink flower",
]
WAYS = ("naive", "reuse", "reuse-warm")


# ============================================================================ workload
def make_image() -> Any:
    """A deterministic photo-like image: smooth colour field, soft shapes, a little noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(20240601)
    w, h = IMAGE_SIZE
    grid = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    img = Image.fromarray(grid, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(14):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = float(rng.random() * w), float(rng.random() * h)
        size = float(rng.uniform(20, 200))
        box = [x0, y0, x0 + size * float(rng.uniform(0.4, 1)), y0 + size * float(rng.uniform(0.4, 1))]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    noise = rng.normal(0, 6, size=(h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def ensure_model(cache_dir: Path, name: str, builder: str, build: Callable[[Path, int], Path]) -> tuple[Path, float]:
    """Build a model once into ``cache_dir/name`` (temporary sibling, then rename). Returns
    (path, seconds spent building; 0 when it was there)."""
    from annotators.tiny import FORMAT_VERSION, read_marker

    final = cache_dir / name
    marker = read_marker(final)
    if marker and marker.get("builder") == builder and marker.get("format") == FORMAT_VERSION:
        return final, 0.0
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building {builder} into {final} ...", flush=True)
    started = time.perf_counter()
    build_dir_atomically(final, lambda tmp: build(tmp, 0), prefix=f".{name}.build-")
    return final, time.perf_counter() - started


# ============================================================================ measurement
def compare(a: list[list[Any]], b: list[list[Any]]) -> dict[str, Any]:
    """Proposals of two paths, phrase by phrase: counts, masks, scores."""
    count_mismatch = [i for i, (pa, pb) in enumerate(zip(a, b, strict=True)) if len(pa) != len(pb)]
    max_score_diff, pixels_differing, masks_compared = 0.0, 0, 0
    for pa, pb in zip(a, b, strict=True):
        if len(pa) != len(pb):
            continue
        for x, y in zip(pa, pb, strict=True):
            masks_compared += 1
            max_score_diff = max(max_score_diff, abs(x.score - y.score))
            pixels_differing += int(np.count_nonzero(x.mask != y.mask)) if x.mask.shape == y.mask.shape \
                else int(x.mask.size)
    identical = (len(a) == len(b) and not count_mismatch and pixels_differing == 0
                 and max_score_diff <= SCORE_TOL)
    return {"identical": identical, "phrases": len(a), "masks_a": sum(map(len, a)), "masks_b": sum(map(len, b)),
            "phrases_with_other_mask_count": len(count_mismatch), "masks_compared": masks_compared,
            "pixels_differing": pixels_differing, "max_score_diff": max_score_diff}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of one call; the busy cores of other processes meanwhile go to ``LAST_FOREIGN``."""
    global LAST_FOREIGN
    machine0, own0 = machine_cpu_s(), proc_cpu_s(os.getpid())
    started = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - started
    foreign = (machine_cpu_s() - machine0) - (proc_cpu_s(os.getpid()) - own0)
    LAST_FOREIGN = max(0.0, foreign / elapsed) if elapsed > 0.2 else None  # /proc ticks are 10 ms
    return elapsed, out


LAST_FOREIGN: float | None = None


def run_way(proposer: Any, way: str, image: Any, phrases: list[str]) -> tuple[float, Any]:
    if way == "naive":
        return timed(lambda: proposer.propose_naive(image, phrases))
    if way == "reuse":
        proposer._text_cache.clear()  # text encoding is part of the measured work
        return timed(lambda: proposer.propose(image, phrases))
    if way == "reuse-warm":  # every phrase's text features are cached (filled by a run just before)
        missing = [p for p in phrases if p not in proposer._text_cache]
        if missing:
            proposer.propose(image, missing)
        return timed(lambda: proposer.propose(image, phrases))
    raise ValueError(way)


def all_queries_check(proposer: Any, image: Any, phrases: list[str]) -> dict[str, Any]:
    """At score threshold 0.5 random weights may give no mask at all, which proves little: compare
    both paths again with the score threshold at 0, i.e. every query's mask and score (untimed)."""
    original = proposer.score_threshold
    try:
        proposer.score_threshold = 0.0
        naive = proposer.propose_naive(image, phrases)
        proposer._text_cache.clear()
        reuse = proposer.propose(image, phrases)
    finally:
        proposer.score_threshold = original
        proposer._text_cache.clear()
    return {"score_threshold": 0.0, **compare(naive, reuse)}


def measure_model(label: str, path: Path, image: Any, counts: list[int], repeats: dict[int, int],
                  check_phrases: int, deadline: float | None = None) -> dict[str, Any]:
    """Time the three ways at each phrase count. With a ``deadline`` (time.monotonic), a phrase count
    after the first is skipped when its projected time (scaled from the first count's medians) would
    end past it."""
    from annotators.sam3 import Sam3Proposer

    started = time.perf_counter()
    proposer = Sam3Proposer(str(path), score_threshold=0.5, mask_threshold=0.5, device="cpu")
    load_s = time.perf_counter() - started
    params = sum(p.numel() for p in proposer.model.parameters())
    print(f"\n[{label}] {params / 1e6:.2f} M parameters, loaded in {load_s:.1f} s; warm-up (1 phrase, both paths)",
          flush=True)
    warm = {way: round(run_way(proposer, way, image, PHRASES[-1:])[0], 3) for way in ("naive", "reuse")}
    out: dict[str, Any] = {"model": label, "path": str(path), "parameters": params, "load_s": round(load_s, 2),
                           "input_px": int(proposer.processor.image_processor.size["height"]),
                           "warmup_s": warm, "by_phrases": {}, "skipped": []}
    first: tuple[int, dict[str, float]] | None = None
    for n in counts:
        if first is not None and deadline is not None:
            n0, med0 = first
            per_phrase = {w: med0[w] / n0 for w in WAYS}
            projected = repeats[n] * n * sum(per_phrase.values()) \
                + check_phrases * (per_phrase["naive"] + per_phrase["reuse"])
            left = deadline - time.monotonic()
            if projected > left:
                msg = (f"{label} at {n} phrases: projected {projected:.0f} s ({repeats[n]} repeat(s) of naive + "
                       f"reuse + reuse-warm, scaled from {n0} phrases) but {max(left, 0):.0f} s left of the "
                       f"--budget-min; run with --mid-phrases {','.join(map(str, counts))} to force it")
                print(f"  SKIPPED {msg}", flush=True)
                out["skipped"].append(msg)
                continue
        phrases = PHRASES[:n]
        samples: dict[str, list[float]] = {w: [] for w in WAYS}
        foreign: dict[str, list[float | None]] = {w: [] for w in WAYS}
        checks: list[dict[str, Any]] = []
        for rep in range(repeats[n]):
            order = WAYS if rep % 2 == 0 else ("reuse", "reuse-warm", "naive")
            results: dict[str, Any] = {}
            for way in order:
                seconds, results[way] = run_way(proposer, way, image, phrases)
                samples[way].append(seconds)
                foreign[way].append(LAST_FOREIGN)
                print(f"  {label:4s} {n:2d} phrases  repeat {rep + 1}/{repeats[n]}  {way:10s} {seconds:8.3f} s"
                      + (f"  (other processes: {LAST_FOREIGN:.2f} cores)" if LAST_FOREIGN is not None else ""),
                      flush=True)
            checks.append({"repeat": rep, "naive_vs_reuse": compare(results["naive"], results["reuse"]),
                           "reuse_vs_reuse_warm": compare(results["reuse"], results["reuse-warm"])})
        med = {w: median(samples[w]) for w in WAYS}
        first = first or (n, med)
        # per-phase estimates from the medians: naive/n = V + T + D, reuse = V + n(T + D), warm = V + nD
        text = (med["reuse"] - med["reuse-warm"]) / n
        decode = (med["reuse-warm"] - med["naive"] / n + text) / (n - 1)
        vision = med["reuse-warm"] - n * decode
        foreign_all = [f for w in WAYS for f in foreign[w] if f is not None]
        out["by_phrases"][n] = {
            "phrases": n, "repeats": repeats[n], "samples_s": samples,
            "median_s": med, "spread_s": {w: spread(samples[w]) for w in WAYS},
            "ratio_naive_over_reuse": med["naive"] / med["reuse"] if med["reuse"] else None,
            "ratio_naive_over_reuse_warm": med["naive"] / med["reuse-warm"] if med["reuse-warm"] else None,
            "per_phrase_ms": {w: med[w] * 1000 / n for w in WAYS},
            "derived_s": {"vision_encode": vision, "text_encode_per_phrase": text,
                          "decode_and_postprocess_per_phrase": decode},
            "other_processes_cores": foreign, "other_processes_cores_max": max(foreign_all) if foreign_all else None,
            "checks": checks,
            "identical": all(c["naive_vs_reuse"]["identical"] and c["reuse_vs_reuse_warm"]["identical"]
                             for c in checks),
        }
    print(f"  {label}: identity check at score threshold 0 (every query) on {check_phrases} phrases (untimed) ...",
          flush=True)
    out["all_queries_check"] = all_queries_check(proposer, image, PHRASES[:check_phrases])
    del proposer
    return out


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concept_batching", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny-repeats", type=int, default=None,
                        help="repeats on the tiny model (default 7; --quick 3)")
    parser.add_argument("--mid-repeats", type=int, default=None,
                        help="repeats on the mid model at 8 phrases (default 2; --quick 1)")
    parser.add_argument("--mid-repeats-32", type=int, default=1,
                        help="repeats on the mid model at 32 phrases (default 1)")
    parser.add_argument("--mid-phrases", default=None,
                        help="phrase counts on the mid model, comma separated (default 8,32; --quick 8)")
    parser.add_argument("--mid-check-phrases", type=int, default=2,
                        help="phrases of the threshold-0 identity check on the mid model (default 2)")
    parser.add_argument("--budget-min", type=float, default=8.0,
                        help="when --mid-phrases is not given, skip mid phrase counts past the first whose "
                             "projected time would end the run after this many minutes (0: no limit; default 8)")
    parser.add_argument("--no-mid", action="store_true", help="tiny model only")
    parser.add_argument("--quick", action="store_true", help="fewer repeats; mid at 8 phrases only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")
    parser.add_argument("--settle", type=float, default=10.0, help="wait up to this long for an idle machine")
    args = parser.parse_args(argv)
    run_started = time.monotonic()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tiny_repeats = args.tiny_repeats or (3 if args.quick else 7)
    mid_repeats = args.mid_repeats or (1 if args.quick else 2)
    mid_counts = [int(x) for x in (args.mid_phrases or ("8" if args.quick else "8,32")).split(",") if x.strip()]
    skipped: list[str] = []
    if args.no_mid:
        mid_counts = []
        skipped.append("mid model (--no-mid)")
    elif 32 not in mid_counts:
        skipped.append("mid model at 32 phrases (--mid-phrases / --quick)")

    import torch

    from annotators.tiny import build_mid_sam3, build_tiny_sam3

    torch.set_num_threads(args.threads)
    image = make_image()
    busy = wait_for_quiet(timeout_s=args.settle)
    workload = (f"one {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} RGB image; phrases 8 and 32 (distinct); "
                f"Sam3Proposer(score_threshold=0.5, mask_threshold=0.5, device=cpu); torch threads {args.threads}; "
                f"tiny: {tiny_repeats} repeats at 8 and 32 phrases; mid: {mid_repeats} repeats at 8, "
                f"{args.mid_repeats_32} at 32 (phrase counts {mid_counts or 'none'}); "
                f"warm-up 1 phrase per path per model; naive / reuse / reuse-warm alternated; "
                f"identity also checked at score threshold 0 (tiny 8, mid {args.mid_check_phrases} phrases)")
    print("SAM 3 concept batching:", workload)
    print(f"machine busy before start: {busy} cores (besides this process)")

    tiny_path, tiny_build = ensure_model(args.cache_dir, "tiny-sam3", "tiny-sam3", build_tiny_sam3)
    results = [measure_model("tiny", tiny_path, image, [8, 32], {8: tiny_repeats, 32: tiny_repeats},
                             check_phrases=8)]
    mid_build = 0.0
    if mid_counts:
        mid_path, mid_build = ensure_model(args.cache_dir, "mid-sam3", "mid-sam3", build_mid_sam3)
        reps = {n: (args.mid_repeats_32 if n >= 32 else mid_repeats) for n in mid_counts}
        deadline = run_started + args.budget_min * 60 if args.mid_phrases is None and args.budget_min > 0 else None
        results.append(measure_model("mid", mid_path, image, mid_counts, reps,
                                     check_phrases=args.mid_check_phrases, deadline=deadline))
        skipped += results[-1]["skipped"]

    rows = []
    for res in results:
        for n, r in res["by_phrases"].items():
            med = r["median_s"]
            rows.append([f"{res['model']} ({res['parameters'] / 1e6:.2f} M, {res['input_px']} px)", n, r["repeats"],
                         med["naive"], med["reuse"], med["reuse-warm"], r["ratio_naive_over_reuse"],
                         r["ratio_naive_over_reuse_warm"], r["per_phrase_ms"]["naive"],
                         r["per_phrase_ms"]["reuse"], "yes" if r["identical"] else "NO",
                         r["other_processes_cores_max"]])
    fmt_rows = [[r[0], r[1], r[2], fmt(r[3], 3), fmt(r[4], 3), fmt(r[5], 3), f"{r[6]:.2f}x", f"{r[7]:.2f}x",
                 fmt(r[8], 1), fmt(r[9], 1), r[10], fmt(r[11], 2)] for r in rows]
    print()
    print(format_table(["model", "phrases", "repeats", "naive s", "reuse s", "reuse-warm s", "naive/reuse",
                        "naive/warm", "naive ms/phrase", "reuse ms/phrase", "identical",
                        "other procs (max cores)"], fmt_rows,
                       title=f"Median seconds per call ({IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image, CPU, "
                             f"{args.threads} threads)"))

    print("\nPer-phase estimates solved from the medians (naive/n = V+T+D, reuse = V+n(T+D), warm = V+nD):")
    for res in results:
        for n, r in res["by_phrases"].items():
            d = r["derived_s"]
            v, t, dd = d["vision_encode"], d["text_encode_per_phrase"], d["decode_and_postprocess_per_phrase"]
            if v <= 0 or dd <= 0:
                print(f"  {res['model']:4s} {n:2d} phrases: not resolvable from these medians (too noisy)")
                continue
            t = max(t, 0.0)
            bound = (v + t + dd) / (t + dd)
            print(f"  {res['model']:4s} {n:2d} phrases: vision encode V {v:8.3f} s, text encode T "
                  f"{(f'{t * 1000:8.1f} ms/phrase' if t > 0 else '≈ 0 (below the noise)')}, "
                  f"decode + post-process D {dd * 1000:8.1f} ms/phrase; naive/reuse can reach at most "
                  f"(V+T+D)/(T+D) = {bound:.2f}x with many phrases")

    print("\nIdentity check (naive vs reuse, cold text cache; and reuse vs reuse-warm), every repeat:")
    for res in results:
        for n, r in res["by_phrases"].items():
            c = [x["naive_vs_reuse"] for x in r["checks"]]
            w = [x["reuse_vs_reuse_warm"] for x in r["checks"]]
            print(f"  {res['model']:4s} {n:2d} phrases: masks naive {c[0]['masks_a']} / reuse {c[0]['masks_b']}; "
                  f"phrases with another mask count: {max(x['phrases_with_other_mask_count'] for x in c)}; "
                  f"pixels differing: {max(x['pixels_differing'] for x in c)}; "
                  f"max |score diff| {max(x['max_score_diff'] for x in c):.2e} "
                  f"(reuse vs warm: {max(x['max_score_diff'] for x in w):.2e}, "
                  f"{max(x['pixels_differing'] for x in w)} px) -> "
                  f"{'identical' if r['identical'] else 'DIFFERENT'} within {SCORE_TOL:g}")

    for res in results:
        c = res["all_queries_check"]
        print(f"  {res['model']:4s} score threshold 0, every query ({c['phrases']} phrases): "
              f"masks naive {c['masks_a']} / reuse {c['masks_b']}; phrases with another mask count: "
              f"{c['phrases_with_other_mask_count']}; pixels differing: {c['pixels_differing']}; "
              f"max |score diff| {c['max_score_diff']:.2e} -> "
              f"{'identical' if c['identical'] else 'DIFFERENT'} within {SCORE_TOL:g}")

    mid8 = next((r["by_phrases"].get(8) for r in results if r["model"] == "mid"), None)
    if mid8:
        print(f"\nTarget (issue): naive/reuse >= {TARGET_MID_8}x at 8 phrases on the mid config; measured "
              f"{mid8['ratio_naive_over_reuse']:.2f}x (text encoding included), "
              f"{mid8['ratio_naive_over_reuse_warm']:.2f}x with warm text cache. "
              f"Reference (MODELS.md): 2.7x for the 101 M mid config, 4.7x full size.")
    if skipped:
        print("Skipped: " + "; ".join(skipped))
    rss = peak_rss()
    print(f"Peak RSS: {rss['self_mb']:.0f} MB; model builds this run: tiny {tiny_build:.1f} s, mid {mid_build:.1f} s")

    path = write_json("concept_batching", {
        "benchmark": "concept_batching", "workload": workload, "image_size": list(IMAGE_SIZE),
        "phrases": PHRASES, "threads": args.threads, "target_mid_8_ratio": TARGET_MID_8,
        "busy_cores_before": busy, "skipped": skipped, "results": results, "peak_rss": rss,
        "build_s": {"tiny": round(tiny_build, 1), "mid": round(mid_build, 1)},
        "environment": {**environment(), "torch": torch.__version__},
        "argv": sys.argv[1:], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
