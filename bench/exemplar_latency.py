"""Exemplar re-proposal latency over HTTP, as the correction page sees it: an annotator holds an image
correction task, ``POST /api/v1/tasks/{id}/exemplars`` with boxes, then ``GET /api/v1/exemplars/{id}``
until the request is done; the first request on an image (cold: SAM 3's vision features are computed)
against the following ones on the same image (warm: the features come from the exemplar proposer's
per-image cache, ``annotators.sam3_exemplar.Sam3ExemplarProposer``).

    python -m bench.exemplar_latency [--device auto|cpu|cuda] [--quick] [--configs tiny,mid] [--images N]
                                     [--repeats N] [--size 640x480] [--threads 1]

The server is the real app (``dataengine.serve.create_app``) under uvicorn on 127.0.0.1, in a fresh child
process per config, embedded (no broker: the exemplar runner is a thread of that process,
``pipelines/exemplars.py``), on a SQLite database; the models are random-weight SAM 3 checkpoints built
offline (``bench/active_models.py``): ``tiny`` (the tests' 0.26 M parameter config, 112 px) and ``mid``
(~105 M parameters at the real 1008 px geometry; the parameter count is printed). The masks are noise
from random weights: ONLY THE LATENCY IS MEANINGFUL. ``--score-threshold`` (default 0) keeps every
instance the model returns (up to ``exemplars.max_masks``), so their encoding and transfer are paid as
with a real model that finds things.

Workload: ``--images`` photo-like images (``--size``, default 640x480), one correction task each, plus
one more whose first request loads the model (reported apart, not in the medians). On each image: one
cold request (one positive box), then ``--repeats`` warm ones (the person adds exemplars one at a time:
1, 2, 3 boxes, a negative one among them, cycling). Each request is timed from before the POST to the
poll that sees it done (polled every 10 ms: the server's latency, not the page's poll schedule), with the
worker's own run time (the request row's started_at → finished_at) beside it; the proposer's count of
encoded images confirms that warm requests encode nothing.

Results: median / p90 per config and phase, the cold/warm ratio side by side; stdout and
bench/results/exemplar_latency[_cuda].json. A measurement, never pass/fail.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
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

MODULE = "bench.exemplar_latency"
USER, PASSWORD = "bench", "exemplar-boxes-7-times"
POLL_S = 0.010
REQUEST_TIMEOUT_S = 600.0
#: (images, warm repeats per image): default and --quick, per config; on a GPU the default of tiny for both
PLAN = {"tiny": ((5, 5), (3, 3)), "mid": ((3, 3), (1, 2))}
#: exemplar boxes as fractions of the image (x0, y0, x1, y1) and their labels; request r uses the first 1 + r % 3
BOXES = [((0.10, 0.10, 0.30, 0.35), 1), ((0.55, 0.50, 0.80, 0.80), 0), ((0.40, 0.15, 0.60, 0.40), 1)]


def parse_args(argv: list[str] | None) -> Any:
    parser = child_parser(MODULE, __doc__ or "")
    add = parser.add_argument
    add("--device", default="auto", help="torch device: auto (cuda when there is one), cpu or cuda (default auto)")
    add("--threads", type=int, default=1,
        help="torch CPU threads (default 1: the shared machine; the GPU script passes the core count)")
    add("--quick", action="store_true", help="fewer images and repeats")
    add("--configs", default="tiny,mid", help="SAM 3 configs (default tiny,mid)")
    add("--images", type=int, default=None, help="images (cold requests) per config (default tiny 5, mid 3)")
    add("--repeats", type=int, default=None, help="warm requests per image (default tiny 5, mid 3)")
    add("--size", default="640x480", help="image size WxH (default 640x480)")
    add("--score-threshold", type=float, default=0.0,
        help="exemplars.score_threshold (default 0: every instance the random-weight model returns is sent back)")
    add("--out", default=None, help="name of the JSON under bench/results (default exemplar_latency[_cuda])")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the server, in a child process
def _settings(tmp: Path, url: str, spec: dict[str, Any], model_dir: Path) -> Any:
    from engine.settings import ModelSettings, ProposeSettings, Settings

    settings = Settings(data_dir=tmp / "data", database_url=url, media_root=tmp / "media", broker_url=None,
                        model_profile="sam3",  # the checkpoint named below, not the tiny profile's set
                        models=ModelSettings(cache_dir=tmp / "models", device=spec["device"],
                                             propose=ProposeSettings(model=str(model_dir))))
    settings.exemplars.score_threshold = spec["score_threshold"]
    settings.queue.gold_rate = 0.0
    settings.queue.multi_review_rate = 0.0
    # no start-up warm-up: the first request loads the model (timed apart); the warm-up thread's loads ran
    # at the same time as the runner's first load and raced it in transformers' lazy imports (ImportError)
    settings.observability.warm_up = "none"
    return settings


def _seed(settings: Any, images: int, size: tuple[int, int]) -> None:
    """The annotator, and ``images`` stored images with one open correction task each."""
    from engine.db.session import session_scope
    from engine.domain.vocabulary import Role
    from engine.services.users import create_user
    from tests.factories import seed_review_items

    with session_scope(settings.db_url) as s:
        create_user(s, USER, PASSWORD, Role.ANNOTATOR)
        seed_review_items(s, settings.media_path, n_images=images, phrases=("red kite",), size=size,
                          masks_per_pair=2, kinds=("correct",))


def _login(url: str) -> Any:
    import httpx

    client = httpx.Client(base_url=url, timeout=60)
    response = client.post("/api/v1/auth/login", json={"username": USER, "password": PASSWORD})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def _encoded(app: Any) -> int | None:
    """Images the server's exemplar proposer has encoded so far (None before it is loaded); reached through
    the embedded runner's model cache, for this benchmark only."""
    local = getattr(app.state.exemplars, "_local", None)
    cache = getattr(getattr(getattr(local, "context", None), "models", None), "_models", {})
    proposer = cache.get("exemplar_proposer")
    return getattr(proposer, "encoded", None)


