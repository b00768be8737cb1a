"""Settings of image embeddings and similarity search (``Settings.similarity``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SimilaritySettings(BaseModel):
    """The image embedder and the nearest-neighbour search."""

    embedder_model: str | None = Field(
        None, description="SAM 3 checkpoint (hub id or directory) whose pooled vision features embed images; "
                          "default: the proposer's (profile tiny: the tiny random-weight SAM 3)")
    max_side: int = Field(1024, ge=64, le=16_384,
                          description="images are downscaled to at most this longest side before embedding")
    default_k: int = Field(10, ge=1, le=100, description="neighbours returned when none is asked for")
