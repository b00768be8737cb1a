"""The tiny Llama 3.2 Vision (Mllama) model: a byte-level Llama 3 tokenizer built in memory, the chat
template, the config and the builder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from annotators.tiny.saving import PATCH_SIZE, bytes_to_unicode, save, seeded

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tokenizers import Tokenizer
    from transformers import MllamaConfig, PreTrainedTokenizerFast

#: Tile side of the tiny Llama 3.2 Vision model (2×2 patches of 14 px per tile).
TINY_MLLAMA_IMAGE_SIZE = 28

#: Words the tiny Llama tokenizer encodes as one token each, with and without a leading space: the
#: answers of yes/no questions and multiple-choice letters (the AI-verifier scoring pattern).
MLLAMA_SINGLE_TOKEN_WORDS = ("Yes", "No", "yes", "no", "A", "B", "C", "D", "E", "F")

# Llama 3 special tokens in the real order (ids 128000.. in the real vocabulary).
_LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
_LLAMA3_IMAGE_TOKEN = "<|image|>"
# The Llama 3 pre-tokenizer split pattern (from the real tokenizer.json).
_LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: A Llama 3.2 Vision style chat template: messages whose ``content`` is a string or a list of
#: ``{"type": "image"}`` / ``{"type": "text", "text": ...}`` parts. It starts with the begin token, so
#: tokenize the rendered prompt with ``add_special_tokens=False``.
TINY_MLLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}"
    "{{- message['content'] | trim }}"
    "{%- else %}"
    "{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' %}"
    "{{- '<|image|>' }}"
    "{%- elif content['type'] == 'text' %}"
    "{{- content['text'] | trim }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def _add_merge(vocab: dict[str, int], merges: list[tuple[str, str]], left: str, right: str) -> None:
    """Add the merge ``left`` + ``right`` (once) and its result to the vocabulary (if new)."""
    if (left, right) not in merges:
        merges.append((left, right))
        vocab.setdefault(left + right, len(vocab))


def _llama3_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 256 byte symbols, then the merges that make each of :data:`MLLAMA_SINGLE_TOKEN_WORDS` one
    token: bare first, then with the leading-space ``Ġ``."""
    vocab = {symbol: i for i, symbol in enumerate(bytes_to_unicode().values())}
    merges: list[tuple[str, str]] = []
    for word in MLLAMA_SINGLE_TOKEN_WORDS:
        for i in range(1, len(word)):
            _add_merge(vocab, merges, word[:i], word[i])
    for word in MLLAMA_SINGLE_TOKEN_WORDS:
        _add_merge(vocab, merges, "Ġ", word)
    return vocab, merges


