"""Ports: the small interfaces the engine needs from the outside world.

Model adapters in ``annotators/`` implement the model ports; the engine sees only these
Protocols, PIL images, numpy arrays and plain dataclasses (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image


class TaskQueue(Protocol):
    """Runs a named task on a batch of ids: in this process, or on a Celery worker.

    Enqueue only after the transaction that created the ids has committed.
    """

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> Any: ...


@dataclass(frozen=True)
class ModelStamp:
    """Who made an output: registered as a model version and referenced by every output."""

    kind: str  # a ModelKind value
    name: str  # hub id, local path or builder name
    version: str  # checkpoint hash or revision
    params: dict[str, Any] = field(default_factory=dict)  # what changes the output (thresholds, prompt)
    uri: str | None = None
    random_weights: bool = False


class Captioner(Protocol):
    stamp: ModelStamp

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image."""


class PhraseParser(Protocol):
    stamp: ModelStamp

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        """Per caption: the noun phrases found, or the raw model answer (a str) for the engine
        to repair into a list (LLM parsers)."""


@dataclass(frozen=True)
class Proposal:
    """One candidate mask for a phrase, at the image's size."""

    mask: np.ndarray  # bool H×W
    score: float


class MaskProposer(Protocol):
    stamp: ModelStamp

    def propose(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Proposal]]:
        """Candidate masks per phrase for one image (the image is encoded once for all)."""
