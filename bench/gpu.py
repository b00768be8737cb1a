"""The GPU benchmark (issue 21 item 5), one command: the real-size random-weight SAM 3, SAM 3 tracker, Llama 3.2
Vision (11 B) and SAM 3 video models built on the GPU, run through the product's adapters.

    python -m bench.gpu [--device cuda] [--budget-s 360] [--only sam3,tracker,mllama,video] [--smoke]

Figures (each after a warm-up, the GPU synchronised around every timed call):

* ``sam3``:    proposal with vision reuse (``annotators.sam3.Sam3Proposer.propose``: the image encoded once, every
  phrase's text features cached): images/s and phrases/s (image × phrase pairs) at ``--phrases`` phrases per
  image, and the naive path (``propose_naive``: one full forward pass per phrase) for the reuse's speed-up;
* ``tracker``: click latency with the image's embedding cached (``Sam3TrackerSegmenter.segment`` on a key already
  embedded: prompt encoder, mask decoder, resize to the image), and the embedding's own cost (the first click);
* ``mllama``:  MV and EV scores per second (``LlamaMaskVerifier.verify_masks``, ``LlamaExhaustivityVerifier.
  verify_pairs``: render, process, one forward pass) at batch sizes ``--batches``; the 11 B model in bf16 only;
* ``video``:   frames/s of masklet proposal (``Sam3VideoProposer.propose_video``, ``--video-frames`` frames, two
  phrases); the detector's thresholds are set from its own scores on the first frame so that a few of the random
  model's queries become objects (with the real thresholds nothing is found and the tracker never runs).

Variants, where they make sense: fp32 weights, bf16 weights, and bf16 with ``torch.compile`` of the part that
dominates (the ViT image encoder; the mask decoder for clicks). Peak GPU memory (``torch.cuda.max_memory_allocated``)
per model and per variant. The models are built with random weights straight on the device
(``bench/gpu_models.py``): no checkpoint is written or read, the adapters get them in place of ``load_pretrained``.

Budget: ``--budget-s`` (default 360) bounds the whole run. Steps run in priority order (every model's bf16 figures
first, then fp32, then the compiled variants); a step whose estimated cost exceeds what is left is skipped and
listed under ``skipped``, and a timed loop stops early when the budget runs out (the figures say how many calls
they cover). A step that fails is recorded with its error and the run goes on (``--strict``: it stops).

``--smoke`` runs the same code paths with the tiny configs of ``annotators.tiny`` on the CPU in seconds (fp32 and
bf16, ``torch.compile`` with the ``eager`` backend): what tests/bench/test_gpu_smoke.py runs so the script cannot rot.

Writes bench/results/gpu.json (``--smoke``: gpu_smoke.json; ``--out`` another path) and a markdown table beside it
(same name, ``.md``), both also copied to ``$OUT`` when it is set. Random weights: only the costs mean anything.
A measurement, never pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR, environment

SECTIONS = ("sam3", "tracker", "mllama", "video")
PHRASES = ("person", "car", "dog", "red umbrella", "traffic light", "bicycle wheel", "window", "tree",
           "coffee cup", "shadow on the wall", "text on a sign", "striped shirt", "cat", "bird", "chair", "sky")


# ============================================================================ the budget
@dataclass
class Budget:
    """Wall-clock budget of the run: steps are skipped when their estimate exceeds what is left."""

    total_s: float
    started: float = field(default_factory=time.monotonic)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def left(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def allows(self, name: str, estimate_s: float) -> bool:
        left = self.left()
        if left >= estimate_s:
            return True
        self.skipped.append({"step": name, "estimate_s": round(estimate_s, 1), "left_s": round(max(left, 0.0), 1)})
        print(f"  skipped {name}: needs ~{estimate_s:.0f} s, {max(left, 0):.0f} s left", flush=True)
        return False


# ============================================================================ device helpers
class Device:
    """The torch device, its synchronisation and its memory counters (all no-ops on the CPU)."""

    def __init__(self, name: str) -> None:
        import torch

        self.torch = torch
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> float | None:
        if not self.cuda:
            return None
        return round(self.torch.cuda.max_memory_allocated() / 2**30, 2)

    def allocated_gb(self) -> float | None:
        if not self.cuda:
            return None
        return round(self.torch.cuda.memory_allocated() / 2**30, 2)

    def free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    def info(self) -> dict[str, Any]:
        torch = self.torch
        out: dict[str, Any] = {"device": self.name, "torch": torch.__version__}
        try:
            import transformers

            out["transformers"] = transformers.__version__
        except ImportError:  # pragma: no cover - a dependency of the project
            pass
        if self.cuda:
            props = torch.cuda.get_device_properties(0)
            out.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
        return out


def timed(device: Device, call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of one call, the device synchronised before and after."""
    device.sync()
    start = time.perf_counter()
    result = call()
    device.sync()
    return time.perf_counter() - start, result


