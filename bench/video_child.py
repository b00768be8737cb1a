"""The video benchmark's measurements, each run in a fresh child process (``python -m bench.video
--_child SPEC``), so one run's model, caches and peak RSS never colour the next one's figures.

* ``throughput``: frames/s of masklet proposal: the video model (``MaskletProposer.propose_video``,
  detection + tracking, all phrases in one session) or the image model (``Sam3Proposer.propose`` on
  every frame, all phrases against one vision encoding per frame);
* ``rss``: the tiny video proposer over N frames, the RSS sampled along the way and the peak (VmHWM);
* ``click``: the video tracker (``VideoTracker.track``) clicked on N frames: time to the clicked frame's
  mask and to the first propagated frame.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench._common import hwm_mb, machine_cpu_s, median, proc_status_kb
from bench.video_frames import PHRASES, StreamedFrames, render, shape_box
from bench.video_models import (
    ensure,
    load_image_proposer,
    load_video_proposer,
    load_video_tracker,
    model_of,
    parameters,
)


def rss_mb() -> float:
    kb = proc_status_kb(os.getpid(), "VmRSS")
    return round(kb / 1024, 1) if kb is not None else 0.0


class Meter:
    """Wall and CPU seconds of this process over a run, and the cores other processes used meanwhile
    (the machine is shared: a figure taken while others were busy says so)."""

    def __enter__(self) -> Meter:
        self.wall, self.cpu, self.machine = time.perf_counter(), time.process_time(), machine_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.machine = machine_cpu_s() - self.machine

    def figures(self) -> dict[str, Any]:
        others = max(0.0, (self.machine - self.cpu) / self.wall) if self.wall else None
        return {"cpu_s": round(self.cpu, 2), "other_processes_cores": round(others, 2) if others is not None else None}


def _setup(spec: dict[str, Any]) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(int(spec["threads"]))
    return torch


def _sync(torch: Any, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _gpu_peak_mb(torch: Any, device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _load(spec: dict[str, Any]) -> tuple[Any, float, Path]:
    key = f"{spec['way']}-{spec['config']}"
    path, _ = ensure(Path(spec["cache_dir"]), key)
    started = time.perf_counter()
    if spec["way"] != "video":
        adapter = load_image_proposer(path, spec["device"], spec["score_threshold"])
        return adapter, time.perf_counter() - started, path
    adapter = load_video_proposer(path, spec["device"], spec["score_threshold"], spec["window"], spec["overlap"])
    load_s = time.perf_counter() - started
    width, height = spec["size"]
    spec["detection_threshold"] = give_objects(adapter, int(spec.get("video_objects", 0)), render(0, width, height),
                                               PHRASES[: spec["phrases"]])
    return adapter, load_s, path


def count_tracked(adapter: Any) -> list[int]:
    """Instrument the video proposer's processor: per processed frame, how many objects the model
    tracked before the proposer's score threshold (random weights score low: the objects out can be
    none while the tracker still carries its objects frame to frame)."""
    counts: list[int] = []
    post = adapter.processor.postprocess_outputs

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = post(*args, **kwargs)
        counts.append(len(result["object_ids"]))
        return result

    adapter.processor.postprocess_outputs = counted
    return counts


def give_objects(adapter: Any, objects: int, frame: Any, phrases: list[str]) -> float | None:
    """Random weights score every detection low, so a checkpoint with the real detection thresholds
    (the mid config) tracks nothing and its tracker idles. With ``objects`` > 0 and random weights, the
    detection thresholds drop to the ``objects``-th best score of the phrases on ``frame`` (the
    detector run once, untimed) and the model keeps at most ``objects`` objects, as the tiny config does:
    the tracker carries that many, as on a scene with that many instances. Returns the threshold set."""
    model = adapter.model
    if objects <= 0 or not adapter.stamp.random_weights:
        return None
    torch, proc, detector = adapter.torch, adapter.processor, model.detector_model
    pixels = proc.image_processor(images=frame, return_tensors="pt")["pixel_values"].to(adapter.device)
    probs = []
    with torch.inference_mode():
        vision = detector.get_vision_features(pixel_values=pixels)
        for phrase in phrases:
            tokens = proc.tokenizer(phrase, padding="max_length", max_length=32, return_tensors="pt").to(adapter.device)
            out = detector(vision_embeds=vision, input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            probs.append((out.pred_logits.sigmoid() * out.presence_logits.sigmoid()).flatten())
    ranked = torch.cat(probs).sort(descending=True).values
    threshold = float(ranked[min(objects, len(ranked)) - 1]) * 0.999
    model.score_threshold_detection = model.new_det_thresh = min(threshold, model.score_threshold_detection)
    model.max_num_objects = objects
    return float(model.score_threshold_detection)


def _run_video(adapter: Any, frames: StreamedFrames, phrases: list[str]) -> dict[str, Any]:
    """Consume ``propose_video``; the objects are counted and dropped (as the stage encodes and drops them)."""
    tracked = count_tracked(adapter)
    started = time.perf_counter()
    first, seen, objects, ids = None, 0, 0, set()
    for out in adapter.propose_video(frames, phrases):
        if first is None:
            first = time.perf_counter() - started
        seen += 1
        objects += len(out.objects)
        ids.update(o.object_id for o in out.objects)
    seconds = time.perf_counter() - started
    del adapter.processor.postprocess_outputs  # the instance's wrapper: the class's method again
    return {"seconds": seconds, "first_frame_s": first, "frames_out": seen, "objects": objects,
            "object_ids": len(ids), "tracked_per_frame": sum(tracked) / len(tracked) if tracked else None}


def _run_image(adapter: Any, frames: StreamedFrames, phrases: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    first, objects = None, 0
    for index in range(frames.frame_count):
        per_phrase = adapter.propose(frames.frame(index), phrases)
        objects += sum(len(p) for p in per_phrase)
        if first is None:
            first = time.perf_counter() - started
    return {"seconds": time.perf_counter() - started, "first_frame_s": first, "frames_out": frames.frame_count,
            "objects": objects, "object_ids": None, "tracked_per_frame": None}


def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    torch = _setup(spec)
    adapter, load_s, path = _load(spec)
    phrases = PHRASES[: spec["phrases"]]
    width, height = spec["size"]
    run = _run_video if spec["way"] == "video" else _run_image
    with torch.inference_mode():
        warm = run(adapter, StreamedFrames(spec["warmup"], width, height), phrases)
        _sync(torch, spec["device"])
        frames = StreamedFrames(spec["frames"], width, height)
        with Meter() as meter:
            result = run(adapter, frames, phrases)
            _sync(torch, spec["device"])
    return {**spec, "path": str(path), "parameters": parameters(model_of(adapter)), "load_s": round(load_s, 2),
            "warmup_s": round(warm["seconds"], 3), **result, **meter.figures(),
            "frames_per_cpu_s": spec["frames"] / meter.cpu if meter.cpu else None,
            "frames_per_s": spec["frames"] / result["seconds"] if result["seconds"] else None,
            "frame_requests": frames.requests, "peak_rss_mb": hwm_mb(),
            "gpu_peak_mb": _gpu_peak_mb(torch, spec["device"])}


def rss(spec: dict[str, Any]) -> dict[str, Any]:
    """RSS along a run of the tiny video proposer: after load, after a warm-up window, every
    ``sample_every`` frames, and the peak (VmHWM) before and after the measured run."""
    torch = _setup(spec)
    adapter, load_s, path = _load({**spec, "way": "video"})
    phrases = PHRASES[: spec["phrases"]]
    width, height = spec["size"]
    after_load = rss_mb()
    with torch.inference_mode():
        _run_video(adapter, StreamedFrames(spec["warmup"], width, height), phrases)
        peak_before = hwm_mb()
        after_warmup = rss_mb()
        frames = StreamedFrames(spec["frames"], width, height)
        samples: list[tuple[int, float]] = []
        with Meter() as meter:
            for out in adapter.propose_video(frames, phrases):
                if out.frame_index % spec["sample_every"] == 0 or out.frame_index == spec["frames"] - 1:
                    samples.append((out.frame_index, rss_mb()))
    peak_after = hwm_mb()
    return {**spec, "path": str(path), "parameters": parameters(model_of(adapter)), "load_s": round(load_s, 2),
            "rss_after_load_mb": after_load, "rss_after_warmup_mb": after_warmup,
            "peak_before_run_mb": round(peak_before or 0.0, 1), "peak_mb": round(peak_after or 0.0, 1),
            "rss_samples": samples, "seconds": round(meter.wall, 2), **meter.figures(),
            "frame_requests": frames.requests,
            "gpu_peak_mb": _gpu_peak_mb(torch, spec["device"])}


def _click_point(frame_index: int, width: int, height: int) -> tuple[float, float, int]:
    """A positive click on the red circle's centre."""
    from bench.video_frames import SHAPES

    x0, y0, x1, y1 = shape_box(SHAPES[0], frame_index, width, height)
    return ((x0 + x1) / 2) % width, ((y0 + y1) / 2) % height, 1


