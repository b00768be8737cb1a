"""Image embedding throughput: images/s of the product's image embedders at batch sizes 1 and 8, and the
cost of pooling an embedding from the vision features the propose stage already computed.

    python -m bench.embedding_throughput [--device auto|cpu|cuda] [--quick] [--threads 1] [--batches 1,8]
                                         [--models sam3-tiny,sam3-mid,dinov2-tiny,dinov2-small]

Models (random weights built offline, ``bench/active_models.py``; only their cost is meaningful):

* ``annotators.image_embedder.Sam3ImageEmbedder`` (pooled SAM 3 vision features, the default embedder)
  on the tiny SAM 3 (112 px) and the ~105 M parameter config (1008 px, the real geometry);
* ``annotators.image_embedder.VisionModelEmbedder`` (the dedicated embedder, ``similarity.embedder_model``)
  on a tiny ``Dinov2Model`` and one of DINOv2 ViT-S/14's geometry (~22 M parameters, 224 px crop).

Workload: ``--size`` photo-like synthetic images (default 640x480, seeded), passed as PIL images to
``embed_images`` in batches of each ``--batches`` size; images/s over ``--images`` images per batch size
(after one warm-up batch), each model in a fresh child process (its load time and peak RSS reported).
``Sam3ImageEmbedder`` encodes the images of a batch one by one (batching changes nothing there, by design:
that is what the table shows); ``VisionModelEmbedder`` runs the batch as one tensor.

"Pooled from the propose stage": the proposer already holds each image's vision features
(``Sam3Model.get_vision_features``); ``annotators.image_embedder.pool_vision_features`` plus the L2
normalisation turns them into the same embedding. Its time per image is reported next to the full
embedding's, and their ratio (how much cheaper the pooled path is than embedding from scratch).

``--autocast bf16`` (GPU runs) wraps the embedder calls in ``torch.autocast`` (the adapters load fp32).
Each model's figures go to stdout and bench/results/embedding_throughput[_cuda].json. A measurement,
never pass/fail.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench._common import (
    child_parser,
    child_result,
    environment,
    fmt,
    format_table,
    hwm_mb,
    run_child,
    wait_for_quiet,
    write_json,
)

MODULE = "bench.embedding_throughput"
MODELS = ("sam3-tiny", "sam3-mid", "dinov2-tiny", "dinov2-small")
#: images per batch size: (default, --quick) by model; the mid config costs seconds per image on one CPU core
IMAGES = {"sam3-tiny": (64, 16), "sam3-mid": (8, 8), "dinov2-tiny": (64, 16), "dinov2-small": (32, 8)}
GPU_IMAGES = {"sam3-tiny": 256, "sam3-mid": 64, "dinov2-tiny": 256, "dinov2-small": 256}
POOL_REPEATS = 50


def parse_args(argv: list[str] | None) -> Any:
    parser = child_parser(MODULE, __doc__ or "")
    add = parser.add_argument
    add("--device", default="auto", help="torch device: auto (cuda when there is one), cpu or cuda (default auto)")
    add("--threads", type=int, default=1,
        help="torch CPU threads (default 1: the shared machine; the GPU script passes the core count)")
    add("--quick", action="store_true", help="fewer images per batch size")
    add("--models", default=",".join(MODELS), help=f"which models (default {','.join(MODELS)})")
    add("--batches", default="1,8", help="batch sizes (default 1,8)")
    add("--images", type=int, default=None, help="images per batch size (default: by model, more on a GPU)")
    add("--size", default="640x480", help="image size WxH (default 640x480)")
    add("--autocast", choices=("off", "bf16", "fp16"), default="off",
        help="run the embedder calls under torch.autocast (GPU runs; default off: the product's fp32)")
    add("--out", default=None, help="name of the JSON under bench/results (default embedding_throughput[_cuda])")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- one model, in a child process
def _images(n: int, size: tuple[int, int]) -> list[Any]:
    from tests.factories import photo

    return [photo(7000 + i, size) for i in range(n)]


@contextlib.contextmanager
def _autocast(torch: Any, device: str, kind: str) -> Iterator[None]:
    if kind == "off":
        yield
        return
    with torch.autocast(device_type=device.split(":")[0], dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[kind]):
        yield


def _sync(torch: Any, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _load(model: str, path: str, device: str) -> Any:
    from annotators.image_embedder import Sam3ImageEmbedder, VisionModelEmbedder

    return (Sam3ImageEmbedder if model.startswith("sam3") else VisionModelEmbedder)(path, device=device)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the embedder, then images/s at each batch size, and for SAM 3 the pooled path's cost."""
    import torch

    from bench.active_models import ensure, parameters

    torch.set_num_threads(spec["threads"])
    path, built_s = ensure(spec["model"])
    started = time.perf_counter()
    embedder = _load(spec["model"], str(path), spec["device"])
    device = str(embedder.device)
    _sync(torch, device)
    load_s = time.perf_counter() - started
    images = _images(spec["images"], tuple(spec["size"]))
    out: dict[str, Any] = {"model": spec["model"], "adapter": type(embedder).__name__, "parameters": parameters(path),
                           "device": device, "threads": spec["threads"], "autocast": spec["autocast"],
                           "build_s": built_s, "load_s": load_s, "images": len(images), "batches": []}
    for batch in spec["batches"]:
        with _autocast(torch, device, spec["autocast"]):
            embedder.embed_images(images[:batch])  # warm-up
            _sync(torch, device)
            started = time.perf_counter()
            for start in range(0, len(images), batch):
                vectors = embedder.embed_images(images[start:start + batch])
            _sync(torch, device)
        seconds = time.perf_counter() - started
        out["batches"].append({"batch": batch, "seconds": seconds, "images_per_s": len(images) / seconds,
                               "ms_per_image": 1000 * seconds / len(images)})
    out["dim"] = int(vectors.shape[1])
    if spec["model"].startswith("sam3"):
        out["pooled"] = _pooled_cost(embedder, images[0], torch, device, spec["autocast"])
    if device.startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["peak_rss_mb"] = hwm_mb()
    return out