def loop(device: Device, budget: Budget, calls: int, call: Callable[[int], Any], reserve_s: float) -> list[float]:
    """Time ``call(i)`` for i < ``calls``, stopping early when less than ``reserve_s`` of the budget is left
    (at least one call is timed). Returns each call's seconds."""
    times: list[float] = []
    for i in range(calls):
        if times and budget.left() < reserve_s:
            break
        seconds, _ = timed(device, lambda i=i: call(i))  # type: ignore[misc]
        times.append(seconds)
    return times


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {"calls": len(times), "total_s": round(sum(times), 4),
            "median_ms": round(statistics.median(ordered) * 1000, 2) if times else None,
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 2) if times else None}


@contextlib.contextmanager
def given_model(module_name: str, processor: Any, model: Any, device: str) -> Iterator[None]:
    """Hand the adapters of ``module_name`` this in-memory model and processor in place of the checkpoint that
    ``load_pretrained`` would read: the adapter's own constructor and code paths run, nothing is on disk."""
    from annotators.loading import Loaded

    module = importlib.import_module(module_name)
    original = module.load_pretrained

    def loaded(ref: str, processor_cls: Any, model_cls: Any, want: str) -> Loaded:
        return Loaded(ref, processor, model, device)

    module.load_pretrained = loaded
    try:
        yield
    finally:
        module.load_pretrained = original


def compile_module(owner: Any, attribute: str, backend: str) -> None:
    """Replace ``owner.attribute`` (a submodule) by its ``torch.compile`` form."""
    import torch

    setattr(owner, attribute, torch.compile(getattr(owner, attribute), backend=backend, dynamic=False))


def photos(n: int, size: tuple[int, int], seed: int = 9000) -> list[Any]:
    from tests.factories import photo

    return [photo(seed + i, size) for i in range(n)]


# ============================================================================ configuration of a run
@dataclass(frozen=True)
class Plan:
    """Sizes of the workloads and the compile backend (GPU run, or ``--smoke``)."""

    smoke: bool
    image_size: tuple[int, int]
    images: int
    phrases: int
    naive_images: int
    clicks: int
    click_images: int
    batches: tuple[int, ...]
    verifier_queries: int
    video_frames: int
    compile_backend: str
    # estimated seconds per step (build + warm-up + timed loop); compile steps include the compilation
    estimates: dict[str, float]


GPU_ESTIMATES = {"build": 15, "sam3": 25, "sam3-naive": 20, "tracker": 20, "mllama-build": 40, "mllama": 60,
                 "video": 45, "compile": 90, "mllama-compile": 240}
SMOKE_ESTIMATES = dict.fromkeys(GPU_ESTIMATES, 0.0)


