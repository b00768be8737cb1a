"""AI verifiers (SAM 3's MV and EV) as multiple-choice questions to a vision-language model.

The image is rendered as the verifiers see it (engine/domain/render.py), the question lists the
choices as letters, and one forward pass gives the logits of the next token: the softmax over
the choice letters' logits alone is the answer's distribution (no generation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from annotators.loading import load_pretrained, stamp_for
from engine.domain.render import boxes_view, mask_view
from engine.domain.vocabulary import ModelKind
from engine.ports import MaskQuery, PairQuery

LETTERS = "ABCDEF"
MV_CHOICES = (
    ("accept", "Accept: the mask covers exactly one whole instance of the phrase"),
    ("accept_as_text", "Accept as text: the phrase is correct only as written text in the image"),
    ("flag_label", "Flag label: the phrase is wrong, offensive or not a visual concept"),
    ("whole_image", "Whole image: the phrase describes the whole image, not a region"),
    ("reject", "Reject: the mask is not an instance of the phrase, or is incomplete or sloppy"),
)
EV_CHOICES = (
    ("accept", "Accept: every instance of the phrase has a box (or there is none and none is missing)"),
    ("reject_missing", "Reject: some separable instances have no box"),
    ("reject_unseparated", "Reject but unseparated: instances are missing but cannot be told apart"),
    ("flag_label", "Flag label: the phrase is wrong, offensive or not a visual concept"),
    ("whole_image", "Whole image: the phrase describes the whole image"),
    ("ungroundable", "Ungroundable, vague or unsure"),
)
MV_QUESTION = ("Left: a region of the image in context (red box). Right: the proposed mask (blue) "
               'for the phrase "{phrase}". Judge the mask.\n{choices}\nAnswer with one letter.')
EV_QUESTION = ('The red boxes mark every current mask for the phrase "{phrase}". {boxes} '
               "Is every instance of the phrase marked?\n{choices}\nAnswer with one letter.")


def _choices(options: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, (_, text) in enumerate(options))


class _ChoiceScorer:
    """Scores multiple-choice questions about an image with one forward pass each batch."""

    def __init__(self, ref: str, kind: ModelKind, options: Sequence[tuple[str, str]], question: str,
                 device: str) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        loaded = load_pretrained(ref, AutoProcessor, AutoModelForImageTextToText, device)
        self.processor, self.model, self.device, self.torch = loaded.processor, loaded.model, loaded.device, torch
        self.processor.tokenizer.padding_side = "left"  # the last position is every row's answer slot
        self.labels: Sequence[str] = [label for label, _ in options]
        self.letter_ids = [self._single_token(LETTERS[i]) for i in range(len(options))]
        self.options = options
        self.question = question
        self.stamp = stamp_for(kind, ref, loaded, {"question": question, "choices": [t for _, t in options],
                                                   "scoring": "softmax over choice-letter logits"})

    def _single_token(self, letter: str) -> int:
        ids = self.processor.tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the tokenizer splits the answer letter {letter!r} into {ids}")
        return ids[0]

    def inputs(self, images: Sequence[Image.Image], texts: Sequence[str]) -> Any:
        """The model inputs of a batch of questions (left-padded: the last position answers)."""
        chats = [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
            add_generation_prompt=True) for text in texts]
        return self.processor(images=[[img] for img in images], text=chats, return_tensors="pt",
                              padding=True, add_special_tokens=False).to(self.device)

    def choice_logits(self, inputs: Any) -> Any:
        """Logits of the choice letters at the answer position (batch × choices); the training
        loss (annotators/verifier_training.py) and the scores below both start here."""
        return self.model(**inputs).logits[:, -1, :][:, self.letter_ids].float()

    def prompts(self, queries: Sequence[Any]) -> tuple[list[Image.Image], list[str]]:
        """The rendered views and question texts of queries (per verifier kind)."""
        raise NotImplementedError

    def score(self, images: Sequence[Image.Image], texts: Sequence[str]) -> list[dict[str, float]]:
        if not images:
            return []
        with self.torch.inference_mode():
            logits = self.choice_logits(self.inputs(images, texts))
        probs = self.torch.softmax(logits, dim=-1).cpu().tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in probs]


class LlamaMaskVerifier(_ChoiceScorer):
    def __init__(self, ref: str, device: str = "auto") -> None:
        super().__init__(ref, ModelKind.MASK_VERIFIER, MV_CHOICES, MV_QUESTION, device)

    def prompts(self, queries: Sequence[MaskQuery]) -> tuple[list[Image.Image], list[str]]:
        views = [mask_view(q.image, q.mask) for q in queries]
        texts = [self.question.format(phrase=q.phrase, choices=_choices(self.options)) for q in queries]
        return views, texts

    def verify_masks(self, queries: Sequence[MaskQuery]) -> list[dict[str, float]]:
        return self.score(*self.prompts(queries))


class LlamaExhaustivityVerifier(_ChoiceScorer):
    def __init__(self, ref: str, device: str = "auto") -> None:
        super().__init__(ref, ModelKind.EXHAUSTIVITY_VERIFIER, EV_CHOICES, EV_QUESTION, device)

    def prompts(self, queries: Sequence[PairQuery]) -> tuple[list[Image.Image], list[str]]:
        views = [boxes_view(q.image, q.boxes) for q in queries]
        texts = [self.question.format(
            phrase=q.phrase, choices=_choices(self.options),
            boxes=f"There are {len(q.boxes)} boxes." if q.boxes else "There are no boxes: no mask was found.")
            for q in queries]
        return views, texts

    def verify_pairs(self, queries: Sequence[PairQuery]) -> list[dict[str, float]]:
        return self.score(*self.prompts(queries))


def presence_score(no_box_probabilities: dict[str, Any]) -> float:
    """EV presence score: 1 − P(accept | no boxes)."""
    return 1.0 - float(no_box_probabilities["accept"])