def _pooled_cost(embedder: Any, image: Any, torch: Any, device: str, autocast: str) -> dict[str, Any]:
    """ms per image of pooling features already computed (as the propose stage holds them) + normalising,
    against computing them (the vision encoder alone, the part the pooled path saves)."""
    import numpy as np

    from annotators.image_embedder import pool_vision_features
    from engine.domain.similarity import normalise

    with torch.inference_mode(), _autocast(torch, device, autocast):
        pixels = embedder.processor(images=image, return_tensors="pt")["pixel_values"].to(embedder.device)
        vision = embedder.model.get_vision_features(pixel_values=pixels)
        _sync(torch, device)
        started = time.perf_counter()
        for _ in range(3):
            vision = embedder.model.get_vision_features(pixel_values=pixels)
        _sync(torch, device)
        encode_ms = 1000 * (time.perf_counter() - started) / 3
        normalise(np.stack([pool_vision_features(vision)]))  # warm-up
        started = time.perf_counter()
        for _ in range(POOL_REPEATS):
            pooled = normalise(np.stack([pool_vision_features(vision)]))
        pool_ms = 1000 * (time.perf_counter() - started) / POOL_REPEATS
    direct = embedder.embed_images([image])
    return {"pool_ms": pool_ms, "encode_ms": encode_ms, "same_as_embed_images": bool(np.allclose(pooled, direct,
                                                                                               atol=1e-3))}


# ----------------------------------------------------------------------------- the parent
def print_tables(runs: list[dict[str, Any]], device: str) -> None:
    rows = []
    for r in runs:
        if "skipped" in r:
            rows.append([r["model"], "-", "-", "-", "-", "-", "-", "-", "skipped: " + r["skipped"]])
            continue
        label = f"{r['model']} ({r['parameters'] / 1e6:.2f} M)"
        by_batch = {b["batch"]: b for b in r["batches"]}
        first = by_batch[min(by_batch)]
        for b in r["batches"]:
            speedup = b["images_per_s"] / first["images_per_s"]
            rows.append([label, r["adapter"], r["dim"], b["batch"], r["images"], fmt(b["images_per_s"], 2),
                         fmt(b["ms_per_image"], 1), f"{speedup:.2f}x", fmt(r["load_s"], 1),
                         fmt(r["peak_rss_mb"], 0)])
            label = ""
    print(format_table(["model (params)", "adapter", "dim", "batch", "images", "images/s", "ms/image",
                        "vs batch 1", "load s", "peak RSS MB"], rows, left=2,
                       title=f"\nImage embedding throughput ({device}; after a warm-up batch)"))
    pooled = [r for r in runs if r.get("pooled")]
    if pooled:
        rows = []
        for r in pooled:
            p = r["pooled"]
            embed_ms = r["batches"][0]["ms_per_image"]
            rows.append([r["model"], fmt(embed_ms, 2), fmt(p["encode_ms"], 2), fmt(p["pool_ms"], 4),
                         f"{embed_ms / p['pool_ms']:,.0f}x", "yes" if p["same_as_embed_images"] else "NO"])
        print(format_table(["model", "embed_images ms/image", "vision encoder ms", "pool + normalise ms",
                            "embed / pooled", "same vector"], rows,
                           title="\nPooled from the propose stage (features already computed) vs embedding anew"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        import json

        child_result(measure(json.loads(args._child)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from annotators.loading import pick_device

    device = pick_device(args.device)
    width, height = (int(v) for v in args.size.lower().split("x"))
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    print(f"Image embedding throughput: device {device}, {args.threads} threads, {width}x{height} images, "
          f"batches {batches}, autocast {args.autocast}{' (quick)' if args.quick else ''}", flush=True)
    started = time.monotonic()
    runs = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        if model not in MODELS:
            raise SystemExit(f"unknown model {model!r}: one of {', '.join(MODELS)}")
        n = args.images or (GPU_IMAGES[model] if device.startswith("cuda") else IMAGES[model][int(args.quick)])
        n = max(n, max(batches))
        busy = wait_for_quiet(timeout_s=args.settle) if args.settle > 0 else None
        print(f"  running {model} ({n} images per batch size) ...", flush=True)
        spec = {"model": model, "device": device, "threads": args.threads, "images": n, "size": [width, height],
                "batches": batches, "autocast": args.autocast}
        result = run_child(MODULE, spec, f"embedding {model}")
        result["busy_cores_before"] = busy
        runs.append(result)
    print_tables(runs, device)
    name = args.out or ("embedding_throughput" if device == "cpu" else f"embedding_throughput_{device.split(':')[0]}")
    path = write_json(name, {"benchmark": "embedding_throughput", "device": device, "size": [width, height],
                             "batches": batches, "quick": args.quick, "runs": runs,
                             "environment": {**environment(), **_torch_env()}, "argv": sys.argv[1:],
                             "elapsed_s": round(time.monotonic() - started, 1),
                             "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(f"wrote {path}")
    return 0


def _torch_env() -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


if __name__ == "__main__":
    sys.exit(main())
