"""SAM 3 mask proposals through transformers' Sam3Model / Sam3Processor.

The image is encoded once (``get_vision_features``) and its features reused for every phrase, also
across calls on the same image object (the latest image's features are kept); text features are
cached per phrase across images (bounded LRU). Masks are made at the size of the image handed in
(the engine hands a downscaled one, ``models.max_side``), one at a time, as booleans. ``propose_naive`` runs the full
forward pass per phrase: the reference the reuse path must equal, and the benchmark's baseline.

The kept vision features also give the image's embedding (``pooled_embedding``, the ``PooledEmbeddings`` port):
pooled as ``Sam3ImageEmbedder`` pools them and stamped as it stamps its vectors (``embedding_stamp``), so the
propose stage stores embeddings with no second encoding of the image.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from annotators.image_embedder import pool_vision_features, sam3_embedding_stamp
from annotators.loading import load_pretrained, stamp_for
from engine.domain.vocabulary import ModelKind
from engine.ports import Proposal


class Sam3Proposer:
    def __init__(self, ref: str, *, score_threshold: float, mask_threshold: float,
                 text_cache_size: int = 4096, device: str = "auto") -> None:
        import torch
        from transformers import Sam3Model, Sam3Processor

        loaded = load_pretrained(ref, Sam3Processor, Sam3Model, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._vision: tuple[Image.Image, Any] | None = None
        self.stamp = stamp_for(ModelKind.PROPOSER, ref, loaded,
                               {"score_threshold": score_threshold, "mask_threshold": mask_threshold})
        self.embedding_stamp = sam3_embedding_stamp(ref, loaded)

    # -- the engine's port
    def propose(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Proposal]]:
        if not phrases:
            return []
        with self.torch.inference_mode():
            vision = self._vision_features(image)
            out = []
            for phrase in phrases:
                text_embeds, attention_mask = self._text_features(phrase)
                outputs = self.model(vision_embeds=vision, text_embeds=text_embeds, attention_mask=attention_mask)
                out.append(self._proposals(outputs, image))
        return out

    def _vision_features(self, image: Image.Image) -> Any:
        """The image encoder's output for ``image``; the latest image's is kept, so calls that
        hand the same image object phrase by phrase encode it once."""
        if self._vision is not None and self._vision[0] is image:
            return self._vision[1]
        self._vision = None  # let the previous image's features go before computing these
        pixels = self.processor(images=image, return_tensors="pt")
        vision = self.model.get_vision_features(pixel_values=pixels["pixel_values"].to(self.device))
        self._vision = (image, vision)
        return vision

    def pooled_embedding(self, image: Image.Image) -> NDArray[np.float32] | None:
        """The pooled vision features of ``image`` when it is the image last encoded, else None."""
        if self._vision is None or self._vision[0] is not image:
            return None
        with self.torch.inference_mode():
            return pool_vision_features(self._vision[1])

    def propose_naive(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Proposal]]:
        """One full forward pass (image and text encoders) per phrase."""
        out = []
        with self.torch.inference_mode():
            for phrase in phrases:
                inputs = self.processor(images=image, text=phrase, return_tensors="pt").to(self.device)
                outputs = self.model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                                     attention_mask=inputs["attention_mask"])
                out.append(self._proposals(outputs, image))
        return out

    def _text_features(self, phrase: str) -> tuple[Any, Any]:
        cached = self._text_cache.get(phrase)
        if cached is not None:
            self._text_cache.move_to_end(phrase)
            return cached
        tokens = self.processor(text=phrase, return_tensors="pt").to(self.device)
        embeds = self.model.get_text_features(input_ids=tokens["input_ids"],
                                              attention_mask=tokens["attention_mask"], return_dict=True)
        value = (embeds, tokens["attention_mask"])
        if self.text_cache_size:
            self._text_cache[phrase] = value
            while len(self._text_cache) > self.text_cache_size:
                self._text_cache.popitem(last=False)
        return value

    def _proposals(self, outputs: Any, image: Image.Image) -> list[Proposal]:
        """Instances scoring above the threshold, best first, each mask resized (bilinear) from
        the model's low-resolution logits to the image and thresholded on its own: never more than
        one float mask of the image's size at a time (post-processing all of them at once held
        every instance as a float and an int64 tensor of the image's size)."""
        torch = self.torch
        scores = outputs.pred_logits[0].sigmoid()
        if outputs.presence_logits is not None:
            scores = scores * outputs.presence_logits[0].sigmoid()
        keep = torch.nonzero(scores > self.score_threshold).flatten()
        keep = keep[torch.argsort(scores[keep], descending=True)]
        out = []
        for index in keep.tolist():
            low = outputs.pred_masks[0, index][None, None].float().sigmoid()
            probability = torch.nn.functional.interpolate(
                low, size=(image.height, image.width), mode="bilinear", align_corners=False)
            mask = (probability[0, 0] > self.mask_threshold).to("cpu").numpy()
            del probability
            out.append(Proposal(mask=np.ascontiguousarray(mask), score=float(scores[index])))
        return out
