"""Settings of image embeddings and similarity search (``Settings.similarity``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class SimilaritySettings(BaseModel):
    """The image embedder and the nearest-neighbour search."""

    embedder: Literal["sam3", "vision"] = Field(
        "sam3", description="sam3: pooled SAM 3 vision features; vision: a dedicated image model (embedder_model)")
    embedder_model: str | None = Field(
        None, description="sam3: a SAM 3 checkpoint (hub id or directory), default the proposer's (profile tiny: the "
                          "tiny random-weight SAM 3); vision: the image model's hub id or directory (DINOv2, CLIP)")
    max_side: int = Field(1024, ge=64, le=16_384,
                          description="images are downscaled to at most this longest side before embedding")
    default_k: int = Field(10, ge=1, le=100, description="neighbours returned when none is asked for")

    @model_validator(mode="after")
    def _vision_needs_a_model(self) -> SimilaritySettings:
        if self.embedder == "vision" and not self.embedder_model:
            raise ValueError("similarity.embedder = vision needs similarity.embedder_model (a hub id or directory)")
        return self
