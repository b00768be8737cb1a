"""Tiny random-weight models of the real annotator architectures, built offline.

The proposer (SAM 3), the click-to-segment tool (SAM 3 tracker) and the AI verifier (Llama 3.2 Vision)
load real checkpoints with ``from_pretrained(path, local_files_only=True)``. Those checkpoints are large
and cannot be downloaded here, so tests and the demo use *tiny* models of exactly the same
architectures, with random weights and real processors, written to disk with ``save_pretrained`` — a
directory built here loads through the very same code path as a real checkpoint.

Nothing in this module touches the network: tokenizers are built in memory (byte-level vocabularies,
so any text tokenizes) and every config is spelled out.

Public API:

- :func:`build_tiny_sam3` — ``Sam3Model`` + ``Sam3Processor`` (112 px images, 16 queries, 0.26 M params).
- :func:`build_tiny_mllama` — ``MllamaForConditionalGeneration`` + ``MllamaProcessor`` with a Llama 3.2
  Vision style chat template; "Yes"/"No"/"yes"/"no" and "A".."F" are single tokens.
- :func:`build_tiny_sam3_tracker` — ``Sam3TrackerModel`` + ``Sam3TrackerProcessor``.
- :func:`build_mid_sam3` — a ~105 M parameter ``Sam3Model`` at the real 1008 px geometry, for benchmarks.
- :func:`build_tiny_sam3_video` — ``Sam3VideoModel`` + ``Sam3VideoProcessor`` (masklet proposals on video).
- :func:`build_tiny_sam3_tracker_video` — ``Sam3TrackerVideoModel`` + ``Sam3TrackerVideoProcessor`` (click and
  propagate on video).
- :func:`build_mid_sam3_video` — a ~120 M parameter ``Sam3VideoModel`` at 1008 px, for benchmarks.
- :func:`ensure_tiny_models` — build the tiny models once into a cache directory (atomic, idempotent).

Every built directory holds a marker file :data:`MARKER_FILE` (``dataengine_model.json``) saying which
builder made it, that its weights are random, and the :data:`FORMAT_VERSION`.

transformers is imported lazily (the first import of a model class costs seconds), so importing this
module is cheap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from annotators.tiny.mllama import (
    MLLAMA_SINGLE_TOKEN_WORDS,
    TINY_MLLAMA_CHAT_TEMPLATE,
    TINY_MLLAMA_IMAGE_SIZE,
    build_tiny_mllama,
    tiny_mllama_config,
)
from annotators.tiny.sam3 import (
    MID_SAM3_IMAGE_SIZE,
    TINY_SAM3_IMAGE_SIZE,
    build_mid_sam3,
    build_tiny_sam3,
    build_tiny_sam3_tracker,
    mid_sam3_config,
    tiny_sam3_config,
    tiny_sam3_tracker_config,
)
from annotators.tiny.sam3_video import (
    OBJECT_SCORE_BIAS,
    build_mid_sam3_video,
    build_tiny_sam3_tracker_video,
    build_tiny_sam3_video,
    mid_sam3_video_config,
    tiny_sam3_tracker_video_config,
    tiny_sam3_video_config,
)
from annotators.tiny.saving import FORMAT_VERSION, MARKER_FILE, read_marker

__all__ = [
    "FORMAT_VERSION",
    "MARKER_FILE",
    "MLLAMA_SINGLE_TOKEN_WORDS",
    "OBJECT_SCORE_BIAS",
    "TINY_MLLAMA_CHAT_TEMPLATE",
    "TINY_MLLAMA_IMAGE_SIZE",
    "TINY_SAM3_IMAGE_SIZE",
    "MID_SAM3_IMAGE_SIZE",
    "build_mid_sam3",
    "build_mid_sam3_video",
    "build_tiny_mllama",
    "build_tiny_sam3",
    "build_tiny_sam3_tracker",
    "build_tiny_sam3_tracker_video",
    "build_tiny_sam3_video",
    "ensure_tiny_models",
    "mid_sam3_config",
    "mid_sam3_video_config",
    "read_marker",
    "tiny_mllama_config",
    "tiny_sam3_config",
    "tiny_sam3_tracker_config",
    "tiny_sam3_tracker_video_config",
    "tiny_sam3_video_config",
]


_TINY_BUILDERS: dict[str, tuple[str, Callable[[Path, int], Path]]] = {
    "sam3": ("tiny-sam3", build_tiny_sam3),
    "mllama": ("tiny-mllama", build_tiny_mllama),
    "sam3_tracker": ("tiny-sam3-tracker", build_tiny_sam3_tracker),
    "sam3_video": ("tiny-sam3-video", build_tiny_sam3_video),
    "sam3_tracker_video": ("tiny-sam3-tracker-video", build_tiny_sam3_tracker_video),
}


def _is_current(model_dir: Path, builder: str) -> bool:
    marker = read_marker(model_dir)
    return marker is not None and marker.get("builder") == builder and marker.get("format") == FORMAT_VERSION


def _build_atomically(final: Path, builder: str, build: Callable[[Path, int], Path]) -> None:
    """Build into a temporary sibling directory, then rename it into place.

    A stale directory (no marker, another format) is moved aside and removed. If another process
    renamed a current build into place first, ours is discarded.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
    try:
        build(tmp, 0)
        tmp.chmod(0o755)  # mkdtemp creates 0700; the cache is read by other processes and users
        if final.exists() and not _is_current(final, builder):
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=final.parent))
            os.replace(final, stale / final.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_current(final, builder):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_tiny_models(cache_dir: Path) -> dict[str, Path]:
    """Build each tiny model (seed 0) once into ``cache_dir/<name>`` and return their paths.

    Returns ``{"sam3": ..., "mllama": ..., "sam3_tracker": ..., "sam3_video": ..., "sam3_tracker_video": ...}``.
    A directory whose marker names the right builder and the current :data:`FORMAT_VERSION` is reused
    untouched; otherwise the model is built into a temporary directory inside ``cache_dir`` and renamed
    into place, so a reader never sees a half-written model.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, (builder, build) in _TINY_BUILDERS.items():
        final = cache_dir / name
        if not _is_current(final, builder):
            _build_atomically(final, builder, build)
        paths[name] = final
    return paths
