"""Settings of image embeddings and similarity search (``Settings.similarity``)."""

from __future__ import annotations

from pathlib import Path
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
    from_propose: bool = Field(
        True, description="the propose stage stores each image's pooled SAM 3 vision features, which it computes "
                          "anyway, as its embedding (embedder sam3 whose checkpoint is the proposer's): mined images "
                          "are searchable with no separate `dataengine index embed`; off: only that command embeds")

    def pools_from_propose(self, proposer_uri: str | None, default_ref: str) -> bool:
        """Whether the propose stage running checkpoint ``proposer_uri`` (its stamp's uri) stores its pooled
        features as this embedder's vectors: ``from_propose`` on, embedder sam3, and the embedder's checkpoint
        (``embedder_model``, else ``default_ref``: the profile's proposer) is that checkpoint, so the
        vectors carry the version `dataengine similar`, the API and failure mining look up."""
        if not self.from_propose or self.embedder != "sam3" or not proposer_uri:
            return False
        return _checkpoint(self.embedder_model or default_ref) == _checkpoint(proposer_uri)

    @model_validator(mode="after")
    def _vision_needs_a_model(self) -> SimilaritySettings:
        if self.embedder == "vision" and not self.embedder_model:
            raise ValueError("similarity.embedder = vision needs similarity.embedder_model (a hub id or directory)")
        return self


def _checkpoint(ref: str) -> str:
    """A checkpoint's identity: an existing directory's resolved path, else the hub id as given."""
    path = Path(ref).expanduser()
    return str(path.resolve()) if path.is_dir() else ref
