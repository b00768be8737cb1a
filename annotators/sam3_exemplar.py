"""SAM 3 with visual exemplars (the correction page's exemplar tool): the task's phrase plus boxes around
instances (label 1) or wrong detections (label 0) through transformers' ``Sam3Model`` (``input_boxes`` /
``input_boxes_labels``), on the image's vision features kept in a bounded LRU keyed by the caller's
image key, so a person adding exemplars one at a time encodes the image once. Runs on a worker only."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from PIL import Image

from annotators.sam3 import Sam3Proposer
from engine.ports import Proposal


class Sam3ExemplarProposer(Sam3Proposer):
    def __init__(self, ref: str, *, score_threshold: float, mask_threshold: float, feature_cache_size: int = 16,
                 device: str = "auto") -> None:
        super().__init__(ref, score_threshold=score_threshold, mask_threshold=mask_threshold, device=device)
        self.feature_cache_size = max(1, feature_cache_size)
        self._features: OrderedDict[str, Any] = OrderedDict()
        self.encoded = 0  # images encoded (for tests and benchmarks: cache hits do not count)
        self.stamp.params["exemplars"] = True

    def propose_with_exemplars(self, key: str, image: Image.Image, phrase: str,
                               boxes: Sequence[tuple[float, float, float, float]],
                               labels: Sequence[int]) -> list[Proposal]:
        """Every instance of ``phrase`` like the positive boxes (pixels, xyxy) and unlike the negative ones."""
        with self.torch.inference_mode():
            vision = self._cached_features(key, image)
            text_embeds, attention_mask = self._text_features(phrase or "visual")
            prompt = self.processor(original_sizes=[[image.height, image.width]],
                                    input_boxes=[[list(map(float, b)) for b in boxes]],
                                    input_boxes_labels=[[int(x) for x in labels]], return_tensors="pt")
            outputs = self.model(vision_embeds=vision, text_embeds=text_embeds, attention_mask=attention_mask,
                                 input_boxes=prompt["input_boxes"].to(self.device),
                                 input_boxes_labels=prompt["input_boxes_labels"].to(self.device))
            return self._proposals(outputs, image)

    def _cached_features(self, key: str, image: Image.Image) -> Any:
        cached = self._features.get(key)
        if cached is not None:
            self._features.move_to_end(key)
            return cached
        pixels = self.processor(images=image, return_tensors="pt")
        vision = self.model.get_vision_features(pixel_values=pixels["pixel_values"].to(self.device))
        self.encoded += 1
        self._features[key] = vision
        while len(self._features) > self.feature_cache_size:
            self._features.popitem(last=False)
        return vision
