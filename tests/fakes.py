"""Fakes that implement the engine's model ports (no mocks): deterministic, with failure knobs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.ports import ModelStamp, Proposal


class FakeCaptioner:
    def __init__(self, captions: dict[tuple[int, int], str] | None = None, default: str = "a red ball on a table",
                 fail_sizes: set[tuple[int, int]] = frozenset(), fail_batches_over: int | None = None,
                 version: str = "1") -> None:
        self.stamp = ModelStamp(kind="captioner", name="fake-captioner", version=version)
        self.captions = captions or {}
        self.default = default
        self.fail_sizes = fail_sizes
        self.fail_batches_over = fail_batches_over
        self.calls: list[int] = []

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        self.calls.append(len(images))
        if self.fail_batches_over is not None and len(images) > self.fail_batches_over:
            raise RuntimeError("CUDA out of memory (fake)")
        if any(img.size in self.fail_sizes for img in images):
            raise RuntimeError("model crashed on this image (fake)")
        return [self.captions.get(img.size, self.default) for img in images]


class FakeParser:
    """Splits captions on ' and ' / ',' ; with ``raw`` answers as an LLM would (a string)."""

    def __init__(self, raw: dict[str, str] | None = None, version: str = "1") -> None:
        self.stamp = ModelStamp(kind="parser", name="fake-parser", version=version)
        self.raw = raw or {}

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        out: list[list[str] | str] = []
        for caption in captions:
            if caption in self.raw:
                out.append(self.raw[caption])
            else:
                out.append([p.strip() for p in caption.replace(" and ", ",").split(",") if p.strip()])
        return out


class FakeProposer:
    """Per phrase: boxes of the image drawn from the phrase's hash; 'explode' fails, 'nothing' finds none."""

    def __init__(self, version: str = "1", masks_per_phrase: int = 2) -> None:
        self.stamp = ModelStamp(kind="proposer", name="fake-proposer", version=version,
                                params={"masks": masks_per_phrase})
        self.masks_per_phrase = masks_per_phrase
        self.calls: list[list[str]] = []

    def propose(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Proposal]]:
        self.calls.append(list(phrases))
        if any("explode" in p for p in phrases):
            raise RuntimeError("proposer failed (fake)")
        out = []
        for phrase in phrases:
            if "nothing" in phrase:
                out.append([])
                continue
            props = []
            for k in range(self.masks_per_phrase):
                mask = np.zeros((image.height, image.width), dtype=bool)
                y0 = (hash(phrase) + 7 * k) % max(image.height - 5, 1)
                mask[y0:y0 + 4, 1 + 3 * k:8 + 3 * k] = True
                props.append(Proposal(mask=mask, score=0.9 - 0.1 * k))
            # an exact duplicate of the best mask, which dedup must drop
            props.append(Proposal(mask=props[0].mask.copy(), score=0.5))
            out.append(props)
        return out