def _one_click(tracker: Any, frames: StreamedFrames, frame_index: int, window: tuple[int, int]) -> dict[str, Any]:
    point = _click_point(frame_index, *frames.size)
    started = time.perf_counter()
    times: list[float] = []
    order: list[int] = []
    for out in tracker.track(frames, frame_index, [point], window=window):
        times.append(time.perf_counter() - started)
        order.append(out.frame_index)
    return {"frame_index": frame_index, "window": list(window), "clicked_frame_s": times[0] if times else None,
            "first_propagated_s": times[1] if len(times) > 1 else None, "all_frames_s": times[-1] if times else None,
            "frames_out": len(times), "first_two": order[:2]}


def click(spec: dict[str, Any]) -> dict[str, Any]:
    """The tracker clicked on ``clicks`` frames spread over the video; the window is the product's
    (``window`` frames centred on the click, clipped to the video)."""
    torch = _setup(spec)
    path, _ = ensure(Path(spec["cache_dir"]), "tracker-tiny")
    started = time.perf_counter()
    tracker = load_video_tracker(path, spec["device"])
    load_s = time.perf_counter() - started
    width, height = spec["size"]
    frames = StreamedFrames(spec["frames"], width, height)
    n, half = spec["frames"], spec["window"] // 2
    with torch.inference_mode():
        _one_click(tracker, frames, 0, (0, min(n - 1, spec["window"] - 1)))  # warm-up
        runs = []
        with Meter() as meter:
            for k in range(spec["clicks"]):
                f = (k * 37 + n // 3) % n
                runs.append(_one_click(tracker, frames, f, (max(0, f - half), min(n - 1, f + half))))
    return {**meter.figures(), **spec, "path": str(path), "parameters": parameters(model_of(tracker)),
            "load_s": round(load_s, 2), "clicks_run": runs,
            "median_clicked_frame_s": median(r["clicked_frame_s"] for r in runs),
            "median_first_propagated_s": median(r["first_propagated_s"] for r in runs),
            "median_all_frames_s": median(r["all_frames_s"] for r in runs),
            "peak_rss_mb": hwm_mb(), "gpu_peak_mb": _gpu_peak_mb(torch, spec["device"])}


PHASES = {"throughput": throughput, "rss": rss, "click": click}
