"""SAM 3 on video: masklet proposal frames/s (video tracking vs the image model on every frame), peak RSS
at 100 and 1,000 frames, and the page's time from a click to the first propagated frame.

    python -m bench.video [--device cpu|cuda] [--quick] [--no-mid] [--mid-frames 100] [--clicks 7]

Workload: a synthetic video of two moving shapes (``bench/video_frames.py``), drawn one frame at a time
by a streaming ``FrameSource`` (nothing kept), ``--size`` pixels (default 320x240), ``--phrases`` noun
phrases (default 2: "red circle", "blue square"). Random-weight checkpoints of the real architectures,
built once into bench/results/cache and loaded through the product's adapters. Random weights score
every detection low: the tiny video config keeps up to 4 objects at any score, and ``--video-objects``
(default 4) makes the mid config do the same, so the tracker carries objects as on a real scene (the
table shows how many it tracked per frame); the proposer's score threshold then drops what scores under it.

1. **Throughput** (frames/s, after a warm-up run): ``annotators.sam3_video.Sam3VideoProposer.propose_video``
   (one session per window of ``--window`` frames, all phrases as prompts, detection + tracking,
   identities stitched across windows) against ``annotators.sam3.Sam3Proposer.propose`` on every frame
   (the image model of the same size: one vision encoding per frame, every phrase decoded against it,
   no identities; tiny: the tiny video model's own detector saved as an image checkpoint; mid: the mid
   image config, which is the mid video model's detector config), side by side with their ratio; on the
   tiny config (``--tiny-frames``, default 100) and the ~100 M parameter config (``--mid-frames``,
   default 100).
2. **Peak RSS** of the tiny video proposer over 100 and 1,000 frames (``--rss-frames``), each in a
   fresh process: VmHWM of the whole run, and the RSS sampled every 50 frames; the ratio of the two
   peaks says whether memory stays flat in the number of frames.
3. **Click to first propagated frame**: through the page's API (``POST /api/video/tasks/{id}/track``,
   then ``GET /api/video/track/{id}?after=`` polled until a frame other than the clicked one arrives;
   the embedded runner and the tiny video tracker; ``bench/video_api.py``) when that API is in this
   checkout, and always the tracker call itself (``Sam3VideoTracker.track``: time to the clicked
   frame's mask and to the first propagated frame); medians over ``--clicks`` clicks.

Each measurement runs in a fresh child process; torch uses ``--threads`` threads (default 1). Text and
JSON go to stdout and bench/results/video[_cuda].json. A measurement, never a pass/fail test.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench._common import child_parser, environment, run_child, wait_for_quiet, write_json
from bench.video_report import print_tables

MODULE = "bench.video"


def parse_args(argv: list[str] | None) -> Any:
    from bench._common import RESULTS_DIR

    parser = child_parser(MODULE, __doc__ or "")
    add = parser.add_argument
    add("--device", default="cpu", help="torch device of every model: cpu or cuda (default cpu)")
    add("--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a shared machine two threads that wait on each other spin, and a "
             "busy neighbour made a 2-thread run 10x slower; the GPU script passes the core count)")
    add("--quick", action="store_true", help="fewer frames and clicks: tiny 32 frames, mid 4, 3 clicks")
    add("--tiny-frames", type=int, default=None, help="frames of the tiny throughput runs (default 100; quick 32)")
    add("--mid-frames", type=int, default=None, help="frames of the ~100 M config runs (default 100; quick 4)")
    add("--no-mid", action="store_true", help="skip the ~100 M parameter config")
    add("--no-tiny", action="store_true", help="skip the tiny config's throughput runs")
    add("--phases", default="throughput,rss,click", help="which measurements (default throughput,rss,click)")
    add("--rss-frames", default="100,1000", help="frame counts of the RSS runs (default 100,1000)")
    add("--clicks", type=int, default=None, help="clicks of the click-latency runs (default 7; quick 3)")
    add("--click-frames", type=int, default=200, help="frames of the clicked video (default 200)")
    add("--no-api", action="store_true", help="measure the click on the tracker only, not through the API")
    add("--phrases", type=int, default=2, help="noun phrases per video (default 2)")
    add("--size", default="320x240", help="frame size WxH (default 320x240)")
    add("--window", type=int, default=None, help="frames per session window (default: settings.video)")
    add("--overlap", type=int, default=None, help="frames two windows share (default: settings.video)")
    add("--score-threshold", type=float, default=None, help="(default: settings.video.score_threshold)")
    add("--video-objects", type=int, default=4,
        help="random weights only: the video model tracks this many objects (detection thresholds 0, at most this "
             "many objects; the tiny config's own setting), so the tracker works as on a scene with that many "
             "instances; 0: the checkpoint's thresholds (the mid config then tracks nothing)")
    add("--out", default=None, help="name of the JSON under bench/results (default video, or video_cuda)")
    add("--cache-dir", default=str(RESULTS_DIR / "cache"), help="where the built models are kept")
    return parser.parse_args(argv)


def base_spec(args: Any) -> dict[str, Any]:
    from engine.video_settings import VideoSettings

    video = VideoSettings()
    width, height = (int(v) for v in args.size.lower().split("x"))
    return {"device": args.device, "threads": args.threads, "cache_dir": args.cache_dir, "size": [width, height],
            "phrases": args.phrases, "video_objects": args.video_objects, "window": args.window or video.window_frames,
            "overlap": args.overlap or video.window_overlap,
            "score_threshold": video.score_threshold if args.score_threshold is None else args.score_threshold}


def child(what: str, spec: dict[str, Any], settle: float) -> dict[str, Any]:
    busy = wait_for_quiet(timeout_s=settle) if settle > 0 else None
    label = f"{spec['phase']} {spec.get('way', '')} {spec.get('config', '')} {spec.get('frames', '')} frames"
    print(f"  running {label.strip()} ...", flush=True)
    started = time.perf_counter()
    result = run_child(MODULE, spec, what)
    result["busy_cores_before"] = busy
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def throughput_runs(args: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.video_models import available

    plan = [] if args.no_tiny else [("tiny", args.tiny_frames or (32 if args.quick else 100))]
    if not args.no_mid:
        plan.append(("mid", args.mid_frames or (4 if args.quick else 100)))
    out = []
    for config, frames in plan:
        for way in ("video", "image"):
            if not available(f"{way}-{config}"):
                out.append({"phase": "throughput", "config": config, "way": way, "frames": frames,
                            "skipped": f"no builder for the {way} model's {config} config in this checkout"})
                continue
            spec = {**base, "phase": "throughput", "config": config, "way": way, "frames": frames,
                    "warmup": 1 if config == "mid" else 8}
            out.append(child(f"throughput {way} {config}", spec, args.settle))
    return out


def rss_runs(args: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.video_models import available

    counts = [int(c) for c in args.rss_frames.split(",") if c.strip()]
    if not available("video-tiny"):
        return [{"phase": "rss", "frames": n, "skipped": "no tiny video model in this checkout"} for n in counts]
    return [child(f"rss {n} frames", {**base, "phase": "rss", "config": "tiny", "frames": n, "warmup": 8,
                                      "sample_every": 50}, args.settle) for n in counts]


def click_runs(args: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.video_models import available

    clicks = args.clicks or (3 if args.quick else 7)
    if not available("tracker-tiny"):
        return [{"phase": "click", "skipped": "no tiny video tracker in this checkout"}]
    spec = {**base, "config": "tiny", "frames": args.click_frames, "clicks": clicks}
    out = [child("click on the tracker", {**spec, "phase": "click"}, args.settle)]
    if args.no_api:
        out.append({"phase": "api_click", "skipped": "--no-api"})
    else:
        from bench.video_api import api_available

        missing = api_available()
        out.append({"phase": "api_click", "skipped": missing} if missing
                   else child("click through the API", {**spec, "phase": "api_click"}, args.settle))
    return out


def run_child_phase(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["phase"] == "api_click":
        from bench.video_api import api_click

        return api_click(spec)
    from bench.video_child import PHASES

    return PHASES[spec["phase"]](spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        import json

        from bench._common import child_result

        child_result(run_child_phase(json.loads(args._child)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = base_spec(args)
    print(f"SAM 3 on video: device {args.device}, {args.threads} threads, frames {args.size}, "
          f"{args.phrases} phrases, window {base['window']} (overlap {base['overlap']}), "
          f"score threshold {base['score_threshold']}{' (quick)' if args.quick else ''}", flush=True)
    started = time.monotonic()
    phases = {p.strip() for p in args.phases.split(",")}
    runners = {"throughput": throughput_runs, "rss": rss_runs, "click": click_runs}
    results = {name: (run(args, base) if name in phases else []) for name, run in runners.items()}
    print_tables(results, args.device)
    name = args.out or ("video" if args.device == "cpu" else f"video_{args.device.split(':')[0]}")
    path = write_json(name, {
        "benchmark": "video", "settings": base, "quick": args.quick, "results": results,
        "environment": {**environment(), **_torch_env()}, "argv": sys.argv[1:],
        "elapsed_s": round(time.monotonic() - started, 1), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
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
