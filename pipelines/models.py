"""The worker's model cache: each adapter is built on first use and kept for the process."""

from __future__ import annotations

import threading
from typing import Any, Callable

from engine.ports import (
    Captioner, ConceptSuggester, ExhaustivityVerifier, MaskProposer, MaskVerifier, PhraseEmbedder, PhraseParser,
    PointSegmenter,
)
from engine.settings import Settings


class ModelCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str, build: Callable[[Settings], Any]) -> Any:
        with self._lock:
            if name not in self._models:
                self._models[name] = build(self.settings)
            return self._models[name]

    def captioner(self) -> Captioner | None:
        from annotators.registry import make_captioner

        return self._get("captioner", make_captioner)

    def parser(self) -> PhraseParser:
        from annotators.registry import make_parser

        return self._get("parser", make_parser)

    def proposer(self) -> MaskProposer:
        from annotators.registry import make_proposer

        return self._get("proposer", make_proposer)

    def segmenter(self) -> PointSegmenter:
        from annotators.registry import make_segmenter

        return self._get("segmenter", make_segmenter)

    def mask_verifier(self) -> MaskVerifier:
        from annotators.registry import make_mask_verifier

        return self._get("mask_verifier", make_mask_verifier)

    def exhaustivity_verifier(self) -> ExhaustivityVerifier:
        from annotators.registry import make_exhaustivity_verifier

        return self._get("exhaustivity_verifier", make_exhaustivity_verifier)

    def embedder(self) -> PhraseEmbedder:
        from annotators.registry import make_embedder

        return self._get("embedder", make_embedder)

    def suggester(self) -> ConceptSuggester | None:
        from annotators.registry import make_suggester

        return self._get("suggester", make_suggester)
