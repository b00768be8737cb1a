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


class FakeMaskVerifier:
    """P(accept) from the phrase: 'good …' 0.97, 'bad …' 0.02, else 0.6; 'crash' raises."""

    labels = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")

    def __init__(self, version: str = "1") -> None:
        self.stamp = ModelStamp(kind="mask_verifier", name="fake-mv", version=version)
        self.seen = 0

    def verify_masks(self, queries):  # type: ignore[no-untyped-def]
        self.seen += len(queries)
        out = []
        for q in queries:
            if "crash" in q.phrase:
                raise RuntimeError("verifier crashed (fake)")
            p = 0.97 if q.phrase.startswith("good") else 0.02 if q.phrase.startswith("bad") else 0.6
            rest = (1 - p) / 4
            out.append({"accept": p, "accept_as_text": rest, "flag_label": rest, "whole_image": rest, "reject": rest})
        return out


class FakeExhaustivityVerifier:
    """P(accept) 0.98 when the phrase says 'all' or there are boxes for a 'good' phrase, else 0.3."""

    labels = ("accept", "reject_missing", "reject_unseparated", "flag_label", "whole_image", "ungroundable")

    def __init__(self, version: str = "1") -> None:
        self.stamp = ModelStamp(kind="exhaustivity_verifier", name="fake-ev", version=version)
        self.boxes: dict[str, int] = {}

    def verify_pairs(self, queries):  # type: ignore[no-untyped-def]
        out = []
        for q in queries:
            self.boxes[q.phrase] = len(q.boxes)
            p = 0.98 if ("all" in q.phrase or (q.boxes and q.phrase.startswith("good"))) else 0.3
            rest = (1 - p) / 5
            out.append({"accept": p, "reject_missing": rest, "reject_unseparated": rest, "flag_label": rest,
                        "whole_image": rest, "ungroundable": rest})
        return out


class FakeEmbedder:
    """Phrases sharing their last word are close (0.8); others far (0.0); identical 1.0."""

    def __init__(self) -> None:
        self.stamp = ModelStamp(kind="parser", name="fake-embedder", version="1")

    def embed(self, phrases):  # type: ignore[no-untyped-def]
        heads = sorted({p.split()[-1] for p in phrases})
        out = np.zeros((len(phrases), len(heads) + len(phrases)), dtype=np.float32)
        for i, p in enumerate(phrases):
            out[i, heads.index(p.split()[-1])] = 0.8
            out[i, len(heads) + i] = 0.6
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeSuggester:
    def __init__(self, answers: dict[str, list[str] | str]) -> None:
        self.stamp = ModelStamp(kind="parser", name="fake-suggester", version="1")
        self.answers = answers

    def suggest(self, phrases):  # type: ignore[no-untyped-def]
        return [self.answers.get(p, "no idea") for p in phrases]


class OverlapProposer(FakeProposer):
    """Candidates whose name contains 'decoy' get the same masks as the phrase 'good vase' would."""

    def propose(self, image, phrases):  # type: ignore[no-untyped-def]
        mapped = ["good vase" if "decoy" in p else p for p in phrases]
        return super().propose(image, mapped)
