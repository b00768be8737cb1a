"""The worker's model cache: each adapter is built on first use and kept for the process.

The proposer and the verifiers follow the model registry: when a version of their kind is
promoted (``dataengine models promote``), its checkpoint replaces the profile's — if it is of the
profile's sort (random-weight tiny models for profile tiny, real weights otherwise) — and a process
that holds the old one builds the new one at its next batch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine import model_states
from engine.domain.vocabulary import ModelKind
from engine.ports import (
    Captioner,
    ConceptSuggester,
    ExemplarProposer,
    ExhaustivityVerifier,
    ImageEmbedder,
    MaskletProposer,
    MaskProposer,
    MaskVerifier,
    PhraseEmbedder,
    PhraseParser,
    PointSegmenter,
    VideoTracker,
)
from engine.settings import Settings

#: one model build at a time in the whole process, whichever cache asks: transformers' lazily imported model
#: classes are not safe to import from two threads at once (a warm-up thread loading the click segmenter
#: while the exemplar runner's thread loaded SAM 3 failed with "cannot import name 'Sam3Model'"), and two
#: loads at once would also double the memory peak. Re-entrant: a builder may ask another cache.
_BUILDING = threading.RLock()


class ModelCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str, build: Callable[[Settings], Any]) -> Any:
        with self._lock:  # built already: no wait on another cache's load
            if name in self._models:
                return self._models[name]
        with _BUILDING, self._lock:
            if name not in self._models:
                with model_states.loading(name):  # the pages show "loading the model" meanwhile
                    self._models[name] = build(self.settings)
            return self._models[name]

    def _promoted(self, name: str, kind: ModelKind, build: Callable[[Settings, str | None], Any]) -> Any:
        """The adapter for the promoted version of ``kind`` (the profile's when none is)."""
        from engine.db.session import session_scope
        from engine.repositories.model_versions import promoted_uri

        with session_scope(self.settings.db_url) as session:
            ref = promoted_uri(session, kind, random_weights=self.settings.model_profile == "tiny")
        with self._lock:
            held = self._models.get(name)
            if held is not None and held[0] == ref:
                return held[1]
        with _BUILDING, self._lock:
            held = self._models.get(name)
            if held is None or held[0] != ref:
                self._models[name] = (ref, build(self.settings, ref))
            return self._models[name][1]

    def captioner(self) -> Captioner | None:
        from annotators.registry import make_captioner

        return self._get("captioner", make_captioner)

    def parser(self) -> PhraseParser:
        from annotators.registry import make_parser

        return self._get("parser", make_parser)

    def proposer(self) -> MaskProposer:
        from annotators.registry import make_proposer

        return self._promoted("proposer", ModelKind.PROPOSER, make_proposer)

    def segmenter(self) -> PointSegmenter:
        from annotators.registry import make_segmenter

        return self._get("segmenter", make_segmenter)

    def masklet_proposer(self) -> MaskletProposer:
        """SAM 3 on video; the profile's checkpoint (a promoted proposer version is an image model)."""
        from annotators.registry import make_masklet_proposer

        return self._get("masklet_proposer", make_masklet_proposer)

    def exemplar_proposer(self) -> ExemplarProposer:
        """SAM 3 with exemplar boxes, its vision features cached per image (the gpu worker's own cache)."""
        from annotators.registry import make_exemplar_proposer

        return self._get("exemplar_proposer", make_exemplar_proposer)

    def video_tracker(self) -> VideoTracker:
        from annotators.registry import make_video_tracker

        return self._get("video_tracker", make_video_tracker)

    def mask_verifier(self) -> MaskVerifier:
        from annotators.registry import make_mask_verifier

        return self._promoted("mask_verifier", ModelKind.MASK_VERIFIER, make_mask_verifier)

    def exhaustivity_verifier(self) -> ExhaustivityVerifier:
        from annotators.registry import make_exhaustivity_verifier

        return self._promoted("exhaustivity_verifier", ModelKind.EXHAUSTIVITY_VERIFIER,
                              make_exhaustivity_verifier)

    def embedder(self) -> PhraseEmbedder:
        from annotators.registry import make_embedder

        return self._get("embedder", make_embedder)

    def image_embedder(self) -> ImageEmbedder:
        from annotators.registry import make_image_embedder

        return self._get("image_embedder", make_image_embedder)

    def suggester(self) -> ConceptSuggester | None:
        from annotators.registry import make_suggester

        return self._get("suggester", make_suggester)
