"""The active-engine benchmarks' models (exemplar latency, embedding throughput): random-weight checkpoints
of the real architectures, built offline once into bench/results/cache and loaded through the product's
adapters (the same ``from_pretrained(dir)`` path as a real checkpoint).

* ``sam3-tiny``: ``annotators.tiny.build_tiny_sam3`` (the tests' SAM 3: 112 px input, 0.26 M parameters);
* ``sam3-mid``: ``annotators.tiny.build_mid_sam3`` (~105 M parameters at the real 1008 px geometry; the
  video benchmark's ``mid-sam3`` folder, shared);
* ``dinov2-tiny``: a 2-layer, 32-wide ``Dinov2Model`` (224 px crop) — the dedicated embedder's code path;
* ``dinov2-small``: ``Dinov2Model`` with DINOv2 ViT-S/14's geometry (384 wide, 12 layers, 6 heads,
  224 px crop: ~22 M parameters) — what a dedicated embedder costs per image.

Their outputs are noise: only their cost is meaningful.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR, build_dir_atomically

CACHE_DIR = RESULTS_DIR / "cache"
#: (hidden size, layers, attention heads)
DINOV2_SIZES: dict[str, tuple[int, int, int]] = {"dinov2-tiny": (32, 2, 2), "dinov2-small": (384, 12, 6)}


def _build_tiny_sam3(out: Path, seed: int) -> Path:
    from annotators.tiny import build_tiny_sam3

    return build_tiny_sam3(out, seed)


def _dinov2_builder(name: str) -> Callable[[Path, int], Path]:
    def build(out: Path, seed: int) -> Path:
        """A random-weight ``Dinov2Model`` with DINOv2's image processor settings (resize the short side to
        256, centre-crop 224, ImageNet normalisation), saved with the builder's marker."""
        from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

        from annotators.tiny.saving import save, seeded

        hidden, layers, heads = DINOV2_SIZES[name]
        config = Dinov2Config(image_size=518, patch_size=14, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, mlp_ratio=4)
        processor = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                      do_center_crop=True, do_convert_rgb=True,
                                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
        with seeded(seed):
            model = Dinov2Model(config).eval()
        return save(out, model, processor, name, seed)

    return build


def ensure(key: str, cache_dir: Path = CACHE_DIR) -> tuple[Path, float]:
    """The model's directory, built first when missing (temporary sibling, then rename).
    Returns (path, seconds spent building; 0 when it was there)."""
    if key == "sam3-mid":
        from bench.video_models import ensure as ensure_video_bench_model

        return ensure_video_bench_model(cache_dir, "image-mid")
    from annotators.tiny import read_marker

    builders: dict[str, tuple[str, Callable[[Path, int], Path]]] = {
        "sam3-tiny": ("tiny-sam3", _build_tiny_sam3),
        **{name: (name, _dinov2_builder(name)) for name in DINOV2_SIZES}}
    name, build = builders[key]
    final = Path(cache_dir) / name
    marker = read_marker(final)
    if marker and marker.get("builder") == name:
        return final, 0.0
    print(f"building {name} into {final} ...", flush=True)
    started = time.perf_counter()
    build_dir_atomically(final, lambda tmp: build(tmp, 0), prefix=f".{name}.build-")
    return final, time.perf_counter() - started


def parameters(model_dir: Path) -> int:
    """Parameters of a saved checkpoint, read from its safetensors headers (nothing is loaded)."""
    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header: dict[str, Any] = json.loads(handle.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= int(dim)
                total += count
    return total
