"""What every tiny model build shares: the marker file, the seeded build, saving model and processor,
and the byte alphabet of byte-level tokenizers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Bump when the tiny architectures or their processors change: cached builds with another format
#: are rebuilt by :func:`ensure_tiny_models`.
FORMAT_VERSION = 1
#: Marker file written (last) into every built model directory.
MARKER_FILE = "dataengine_model.json"

PATCH_SIZE = 14  # ViT patch side of every tiny model


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte → printable unicode symbol map (the alphabet of byte-level BPE), in its
    canonical order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for a deterministic build without disturbing the caller's global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _write_marker(out_dir: Path, builder: str, seed: int) -> None:
    marker = {"builder": builder, "random_weights": True, "format": FORMAT_VERSION, "seed": seed}
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def read_marker(model_dir: Path) -> dict[str, Any] | None:
    """The marker of a directory built by this module, or ``None`` (no marker / unreadable)."""
    try:
        data = json.loads((Path(model_dir) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(out_dir: Path, model: Any, processor: Any, builder: str, seed: int) -> Path:
    """``save_pretrained`` model and processor into ``out_dir``, then write the marker (last)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _write_marker(out_dir, builder, seed)
    return out_dir
