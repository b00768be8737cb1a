"""Hostile-corpus benchmark: peak RSS, wall time and per-item outcomes of the whole chain on inputs
built to hurt, beside the same chain on the bundled sample images.

    python -m bench.hostile [--per-case] [--skip-coco] [--timeout 1200]

The corpus is built in a temporary folder: the bundled sample images (with their alt-text) plus

* ``huge.jpg`` and ``huge.png``: 8000×8000 (64 Mpx, at the decode cap), with alt-text, so every
  model stage sees them; ``panorama.jpg``: 32000×2000 (64 Mpx, aspect 16:1);
* ``bomb.png``: a real decompression bomb, 50000×50000 1-bit (2.5 Gpx, 312 MB of zero rows
  deflated to a few hundred KB);
* ``truncated.jpg``: a JPEG cut at 60 %; ``not-an-image.png`` (text); ``empty.jpg`` (0 bytes);
* ``huge-file.jpg``: a valid small JPEG followed by zeros up to 200 MB (a sparse file);
* a file whose name is not UTF-8 (``caf\\xe9-\\xff.jpg``, a valid JPEG);
* a symlink loop (``loop-a.jpg`` ↔ ``loop-b.jpg``) and a folder linking to itself (``again/``);

and, as its own run, a COCO file over two sample images whose annotations have hostile polygons
(1e308 and negative coordinates, NaN, an odd number of values, 200,000 points, an RLE of the wrong
size, a non-list segmentation).

Each run is ``dataengine mine SOURCE --profile tiny`` through every stage (in-process execution, a
fresh SQLite database and media folder) in a child process, whose own peak RSS (VmHWM) is read when
it ends; the proposal threshold is 0, so every query of the tiny SAM 3 becomes a mask (the worst
case for mask memory). The tiny models have RANDOM weights: their captions, phrases and masks are
noise that only exercise the chain. Reported per run: wall seconds, peak RSS, job items by status,
model-stage rows by status, masks stored and masks whose size differs from their image's (must be
0); per hostile item its status and reason. When the hostile run does not finish (or with
``--per-case``), each hostile case is run on its own beside one normal image, to say which one breaks
the run. Everything is written to bench/results/hostile.json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench._common import (
    RESULT_PREFIX,
    RESULTS_DIR,
    child_parser,
    child_result,
    environment,
    format_table,
    hwm_mb,
    write_json,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "engine" / "sample_data" / "images"
MODELS_DIR = RESULTS_DIR / "cache" / "models"
ALT_TEXT = "A striped cat sleeps on a red sofa next to a tall lamp and a wooden table."
MB = 1024 * 1024


# ----------------------------------------------------------------------------- the corpus
def _smooth(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like RGB image: a low-resolution random field scaled up (cheap at any size)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 255, (max(2, height // 250), max(2, width // 250), 3), dtype=np.uint8)
    return Image.fromarray(low).resize((width, height), Image.Resampling.BILINEAR)


def _jpeg(path: Path, width: int, height: int, seed: int, alt: bool = False) -> None:
    _smooth(width, height, seed).save(path, "JPEG", quality=85)
    if alt:
        path.with_suffix(".txt").write_text(ALT_TEXT)


def _huge_png(folder: Path) -> None:
    _smooth(8000, 8000, 2).save(folder / "huge.png", "PNG", compress_level=1)
    (folder / "huge.txt").write_text(ALT_TEXT)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _bomb(folder: Path, side: int = 50_000) -> None:
    """A 1-bit greyscale PNG of side×side whose rows of zeros deflate ~1000:1."""
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # bit depth 1, greyscale
    row = bytes(1 + (side + 7) // 8)  # filter byte + packed pixels
    squeeze = zlib.compressobj(9)
    idat = b"".join(squeeze.compress(row * 1000) for _ in range(side // 1000)) + squeeze.flush()
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                                      + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def _truncated(folder: Path) -> None:
    _jpeg(folder / "whole.tmp", 2000, 1500, 3)
    data = (folder / "whole.tmp").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: int(len(data) * 0.6)])
    (folder / "whole.tmp").unlink()


def _huge_file(folder: Path) -> None:
    path = folder / "huge-file.jpg"
    _jpeg(path, 64, 48, 4)
    with open(path, "r+b") as handle:
        handle.truncate(200 * MB)  # sparse: no disk used, 200 MB when read


def _non_utf8_name(folder: Path) -> None:
    _jpeg(Path(os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9-\xff.jpg")), 320, 240, 5)


def _symlink_loops(folder: Path) -> None:
    os.symlink("loop-b.jpg", folder / "loop-a.jpg")
    os.symlink("loop-a.jpg", folder / "loop-b.jpg")
    os.symlink(".", folder / "again")


def _junk(folder: Path) -> None:
    (folder / "not-an-image.png").write_text("this is not a PNG\n" * 10)
    (folder / "empty.jpg").write_bytes(b"")


CASES: dict[str, Callable[[Path], None]] = {
    "huge 8000×8000 JPEG": lambda f: _jpeg(f / "huge.jpg", 8000, 8000, 1, alt=True),
    "huge 8000×8000 PNG": _huge_png,
    "panorama 32000×2000": lambda f: _jpeg(f / "panorama.jpg", 32000, 2000, 6, alt=True),
    "decompression bomb": _bomb,
    "truncated JPEG": _truncated,
    "200 MB file": _huge_file,
    "non-UTF-8 name": _non_utf8_name,
    "symlink loops": _symlink_loops,
    "not an image, empty file": _junk,
}


def _samples(folder: Path, names: list[str] | None = None) -> None:
    for path in sorted(SAMPLES.iterdir()):
        if names is None or path.stem in names:
            shutil.copy2(path, folder / path.name)


def _hostile_coco(folder: Path) -> Path:
    """Two sample images and annotations with hostile segmentations."""
    images = folder / "images"
    images.mkdir()
    names = sorted(p.name for p in SAMPLES.glob("*.jpg"))[:2]
    for name in names:
        shutil.copy2(SAMPLES / name, images / name)
    sizes = [Image.open(images / n).size for n in names]
    bad = [
        [[0, 0, 1e308, 0, 1e308, 1e308]],                # overflowing coordinates
        [[-5e9, -5e9, 10, 0, 10, 10]],                    # far outside, negative
        [[0, 0, float("nan"), 5, 10, 10]],                # NaN (written as the bare token NaN)
        [[1, 2, 3, 4, 5]],                                # odd number of values
        [[float(v) for v in np.random.default_rng(7).integers(0, 300, 400_000)]],  # 200,000 points
        {"size": [10, 10], "counts": [100]},              # RLE of the wrong size
        "a string",                                       # not a segmentation at all
        [[10, 10, 60, 10, 60, 60, 10, 60]],               # a good one
    ]
    annotations = [{"id": i + 1, "image_id": 1 + i % 2, "category_id": 1, "segmentation": seg, "iscrowd": 0,
                    "bbox": [0, 0, 10, 10], "area": 100} for i, seg in enumerate(bad)]
    coco = {"images": [{"id": i + 1, "file_name": n, "width": w, "height": h}
                       for i, (n, (w, h)) in enumerate(zip(names, sizes, strict=True))],
            "categories": [{"id": 1, "name": "cat"}], "annotations": annotations}
    path = folder / "hostile.json"
    path.write_text(json.dumps(coco))  # allow_nan: NaN as the bare token, as a careless exporter writes it
    return path


# ----------------------------------------------------------------------------- one run, in a child
def _child(spec: dict[str, Any]) -> None:
    from dataengine.cli.main import cli

    error = None
    start = time.perf_counter()
    try:
        cli.main(args=spec["args"], standalone_mode=False)
    except SystemExit as exc:
        error = None if exc.code in (0, None) else f"exit {exc.code}"
    except BaseException as exc:  # noqa: BLE001 - reported, the run is a measurement
        error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    child_result({"wall_s": round(time.perf_counter() - start, 1), "peak_mb": hwm_mb(), "error": error})


def _run(name: str, root: Path, args: list[str], timeout_s: float) -> dict[str, Any]:
    data = root / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATAENGINE_DATA_DIR": str(data),
           "DATAENGINE_MODELS__CACHE_DIR": str(MODELS_DIR), "DATAENGINE_MODEL_PROFILE": "tiny",
           "DATAENGINE_MODELS__PROPOSE__SCORE_THRESHOLD": "0", "DATAENGINE_LOG_LEVEL": "WARNING"}
    for key in ("DATAENGINE_BROKER_URL", "DATAENGINE_DATABASE_URL", "DATAENGINE_MEDIA_ROOT", "DATAENGINE_CONFIG"):
        env.pop(key, None)
    spec = {"args": ["mine", *args, "--profile", "tiny", "--job", "bench"]}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.hostile", "--_child", json.dumps(spec)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        result = json.loads(lines[-1][len(RESULT_PREFIX):]) if lines else {
            "wall_s": round(time.perf_counter() - start, 1), "peak_mb": None,
            "error": f"child died (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
    except subprocess.TimeoutExpired:
        result = {"wall_s": timeout_s, "peak_mb": None, "error": f"timed out after {timeout_s:.0f} s"}
    result["name"] = name
    result.update(_outcomes(data / "dataengine.db"))
    return result


def _outcomes(db: Path) -> dict[str, Any]:
    if not db.exists():
        return {"items": {}, "stages": {}, "stage_seconds": {}, "masks": 0, "masks_wrong_size": 0, "failures": []}
    with sqlite3.connect(db) as conn:
        items = dict(conn.execute("SELECT status, count(*) FROM job_items GROUP BY status").fetchall())
        stages: dict[str, dict[str, int]] = {}
        for stage, status, n in conn.execute("SELECT stage, status, count(*) FROM stage_items GROUP BY stage, status"):
            stages.setdefault(stage, {})[status] = n
        seconds = {stage: round(total or 0.0, 1) for stage, total in conn.execute(
            "SELECT stage, sum(seconds) FROM stage_items GROUP BY stage")}
        masks = conn.execute("SELECT count(*) FROM masks").fetchone()[0]
        wrong = conn.execute(
            "SELECT count(*) FROM masks m JOIN image_concepts p ON p.id = m.pair_id JOIN images i ON i.id = p.image_id "
            "WHERE m.height != i.height OR m.width != i.width").fetchone()[0]
        failures = [{"key": key, "error": (error or "")[:160]} for key, error in conn.execute(
            "SELECT key, error FROM job_items WHERE status = 'failed' ORDER BY key")]
        failures += [{"key": f"{stage} image {image}", "error": (error or "")[:160]} for stage, image, error in
                     conn.execute("SELECT stage, subject_id, error FROM stage_items WHERE status = 'failed'")]
    return {"items": items, "stages": stages, "stage_seconds": seconds, "masks": masks, "masks_wrong_size": wrong,
            "failures": failures}


# ----------------------------------------------------------------------------- main
def _row(r: dict[str, Any]) -> list[Any]:
    items = r["items"]
    stage_failed = sum(s.get("failed", 0) for s in r["stages"].values())
    return [r["name"], r["wall_s"], r["peak_mb"], sum(items.values()), items.get("done", 0),
            items.get("duplicate", 0) + items.get("near_duplicate", 0), items.get("failed", 0), stage_failed,
            r["masks"], r["masks_wrong_size"], r["error"] or "ok"]


def main() -> None:
    parser = child_parser("bench.hostile", __doc__ or "")
    parser.add_argument("--per-case", action="store_true", help="also run each hostile case on its own")
    parser.add_argument("--skip-coco", action="store_true", help="leave out the hostile COCO run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one run may take")
    args = parser.parse_args()
    if args._child:
        _child(json.loads(args._child))
        return

    from annotators.tiny import ensure_tiny_models

    ensure_tiny_models(MODELS_DIR / "tiny")  # built once, outside the measured runs
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="de-hostile-") as tmp:
        base = Path(tmp)

        def fresh(name: str) -> Path:
            root = base / name
            (root / "src").mkdir(parents=True)
            return root

        root = fresh("baseline")
        _samples(root / "src")
        runs.append(_run("baseline: sample images", root, [str(root / "src")], args.timeout))
        print(format_table(HEADERS, [_row(runs[-1])], left=1), flush=True)

        root = fresh("hostile")
        _samples(root / "src")
        built = {}
        for case, build in CASES.items():
            t0 = time.perf_counter()
            build(root / "src")
            built[case] = round(time.perf_counter() - t0, 1)
        runs.append(_run("hostile folder (all cases + samples)", root, [str(root / "src")], args.timeout))
        print(format_table(HEADERS, [_row(runs[-1])], left=1), flush=True)

        if not args.skip_coco:
            root = fresh("coco")
            coco = _hostile_coco(root / "src")
            runs.append(_run("hostile COCO polygons", root,
                             [str(coco), "--kind", "coco", "--images-dir", str(root / "src" / "images")], args.timeout))

        per_case = []
        if args.per_case or runs[1]["error"]:
            for n, (case, build) in enumerate(CASES.items()):
                root = fresh(f"case{n}")
                _samples(root / "src", ["chelsea"])
                build(root / "src")
                per_case.append(_run(f"case: {case}", root, [str(root / "src")], args.timeout))
                print(format_table(HEADERS, [_row(per_case[-1])], left=1), flush=True)

    print()
    print(format_table(HEADERS, [_row(r) for r in runs + per_case], left=1,
                       title="Whole chain, tiny RANDOM-WEIGHT models, in-process, SQLite "
                             "(peak RSS = the child's VmHWM)"))
    stages = ["caption", "parse", "propose", "negatives", "verify", "route"]
    print()
    print(format_table(["run", *stages], [[r["name"], *(r["stage_seconds"].get(s) for s in stages)]
                                          for r in runs + per_case],
                       title="Model-stage seconds (sum of stage_items.seconds)"))
    for r in runs[1:]:
        if r["failures"]:
            print(f"\n{r['name']}: what failed, with its reason")
            for f in r["failures"]:
                print(f"  {f['key'][:60]:<60}  {f['error']}")
    out = write_json("hostile", {"environment": environment(), "corpus_build_s": built,
                                 "runs": runs, "per_case": per_case,
                                 "note": "tiny random-weight models: outputs are noise; proposal threshold 0"})
    print(f"\nwritten to {out}")


HEADERS = ["run", "wall s", "peak RSS MiB", "items", "done", "dup", "failed", "stage failed", "masks",
           "masks≠image", "run outcome"]

if __name__ == "__main__":
    main()
