"""Image embeddings for similarity search: SAM 3's vision features (``Sam3Model.get_vision_features``),
mean-pooled over the positions of the last feature map and L2-normalised.

Stamped as its own model version: kind ``proposer`` (the vocabulary has no embedder kind), name
``"<ref> (image embedding)"``, params ``{"embedding": "pooled-vision"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from annotators.loading import Loaded, load_pretrained, stamp_for
from engine.domain.similarity import normalise
from engine.domain.vocabulary import ModelKind
from engine.ports import ModelStamp


class Sam3ImageEmbedder:
    def __init__(self, ref: str, *, device: str = "auto") -> None:
        import torch
        from transformers import Sam3Model, Sam3Processor

        loaded = load_pretrained(ref, Sam3Processor, Sam3Model, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        self.stamp = sam3_embedding_stamp(ref, loaded)

    def embed_images(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        with self.torch.inference_mode():
            rows = [self._pooled(image) for image in images]
        return normalise(np.stack(rows))

    def _pooled(self, image: Image.Image) -> NDArray[np.float32]:
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"].to(self.device)
        return pool_vision_features(self.model.get_vision_features(pixel_values=pixels))


def sam3_embedding_stamp(ref: str, loaded: Loaded) -> ModelStamp:
    """The model version of pooled SAM 3 vision features of a checkpoint: the embedder's stamp, and the one
    the SAM 3 proposer stores the same pooled features under (``Sam3Proposer.embedding_stamp``)."""
    stamp = stamp_for(ModelKind.PROPOSER, ref, loaded, {"embedding": "pooled-vision"})
    return replace(stamp, name=f"{stamp.name} (image embedding)")


def pool_vision_features(vision: Any) -> NDArray[np.float32]:
    """The image embedding of SAM 3 vision features (``get_vision_features``' output for one image): the
    mean over the positions of the coarsest feature map. The propose stage can pool the features it already
    has with this and store them (``engine.services.embeddings.store_embeddings``) under this embedder's stamp."""
    feature = _last_feature_map(vision)
    pooled = feature.float().mean(dim=(-2, -1)) if feature.dim() == 4 else feature.float().mean(dim=-2)
    return np.asarray(pooled[0].to("cpu").numpy(), dtype=np.float32)


def _last_feature_map(vision: Any) -> Any:
    """The coarsest FPN level (B×C×H×W), else the encoder's last hidden state (B×N×C)."""
    fpn = getattr(vision, "fpn_hidden_states", None)
    if fpn:
        return fpn[-1]
    return vision.last_hidden_state


class VisionModelEmbedder:
    """A dedicated image embedder by hub id or directory (a DINOv2 or CLIP checkpoint, any vision model
    ``AutoModel`` loads): CLIP's projected image features, else the pooler output, else the mean of the
    last hidden state; L2-normalised. Cheaper than SAM 3 for a candidate pool not proposed yet."""

    def __init__(self, ref: str, *, device: str = "auto") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        loaded = load_pretrained(ref, AutoImageProcessor, AutoModel, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        stamp = stamp_for(ModelKind.PROPOSER, ref, loaded, {"embedding": "vision-model"})
        self.stamp = replace(stamp, name=f"{stamp.name} (image embedding)")

    def embed_images(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        with self.torch.inference_mode():
            pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)
            pooled = _pooled_output(self.model, pixels)
        return normalise(np.asarray(pooled.float().to("cpu").numpy(), dtype=np.float32))


def _pooled_output(model: Any, pixels: Any) -> Any:
    if hasattr(model, "get_image_features"):
        out = model.get_image_features(pixel_values=pixels)
    else:
        out = model(pixel_values=pixels)
    if hasattr(out, "dim"):  # a tensor already (CLIP's projected features)
        return out
    pooler = getattr(out, "pooler_output", None)
    return pooler if pooler is not None else out.last_hidden_state.mean(dim=1)