def _worker_s(url: str, request_id: int) -> float | None:
    from engine.db.models import ExemplarRequest
    from engine.db.session import session_scope

    with session_scope(url) as s:
        row = s.get(ExemplarRequest, request_id)
        if row is None or row.started_at is None or row.finished_at is None:
            return None
        return (row.finished_at - row.started_at).total_seconds()


def one_request(client: Any, task_id: int, boxes: list[list[float]], labels: list[int]) -> dict[str, Any]:
    """POST the boxes, poll until the request ends; seconds from before the POST."""
    started = time.perf_counter()
    response = client.post(f"/api/v1/tasks/{task_id}/exemplars", json={"boxes": boxes, "labels": labels})
    response.raise_for_status()
    request_id, state, answer, polls = response.json()["request_id"], response.json()["state"], {}, 0
    while state not in ("done", "failed"):
        if time.perf_counter() - started > REQUEST_TIMEOUT_S:
            state = "timed out"
            break
        time.sleep(POLL_S)
        got = client.get(f"/api/v1/exemplars/{request_id}")
        got.raise_for_status()
        answer, polls = got.json(), polls + 1
        state = answer["state"]
    return {"request_id": request_id, "state": state, "seconds": time.perf_counter() - started, "polls": polls,
            "masks": len(answer.get("masks") or []), "error": answer.get("error"), "boxes": len(boxes)}


