"""Loading checkpoints from a hub id or a local directory, and naming their version."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from engine.domain.vocabulary import ModelKind
from engine.ports import ModelStamp

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class ModelUnavailable(RuntimeError):
    """A checkpoint that is neither on disk nor downloadable here; the message says what to do."""


def is_local(ref: str) -> bool:
    return Path(ref).expanduser().is_dir()


def load_kwargs(ref: str) -> dict[str, Any]:
    """from_pretrained arguments: a local directory never touches the network."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars on every load flood worker logs
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"local_files_only": is_local(ref) or offline}


def resolve(ref: str) -> str:
    return str(Path(ref).expanduser().resolve()) if is_local(ref) else ref


def wrap_missing(ref: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"cannot load {ref!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
        "Download it where there is internet (`dataengine models download`), copy the directory "
        "here and point the setting at it, or use DATAENGINE_MODEL_PROFILE=tiny."
    )


@cache
def checkpoint_version(ref: str, commit_hash: str | None = None) -> str:
    """A stable version for a checkpoint: the hub revision when known, else the sha256 of the
    weight files' contents (first 16 hex digits)."""
    if commit_hash:
        return commit_hash
    path = Path(ref)
    if not path.is_dir():
        return "unknown"
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def display_name(ref: str, given: str) -> str:
    """The name a model version is registered under: the builder of a tiny model built here,
    otherwise what the operator configured (hub id or path)."""
    marker = Path(ref) / "dataengine_model.json"
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text()).get("builder") or given)
        except ValueError:
            return given
    return given


def is_random_weights(ref: str) -> bool:
    """Tiny models built here carry a marker saying their weights are random."""
    marker = Path(ref) / "dataengine_model.json"
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()).get("random_weights"))
    except ValueError:
        return False


def pick_device(setting: str) -> str:
    import torch

    if setting != "auto":
        return setting
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Loaded:
    ref: str  # resolved: an absolute directory or the hub id
    processor: Any  # processor or tokenizer
    model: Any
    device: str


def load_pretrained(ref: str, processor_cls: Any, model_cls: Any, device: str) -> Loaded:
    """Processor and model from a hub id or a local directory, on the device, in eval mode.
    A checkpoint that cannot be had raises ModelUnavailable saying what to do."""
    resolved = resolve(ref)
    kwargs = load_kwargs(resolved)
    try:
        processor = processor_cls.from_pretrained(resolved, **kwargs)
        model = model_cls.from_pretrained(resolved, **kwargs)
    except (OSError, ValueError) as exc:
        raise wrap_missing(ref, exc) from exc
    target = pick_device(device)
    model.to(target).eval()
    return Loaded(resolved, processor, model, target)


def stamp_for(kind: ModelKind, given: str, loaded: Loaded, params: dict[str, Any]) -> ModelStamp:
    """The model version stamp of a loaded checkpoint: name, revision or weights hash, params."""
    return ModelStamp(
        kind=kind.value, name=display_name(loaded.ref, given),
        version=checkpoint_version(loaded.ref, getattr(loaded.model.config, "_commit_hash", None)),
        params=params, uri=loaded.ref, random_weights=is_random_weights(loaded.ref),
    )