def _llama3_specials(vocab_size: int) -> list[str]:
    """The Llama 3 special tokens padded with reserved tokens so that ``vocab_size`` plus their number
    (the text vocabulary size) is a multiple of 8."""
    specials = list(_LLAMA3_SPECIAL_TOKENS)
    text_vocab_size = -(-(vocab_size + len(specials)) // 8) * 8
    while vocab_size + len(specials) < text_vocab_size:
        specials.append(f"<|reserved_special_token_{len(specials) - len(_LLAMA3_SPECIAL_TOKENS) + 2}|>")
    return specials


def _llama3_backend(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """The byte-level BPE backend: the Llama 3 split pattern, then byte-level symbols; no special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


def _add_llama3_special_tokens(backend: Tokenizer, specials: list[str], text_vocab_size: int) -> None:
    """Add ``specials`` (the rest of the text vocabulary), then ``<|image|>`` with id ``text_vocab_size``,
    and the post-processor that puts ``<|begin_of_text|>`` in front."""
    from tokenizers import AddedToken, processors

    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    backend.add_special_tokens([AddedToken(_LLAMA3_IMAGE_TOKEN, special=True, normalized=False)])
    if backend.token_to_id(_LLAMA3_IMAGE_TOKEN) != text_vocab_size:  # pragma: no cover - layout invariant
        raise RuntimeError("tiny Llama tokenizer layout: <|image|> must follow the text vocabulary")
    bos_id = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos_id)],
    )


def _llama3_byte_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A Llama 3 style byte-level BPE tokenizer, built in memory.

    Layout (mirroring the real one): the 256 byte symbols, merges that make each of
    :data:`MLLAMA_SINGLE_TOKEN_WORDS` one token (bare and with the leading-space ``Ġ``), then the Llama 3
    special tokens padded with reserved tokens to a multiple of 8 (the *text vocabulary*), then
    ``<|image|>`` whose id equals the text vocabulary size. The begin token is added by the
    post-processor; bos ``<|begin_of_text|>``, eos ``<|eot_id|>``, pad ``<|finetune_right_pad_id|>``.
    """
    from transformers import PreTrainedTokenizerFast

    vocab, merges = _llama3_vocab_and_merges()
    specials = _llama3_specials(len(vocab))
    backend = _llama3_backend(vocab, merges)
    _add_llama3_special_tokens(backend, specials, text_vocab_size=len(vocab) + len(specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=TINY_MLLAMA_CHAT_TEMPLATE,
        model_max_length=model_max_length,
    )


def tiny_mllama_config(tokenizer: PreTrainedTokenizerFast | None = None) -> MllamaConfig:
    """Config of the tiny Llama 3.2 Vision model for the tiny tokenizer.

    Vision: 32 wide, 2 local layers + 1 global, 28 px tiles of 14 px patches, at most 2 tiles
    (aspect ratios 1×1, 1×2, 2×1), intermediate layers [0, 1] (output dim 32 × 3 = 96). Text: 32 wide,
    4 layers with cross-attention at [1, 3], 4 heads / 2 key-value heads; vocabulary = the tokenizer's
    text vocabulary (``<|image|>`` id = vocab size, as in the real model).
    """
    from transformers import MllamaConfig

    tok = tokenizer if tokenizer is not None else _llama3_byte_tokenizer()
    image_token_id = tok.convert_tokens_to_ids(_LLAMA3_IMAGE_TOKEN)
    if not isinstance(image_token_id, int):  # one token in, one id out
        raise TypeError(f"the tokenizer maps {_LLAMA3_IMAGE_TOKEN} to {image_token_id!r}, not one id")
    intermediate_layers = [0, 1]
    return MllamaConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "intermediate_size": 64,
            "vision_output_dim": 32 * (len(intermediate_layers) + 1),
            "image_size": TINY_MLLAMA_IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "max_num_tiles": 2,
            "intermediate_layers_indices": intermediate_layers,
            "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]],
        },
        text_config={
            "vocab_size": image_token_id,
            "hidden_size": 32,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": tok.model_max_length,
            "cross_attention_layers": [1, 3],
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": [
                tok.convert_tokens_to_ids("<|end_of_text|>"),
                tok.convert_tokens_to_ids("<|eom_id|>"),
                tok.convert_tokens_to_ids("<|eot_id|>"),
            ],
            "pad_token_id": tok.pad_token_id,
        },
        image_token_index=image_token_id,
    )


def build_tiny_mllama(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight ``MllamaForConditionalGeneration`` and its ``MllamaProcessor``
    into ``out_dir``.

    The processor wraps the in-memory Llama 3 style tokenizer (with :data:`TINY_MLLAMA_CHAT_TEMPLATE`,
    also stored on the processor) and a ``MllamaImageProcessorPil`` (28 px tiles, at most 2 tiles; no
    torchvision needed to build it — ``from_pretrained`` later picks the torchvision
    ``MllamaImageProcessor`` when torchvision is installed, unless ``backend="pil"`` is passed).
    Render prompts with ``processor.apply_chat_template(messages, add_generation_prompt=True,
    tokenize=False)`` and tokenize with ``add_special_tokens=False`` (the template adds the begin
    token). Returns ``out_dir``.
    """
    from transformers import MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tokenizer = _llama3_byte_tokenizer()
    with seeded(seed):
        model = MllamaForConditionalGeneration(tiny_mllama_config(tokenizer)).eval()
    image_processor = MllamaImageProcessorPil(
        size={"height": TINY_MLLAMA_IMAGE_SIZE, "width": TINY_MLLAMA_IMAGE_SIZE}, max_image_tiles=2
    )
    processor = MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=TINY_MLLAMA_CHAT_TEMPLATE
    )
    return save(Path(out_dir), model, processor, "tiny-mllama", seed)