def _box_set(r: int, size: tuple[int, int]) -> tuple[list[list[float]], list[int]]:
    width, height = size
    chosen = BOXES[:1 + r % len(BOXES)]
    return ([[x0 * width, y0 * height, x1 * width, y1 * height] for (x0, y0, x1, y1), _ in chosen],
            [label for _, label in chosen])


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import migrations
    from bench.active_models import ensure, parameters
    from bench.video_api import Server
    from dataengine.serve import create_app

    torch.set_num_threads(spec["threads"])
    model_dir, built_s = ensure(f"sam3-{spec['config']}")
    size = (int(spec["size"][0]), int(spec["size"][1]))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_exemplar_") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'bench.db'}"
        migrations.upgrade(url)
        settings = _settings(tmp, url, spec, model_dir)
        _seed(settings, 1 + spec["images"], size)
        app = create_app(settings)
        with Server(app) as server:
            client = _login(server.url)
            try:
                for i in range(1 + spec["images"]):
                    leased = client.post("/api/v1/tasks/next", json={"kinds": ["correct"]})
                    leased.raise_for_status()
                    task_id = leased.json()["id"]
                    for r in range(1 + (0 if i == 0 else spec["repeats"])):
                        before = _encoded(app) or 0
                        run = one_request(client, task_id, *_box_set(r, size))
                        run.update(phase="load" if i == 0 else "cold" if r == 0 else "warm", image=i,
                                   encoded=(_encoded(app) or 0) - before, worker_s=_worker_s(url, run["request_id"]))
                        runs.append(run)
                        if run["state"] != "done":
                            raise RuntimeError(f"exemplar request {run['request_id']} ended {run['state']}: "
                                               f"{run['error']}")
                    client.post(f"/api/v1/tasks/{task_id}/release", json={"skip": True}).raise_for_status()
            finally:
                client.close()
    out: dict[str, Any] = {"config": spec["config"], "parameters": parameters(model_dir), "device": spec["device"],
                           "threads": spec["threads"], "size": list(size), "build_s": built_s, "runs": runs,
                           "peak_rss_mb": hwm_mb()}
    if spec["device"].startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    for phase in ("cold", "warm"):
        mine = [r for r in runs if r["phase"] == phase]
        out[phase] = {"n": len(mine), **_stats([r["seconds"] for r in mine], "s"),
                      **_stats([r["worker_s"] for r in mine if r["worker_s"] is not None], "worker_s"),
                      "masks": statistics.median(r["masks"] for r in mine) if mine else None,
                      "encoded": sum(r["encoded"] for r in mine)}
    out["load_request_s"] = runs[0]["seconds"]
    if out["cold"].get("median_s") and out["warm"].get("median_s"):
        out["cold_over_warm"] = out["cold"]["median_s"] / out["warm"]["median_s"]
    return out


def _stats(values: list[float], suffix: str) -> dict[str, float | None]:
    if not values:
        return {f"median_{suffix}": None, f"p90_{suffix}": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]  # nearest rank: few samples
    return {f"median_{suffix}": statistics.median(values), f"p90_{suffix}": p90}


# ----------------------------------------------------------------------------- the parent
def print_table(results: list[dict[str, Any]], device: str) -> None:
    rows = []
    for r in results:
        label = f"{r['config']} ({r['parameters'] / 1e6:.2f} M)"
        for phase in ("cold", "warm"):
            p = r[phase]
            rows.append([label, "cold (features computed)" if phase == "cold" else "warm (features cached)", p["n"],
                         fmt(p["median_s"], 3), fmt(p["p90_s"], 3), fmt(p["median_worker_s"], 3),
                         fmt(p["masks"], 0), p["encoded"],
                         f"{r['cold_over_warm']:.2f}x" if phase == "cold" and r.get("cold_over_warm") else ""])
            label = ""
    print(format_table(["config (params)", "request", "n", "median s", "p90 s", "worker median s", "masks",
                        "images encoded", "cold / warm"], rows, left=2,
                       title=f"\nExemplar re-proposal latency over HTTP ({device}; POST → done; random weights: "
                             "only the latency is meaningful)"))
    for r in results:
        print(f"{r['config']}: first request (loads the model) {r['load_request_s']:.2f} s; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB" + (f", GPU peak {r['gpu_peak_mb']:.0f} MB"
                                                      if r.get("gpu_peak_mb") else ""))


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
    print(f"Exemplar latency over HTTP: device {device}, {args.threads} threads, {width}x{height} images, "
          f"score threshold {args.score_threshold}{' (quick)' if args.quick else ''}", flush=True)
    started = time.monotonic()
    results = []
    for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
        if config not in PLAN:
            raise SystemExit(f"unknown config {config!r}: one of {', '.join(PLAN)}")
        images, repeats = PLAN["tiny" if device.startswith("cuda") else config][int(args.quick)]
        spec = {"config": config, "device": device, "threads": args.threads, "size": [width, height],
                "images": args.images or images, "repeats": args.repeats or repeats,
                "score_threshold": args.score_threshold}
        busy = wait_for_quiet(timeout_s=args.settle) if args.settle > 0 else None
        print(f"  running {config} ({spec['images']} images, {spec['repeats']} warm requests each) ...", flush=True)
        result = run_child(MODULE, spec, f"exemplar latency {config}")
        result["busy_cores_before"] = busy
        results.append(result)
    print_table(results, device)
    name = args.out or ("exemplar_latency" if device == "cpu" else f"exemplar_latency_{device.split(':')[0]}")
    path = write_json(name, {"benchmark": "exemplar_latency", "device": device, "quick": args.quick,
                             "results": results, "environment": environment(), "argv": sys.argv[1:],
                             "elapsed_s": round(time.monotonic() - started, 1),
                             "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