def plan_of(args: argparse.Namespace) -> Plan:
    if args.smoke:
        return Plan(True, (160, 120), images=1, phrases=2, naive_images=1, clicks=2, click_images=1, batches=(2,),
                    verifier_queries=2, video_frames=2, compile_backend="eager", estimates=SMOKE_ESTIMATES)
    batches = tuple(int(b) for b in args.batches.split(","))
    return Plan(False, (1024, 768), images=args.images, phrases=args.phrases, naive_images=max(2, args.images // 4),
                clicks=args.clicks, click_images=4, batches=batches, verifier_queries=args.verifier_queries,
                video_frames=args.video_frames, compile_backend=args.compile_backend, estimates=GPU_ESTIMATES)


# ============================================================================ the measurements
class Bench:
    """Runs the sections' steps within the budget and collects their figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.torch = torch
        self.args = args
        self.plan = plan_of(args)
        self.device = Device(args.device)
        self.budget = Budget(args.budget_s)
        self.results: dict[str, Any] = {}
        self.errors: list[dict[str, str]] = []
        self.specs = importlib.import_module("bench.gpu_models").specs(self.plan.smoke)

    def dtype(self, name: str) -> Any:
        return {"fp32": self.torch.float32, "bf16": self.torch.bfloat16}[name]

    def step(self, section: str, name: str, estimate_key: str, run: Callable[[], dict[str, Any] | None]) -> None:
        """Run one step when the budget allows; record its figures (or its error) under ``section``."""
        label = f"{section}/{name}"
        if not self.budget.allows(label, self.plan.estimates.get(estimate_key, 0.0)):
            return
        print(f"- {label} ({self.budget.left():.0f} s left)", flush=True)
        started = time.monotonic()
        try:
            figures = run()
        except Exception as exc:  # noqa: BLE001 - one failed step must not lose the others' figures
            if self.args.strict:
                raise
            self.errors.append({"step": label, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                "traceback": traceback.format_exc()[-4000:]})
            print(f"  FAILED {label}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            figures = None
        self.budget.steps.append({"step": label, "seconds": round(time.monotonic() - started, 2)})
        if figures is not None:
            self.results.setdefault(section, {}).setdefault("variants", {})[name] = figures
            print("  " + json.dumps({k: v for k, v in figures.items() if not isinstance(v, dict | list)}), flush=True)

    # ------------------------------------------------------------------ one model at a time
    @contextlib.contextmanager
    def model(self, section: str, dtype: str) -> Iterator[Any]:
        """The section's model built on the device in ``dtype``; freed afterwards, its build time, parameter
        count and the section's peak GPU memory recorded."""
        from bench.gpu_models import build_on_device, parameters

        self.device.free()
        self.device.reset_peak()
        seconds, model = timed(self.device, lambda: build_on_device(self.specs[section], self.device.name,
                                                                     self.dtype(dtype)))
        record = self.results.setdefault(section, {})
        record.setdefault("parameters", parameters(model))
        record.setdefault("build_s", {})[dtype] = round(seconds, 2)
        record.setdefault("weights_gb", {})[dtype] = self.device.allocated_gb()
        try:
            yield model
        finally:
            peak = self.device.peak_gb()
            if peak is not None:
                record["peak_gb"] = max(record.get("peak_gb") or 0.0, peak)
            del model
            self.device.free()

    def run_sections(self, sections: list[str]) -> None:
        """Priority order: each section's bf16 figures, then the fp32 ones, then the compiled variants."""
        order: list[tuple[str, str, bool]] = []
        for variant in (("bf16", False), ("fp32", False), ("bf16", True)):
            order += [(section, *variant) for section in sections]
        for section, dtype, compiled in order:
            if section == "mllama" and dtype == "fp32":
                continue  # the 11 B model runs in bf16 (as its checkpoint is stored); fp32 would be 43 GB of weights
            if self.plan.smoke and section in ("mllama", "video", "tracker") and (dtype == "fp32" or compiled) \
                    and not (section == "tracker" and compiled):
                continue  # --smoke stays within seconds: the fp32 path once (sam3), compile on sam3 and tracker
            runner = getattr(self, f"run_{section}")
            runner(dtype, compiled)

    # ------------------------------------------------------------------ SAM 3 proposals
    def run_sam3(self, dtype: str, compiled: bool) -> None:
        name = dtype + ("+compile" if compiled else "")
        estimate = "compile" if compiled else "sam3"
        if not self.budget.allows(f"sam3/{name}", self.plan.estimates["build"] + self.plan.estimates[estimate]):
            return
        with self.model("sam3", dtype) as model:
            if compiled:
                compile_module(model, "vision_encoder", self.plan.compile_backend)
            self.step("sam3", name, estimate, lambda: self._sam3_figures(model))
            if dtype == "bf16" and not compiled:
                self.step("sam3", "bf16 naive", "sam3-naive", lambda: self._sam3_naive(model))

    def _proposer(self, model: Any) -> Any:
        from annotators.sam3 import Sam3Proposer

        with given_model("annotators.sam3", self.specs["sam3"].processor(), model, self.device.name):
            return Sam3Proposer("bench-gpu:sam3", score_threshold=0.5, mask_threshold=0.5, device=self.device.name)

    def _sam3_figures(self, model: Any) -> dict[str, Any]:
        plan = self.plan
        proposer = self._proposer(model)
        images = photos(plan.images + 1, plan.image_size)
        phrases = list(PHRASES[:plan.phrases])
        warm_s, _ = timed(self.device, lambda: proposer.propose(images[0], phrases))  # text cache filled here
        counts: list[int] = []

        def one(i: int) -> None:
            out = proposer.propose(images[1 + i], phrases)
            counts.append(sum(len(p) for p in out))

        self.device.reset_peak()
        times = loop(self.device, self.budget, plan.images, one, reserve_s=self._reserve())
        total = sum(times)
        return {"warmup_s": round(warm_s, 2), "images": len(times), "phrases_per_image": len(phrases),
                "images_per_s": round(len(times) / total, 3),
                "phrases_per_s": round(len(times) * len(phrases) / total, 2),
                "per_image": summary(times), "proposals_per_image": round(statistics.mean(counts), 1) if counts else 0,
                "peak_gb": self.device.peak_gb()}

    def _sam3_naive(self, model: Any) -> dict[str, Any]:
        plan = self.plan
        proposer = self._proposer(model)
        images = photos(plan.naive_images + 1, plan.image_size, seed=9500)
        phrases = list(PHRASES[:plan.phrases])
        timed(self.device, lambda: proposer.propose_naive(images[0], phrases[:1]))
        times = loop(self.device, self.budget, plan.naive_images,
                     lambda i: proposer.propose_naive(images[1 + i], phrases), reserve_s=self._reserve())
        total = sum(times)
        reuse = self.results.get("sam3", {}).get("variants", {}).get("bf16", {}).get("phrases_per_s")
        naive = len(times) * len(phrases) / total
        return {"images": len(times), "phrases_per_image": len(phrases), "images_per_s": round(len(times) / total, 3),
                "phrases_per_s": round(naive, 2), "reuse_speedup": round(reuse / naive, 2) if reuse else None}

    # ------------------------------------------------------------------ clicks
    def run_tracker(self, dtype: str, compiled: bool) -> None:
        name = dtype + ("+compile" if compiled else "")
        estimate = "compile" if compiled else "tracker"
        if not self.budget.allows(f"tracker/{name}", self.plan.estimates["build"] + self.plan.estimates[estimate]):
            return
        with self.model("tracker", dtype) as model:
            if compiled:
                compile_module(model, "mask_decoder", self.plan.compile_backend)
            self.step("tracker", name, estimate, lambda: self._click_figures(model))

    def _click_figures(self, model: Any) -> dict[str, Any]:
        import numpy as np

        from annotators.tracker import Sam3TrackerSegmenter

        plan = self.plan
        with given_model("annotators.tracker", self.specs["tracker"].processor(), model, self.device.name):
            segmenter = Sam3TrackerSegmenter("bench-gpu:tracker", embedding_cache_size=plan.click_images + 1,
                                             device=self.device.name)
        images = photos(plan.click_images + 1, plan.image_size, seed=9700)
        width, height = plan.image_size
        rng = np.random.default_rng(0)

        def click(key: int) -> Any:
            x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
            return segmenter.segment(f"image-{key}", lambda: images[key], [(x, y, 1)])

        for _ in range(3):  # warm-up: the first image's embedding and a few clicks on it
            click(0)
        self.device.reset_peak()
        embeds: list[float] = []
        clicks: list[float] = []
        decode: list[float] = []
        for key in range(1, plan.click_images + 1):
            if embeds and self.budget.left() < self._reserve():
                break
            seconds, _ = timed(self.device, lambda key=key: click(key))  # type: ignore[misc]
            embeds.append(seconds)
            per = plan.clicks // plan.click_images or 1
            clicks += loop(self.device, self.budget, per, lambda _i, key=key: click(key),  # type: ignore[misc]
                           reserve_s=self._reserve())
            decode.append(segmenter.last_timing.get("decode_ms", 0.0))
        return {"click_cached": summary(clicks), "first_click_with_embedding": summary(embeds),
                "decode_ms_last": round(statistics.median(decode), 2) if decode else None,
                "cache": segmenter.cache_info(), "peak_gb": self.device.peak_gb()}

    # ------------------------------------------------------------------ MV / EV
    def run_mllama(self, dtype: str, compiled: bool) -> None:
        name = dtype + ("+compile" if compiled else "")
        estimate = "mllama-compile" if compiled else "mllama"
        needs = self.plan.estimates["mllama-build"] + self.plan.estimates[estimate]
        if not self.budget.allows(f"mllama/{name}", needs):
            return
        with self.model("mllama", dtype) as model:
            if compiled:
                compile_module(model.model, "language_model", self.plan.compile_backend)
            self.step("mllama", name, estimate, lambda: self._verifier_figures(model))

    def _verifier_figures(self, model: Any) -> dict[str, Any]:
        import numpy as np

        from annotators.verifiers import LlamaExhaustivityVerifier, LlamaMaskVerifier
        from engine.ports import MaskQuery, PairQuery

        plan = self.plan
        processor = self.specs["mllama"].processor()
        with given_model("annotators.verifiers", processor, model, self.device.name):
            mv = LlamaMaskVerifier("bench-gpu:mllama", device=self.device.name)
            ev = LlamaExhaustivityVerifier("bench-gpu:mllama", device=self.device.name)
        images = photos(4, plan.image_size, seed=9900)
        width, height = plan.image_size
        mask = np.zeros((height, width), dtype=bool)
        mask[height // 4: height // 2, width // 3: 2 * width // 3] = True
        mv_queries = [MaskQuery(images[i % 4], PHRASES[i % len(PHRASES)], mask) for i in range(max(plan.batches))]
        ev_queries = [PairQuery(images[i % 4], PHRASES[i % len(PHRASES)],
                                [(10.0, 10.0, width / 4, height / 4)] * (i % 3)) for i in range(max(plan.batches))]
        out: dict[str, Any] = {}
        self.device.reset_peak()
        for kind, verify, queries in (("mv", mv.verify_masks, mv_queries), ("ev", ev.verify_pairs, ev_queries)):
            for batch in plan.batches:
                if out and self.budget.left() < self._reserve():
                    out[f"{kind}_batch{batch}"] = {"skipped": "budget"}
                    continue
                timed(self.device, lambda verify=verify, queries=queries, batch=batch: verify(queries[:batch]))
                calls = max(1, plan.verifier_queries // batch)
                times = loop(self.device, self.budget, calls,
                             lambda _i, verify=verify, queries=queries, batch=batch: verify(queries[:batch]),
                             reserve_s=self._reserve())
                out[f"{kind}_batch{batch}"] = {"scores_per_s": round(len(times) * batch / sum(times), 2),
                                               "per_call": summary(times)}
        out["peak_gb"] = self.device.peak_gb()
        return out

    # ------------------------------------------------------------------ video
    def run_video(self, dtype: str, compiled: bool) -> None:
        name = dtype + ("+compile" if compiled else "")
        estimate = "compile" if compiled else "video"
        if not self.budget.allows(f"video/{name}", self.plan.estimates["build"] + self.plan.estimates[estimate]):
            return
        # bf16 weights fail in the video session (transformers 5.25 keeps its frames and memories in fp32):
        # bf16 here is fp32 weights under torch.autocast
        autocast = dtype == "bf16"
        name = name.replace("bf16", "bf16 autocast")
        with self.model("video", "fp32" if autocast else dtype) as model:
            if compiled:
                compile_module(model.detector_model, "vision_encoder", self.plan.compile_backend)
            self.step("video", name, estimate,
                      lambda: self._under_autocast(autocast, lambda: self._video_figures(model)))

    def _under_autocast(self, on: bool, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if not on:
            return run()
        kind = "cuda" if self.device.cuda else "cpu"
        with self.torch.autocast(kind, dtype=self.torch.bfloat16):
            return run()

    def _video_figures(self, model: Any) -> dict[str, Any]:
        from annotators.sam3_video import Sam3VideoProposer

        plan = self.plan
        processor = self.specs["video"].processor()
        frames = _Frames(plan.video_frames, plan.image_size)
        phrases = list(PHRASES[:2])
        threshold = None if plan.smoke else self._calibrate(model, processor, frames.frame(0), phrases[0])
        with given_model("annotators.sam3_video", processor, model, self.device.name):
            proposer = Sam3VideoProposer("bench-gpu:video", score_threshold=0.0,
                                         window_frames=max(2, plan.video_frames), window_overlap=0,
                                         device=self.device.name)
        warm = _Frames(2, plan.image_size, seed=8800)
        warm_s, _ = timed(self.device, lambda: list(proposer.propose_video(warm, phrases)))
        self.device.reset_peak()
        seconds, out = timed(self.device, lambda: list(proposer.propose_video(frames, phrases)))
        objects = [len(f.objects) for f in out]
        return {"warmup_s": round(warm_s, 2), "frames": len(out), "phrases": len(phrases),
                "frames_per_s": round(len(out) / seconds, 3), "seconds": round(seconds, 2),
                "objects_per_frame": round(statistics.mean(objects), 2) if objects else 0,
                "detection_threshold": threshold, "peak_gb": self.device.peak_gb()}

    def _calibrate(self, model: Any, processor: Any, frame: Any, phrase: str, keep: int = 4) -> float:
        """Set the video model's detection thresholds to its detector's ``keep``-th best score on ``frame``, so
        that the random weights yield a few objects (the scores of random weights sit in a narrow band)."""
        torch = self.torch
        inputs = processor.image_processor(images=frame, return_tensors="pt")
        tokens = processor.tokenizer(phrase, padding="max_length", max_length=32, return_tensors="pt")
        detector = model.detector_model
        with torch.inference_mode():
            out = detector(pixel_values=inputs["pixel_values"].to(self.device.name),
                           input_ids=tokens["input_ids"].to(self.device.name),
                           attention_mask=tokens["attention_mask"].to(self.device.name))
            scores = out.pred_logits[0].float().sigmoid()
            if out.presence_logits is not None:
                scores = scores * out.presence_logits[0].float().sigmoid()
        threshold = float(scores.flatten().sort(descending=True).values[min(keep, scores.numel()) - 1]) - 1e-6
        model.score_threshold_detection = threshold
        model.new_det_thresh = threshold
        return round(threshold, 5)

    def _reserve(self) -> float:
        """Budget a timed loop leaves for the rest of the run (the output and the model's release)."""
        return 0.0 if self.plan.smoke else 10.0


class _Frames:
    """A ``FrameSource`` of synthetic photo-like frames, made when asked (nothing kept)."""

    def __init__(self, count: int, size: tuple[int, int], seed: int = 8000) -> None:
        self.frame_count = count
        self.size = size
        self.seed = seed

    def frame(self, index: int) -> Any:
        from tests.factories import photo

        return photo(self.seed + index, self.size)


# ============================================================================ output
def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (one row per model and variant) and the skipped steps."""
    rows = ["| model | variant | figure | value | peak GPU GB |", "| --- | --- | --- | --- | --- |"]
    for section, record in report["results"].items():
        params = record.get("parameters")
        label = f"{section} ({params / 1e6:,.0f} M)" if params else section
        for variant, figures in record.get("variants", {}).items():
            for figure, value in _headline(section, figures):
                rows.append(f"| {label} | {variant} | {figure} | {value} | {figures.get('peak_gb') or '-'} |")
    out = [f"# GPU benchmark ({report['device'].get('gpu', report['device']['device'])})", "", *rows, ""]
    if report["skipped"]:
        out += ["Skipped (budget): " + ", ".join(s["step"] for s in report["skipped"]), ""]
    if report["errors"]:
        out += ["Failed: " + ", ".join(e["step"] + " (" + e["error"][:120] + ")" for e in report["errors"]), ""]
    out.append(f"Total {report['seconds']} s of a {report['budget_s']} s budget. "
               "Random weights: only costs mean anything.")
    return "\n".join(out) + "\n"


def _headline(section: str, figures: dict[str, Any]) -> list[tuple[str, Any]]:
    if section == "sam3":
        pairs = [("images/s", figures.get("images_per_s")), ("phrases/s", figures.get("phrases_per_s"))]
        if figures.get("reuse_speedup"):
            pairs.append(("reuse speed-up", figures["reuse_speedup"]))
        return pairs
    if section == "tracker":
        return [("click ms (cached, median)", figures["click_cached"]["median_ms"]),
                ("click ms (cached, p90)", figures["click_cached"]["p90_ms"]),
                ("first click ms (embedding)", figures["first_click_with_embedding"]["median_ms"])]
    if section == "mllama":
        return [(f"{key.replace('_batch', ' scores/s, batch ')}", value.get("scores_per_s", value.get("skipped")))
                for key, value in figures.items() if isinstance(value, dict)]
    return [("frames/s", figures.get("frames_per_s")), ("objects/frame", figures.get("objects_per_frame"))]


def write(report: dict[str, Any], path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    md = path.with_suffix(".md")
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    md.write_text(markdown(report), encoding="utf-8")
    written = [path, md]
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for file in written:
            shutil.copy(file, Path(out_dir) / file.name)
    return written


# ============================================================================ command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--device", default="cuda", help="torch device (default cuda; --smoke: cpu)")
    add("--budget-s", type=float, default=360.0, help="wall-clock budget of the whole run in seconds (default 360)")
    add("--only", default=",".join(SECTIONS), help=f"sections to run (default {','.join(SECTIONS)})")
    add("--smoke", action="store_true", help="tiny configs on the CPU, in seconds (the test's run)")
    add("--strict", action="store_true", help="stop at the first failed step (default: record it and go on)")
    add("--images", type=int, default=16, help="images timed for proposal (default 16)")
    add("--phrases", type=int, default=8, help="phrases per image (default 8)")
    add("--clicks", type=int, default=40, help="cached clicks timed, over 4 images (default 40)")
    add("--batches", default="1,8,16", help="verifier batch sizes (default 1,8,16)")
    add("--verifier-queries", type=int, default=32, help="verifier queries timed per batch size (default 32)")
    add("--video-frames", type=int, default=24, help="video frames proposed (default 24)")
    add("--compile-backend", default="inductor", help="torch.compile backend (default inductor; --smoke: eager)")
    add("--out", default=None, help="JSON path (default bench/results/gpu.json; --smoke: gpu_smoke.json)")
    args = parser.parse_args(argv)
    if args.smoke and args.device == "cuda":
        args.device = "cpu"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bench = Bench(args)
    if bench.device.cuda and not bench.torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device: run this on a GPU machine (or pass --smoke)")
    if bench.device.cuda:
        bench.torch.backends.cuda.matmul.allow_tf32 = True  # fp32 figures as the product would get them on a GPU
        bench.torch.backends.cudnn.allow_tf32 = True
    print(f"bench.gpu: {', '.join(sections)} on {args.device}, budget {args.budget_s:.0f} s", flush=True)
    bench.run_sections(sections)
    report = {"benchmark": "gpu", "smoke": args.smoke, "device": bench.device.info(), "environment": environment(),
              "budget_s": args.budget_s, "seconds": round(time.monotonic() - bench.budget.started, 1),
              "plan": {k: v for k, v in vars(bench.plan).items() if k != "estimates"},
              "results": bench.results, "skipped": bench.budget.skipped, "steps": bench.budget.steps,
              "errors": bench.errors, "random_weights": True}
    default = RESULTS_DIR / ("gpu_smoke.json" if args.smoke else "gpu.json")
    written = write(report, Path(args.out) if args.out else default)
    print(markdown(report))
    print("wrote " + ", ".join(str(p) for p in written))
    return 1 if args.strict and bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
