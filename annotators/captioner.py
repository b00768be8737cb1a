"""Image captions from a vision-language model (Llama 3.2 Vision by default) via its chat template."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from annotators.loading import load_pretrained, stamp_for
from engine.domain.vocabulary import ModelKind


class VisionLanguageCaptioner:
    """Any image-text-to-text checkpoint (Mllama, LLaVA-style, …) that has a chat template."""

    def __init__(self, ref: str, *, prompt: str, max_new_tokens: int, device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        loaded = load_pretrained(ref, AutoProcessor, AutoModelForImageTextToText, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # generation continues from the right edge
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.stamp = stamp_for(ModelKind.CAPTIONER, ref, loaded,
                               {"prompt": prompt, "max_new_tokens": max_new_tokens, "decoding": "greedy"})
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        self.chat = self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        if not images:
            return []
        inputs = self.processor(images=[[img] for img in images], text=[self.chat] * len(images),
                                return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
