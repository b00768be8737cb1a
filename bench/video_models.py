"""The video benchmark's models: random-weight checkpoints of the real architectures, built once into
bench/results/cache and loaded through the product's adapters (the same ``from_pretrained(dir)`` path
as a real checkpoint).

* ``tiny``: the tiny configs of ``annotators.tiny`` (``Sam3VideoModel`` and ``Sam3TrackerVideoModel``:
  112 px input); the tiny video model is wider than the tiny image ``Sam3Model`` (0.26 M), so its image
  counterpart here is its own detector (the ``Sam3Model`` inside it, same weights) saved as an image
  checkpoint with a ``Sam3Processor``: the image model "of the same size";
* ``mid``:  the ~100 M parameter configs (1008 px input, the real detector geometry) of the image model
  and of the video model (whose detector has the image model's config).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import build_dir_atomically

# model key -> (cache folder and builder name, module, builder function)
BUILDERS: dict[str, tuple[str, str, str]] = {
    "image-tiny": ("tiny-sam3-video-detector", "bench.video_models", "build_tiny_video_detector"),
    "image-mid": ("mid-sam3", "annotators.tiny", "build_mid_sam3"),
    "video-tiny": ("tiny-sam3-video", "annotators.tiny.sam3_video", "build_tiny_sam3_video"),
    "video-mid": ("mid-sam3-video", "annotators.tiny.sam3_video", "build_mid_sam3_video"),
    "tracker-tiny": ("tiny-sam3-tracker-video", "annotators.tiny.sam3_video", "build_tiny_sam3_tracker_video"),
}


def builder(key: str) -> tuple[str, Callable[[Path, int], Path]]:
    import importlib

    name, module, function = BUILDERS[key]
    return name, getattr(importlib.import_module(module), function)


def available(key: str) -> bool:
    """Whether the builder of ``key`` is in this checkout (the video models land with issue 18)."""
    try:
        builder(key)
    except (ImportError, AttributeError):
        return False
    return True


def ensure(cache_dir: Path, key: str) -> tuple[Path, float]:
    """The model's directory under ``cache_dir``, built first when missing or stale (temporary
    sibling, then rename). Returns (path, seconds spent building; 0 when it was there)."""
    from annotators.tiny import read_marker

    name, build = builder(key)
    final = cache_dir / name
    marker = read_marker(final)
    if marker and marker.get("builder") == name:
        return final, 0.0
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building {name} into {final} ...", flush=True)
    started = time.perf_counter()
    build_dir_atomically(final, lambda tmp: build(tmp, 0), prefix=f".{name}.build-")
    return final, time.perf_counter() - started


def build_tiny_video_detector(out_dir: Path, seed: int = 0) -> Path:
    """The tiny video model's detector (a ``Sam3Model``, its weights as built with ``seed``) saved as an
    image checkpoint with the tiny ``Sam3Processor`` (112 px, byte-level tokenizer)."""
    from annotators.tiny import TINY_SAM3_IMAGE_SIZE
    from annotators.tiny.sam3 import _sam3_processor
    from annotators.tiny.sam3_video import build_tiny_sam3_video
    from annotators.tiny.saving import save

    with tempfile.TemporaryDirectory() as tmp:
        from transformers import Sam3VideoModel

        video = Sam3VideoModel.from_pretrained(build_tiny_sam3_video(Path(tmp) / "video", seed),
                                               local_files_only=True)
        detector = video.detector_model.eval()
        return save(Path(out_dir), detector, _sam3_processor(TINY_SAM3_IMAGE_SIZE), "tiny-sam3-video-detector", seed)


def parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def load_image_proposer(path: Path, device: str, score_threshold: float) -> Any:
    from annotators.sam3 import Sam3Proposer

    return Sam3Proposer(str(path), score_threshold=score_threshold, mask_threshold=0.5, device=device)


def load_video_proposer(path: Path, device: str, score_threshold: float, window: int, overlap: int) -> Any:
    from annotators.sam3_video import Sam3VideoProposer

    return Sam3VideoProposer(str(path), score_threshold=score_threshold, window_frames=window,
                             window_overlap=overlap, device=device)


def load_video_tracker(path: Path, device: str) -> Any:
    from annotators.tracker_video import Sam3VideoTracker

    return Sam3VideoTracker(str(path), device=device)


def model_of(adapter: Any) -> Any:
    """The torch module behind an adapter (for its parameter count)."""
    return adapter.model
