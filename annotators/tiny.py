"""Tiny random-weight models of the real annotator architectures, built offline.

The proposer (SAM 3), the click-to-segment tool (SAM 3 tracker) and the AI verifier (Llama 3.2 Vision)
load real checkpoints with ``from_pretrained(path, local_files_only=True)``. Those checkpoints are large
and cannot be downloaded here, so tests and the demo use *tiny* models of exactly the same
architectures, with random weights and real processors, written to disk with ``save_pretrained`` — a
directory built here loads through the very same code path as a real checkpoint.

Nothing in this module touches the network: tokenizers are built in memory (byte-level vocabularies,
so any text tokenizes) and every config is spelled out.

Public API:

- :func:`build_tiny_sam3` — ``Sam3Model`` + ``Sam3Processor`` (112 px images, 16 queries, 0.26 M params).
- :func:`build_tiny_mllama` — ``MllamaForConditionalGeneration`` + ``MllamaProcessor`` with a Llama 3.2
  Vision style chat template; "Yes"/"No"/"yes"/"no" and "A".."F" are single tokens.
- :func:`build_tiny_sam3_tracker` — ``Sam3TrackerModel`` + ``Sam3TrackerProcessor``.
- :func:`build_mid_sam3` — a ~105 M parameter ``Sam3Model`` at the real 1008 px geometry, for benchmarks.
- :func:`ensure_tiny_models` — build the three tiny models once into a cache directory (atomic, idempotent).

Every built directory holds a marker file :data:`MARKER_FILE` (``dataengine_model.json``) saying which
builder made it, that its weights are random, and the :data:`FORMAT_VERSION`.

transformers is imported lazily (the first import of a model class costs seconds), so importing this
module is cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import (
        CLIPTokenizer,
        MllamaConfig,
        PreTrainedTokenizerFast,
        Sam3Config,
        Sam3TrackerConfig,
    )

__all__ = [
    "FORMAT_VERSION",
    "MARKER_FILE",
    "MLLAMA_SINGLE_TOKEN_WORDS",
    "TINY_MLLAMA_CHAT_TEMPLATE",
    "TINY_MLLAMA_IMAGE_SIZE",
    "TINY_SAM3_IMAGE_SIZE",
    "MID_SAM3_IMAGE_SIZE",
    "build_mid_sam3",
    "build_tiny_mllama",
    "build_tiny_sam3",
    "build_tiny_sam3_tracker",
    "ensure_tiny_models",
    "mid_sam3_config",
    "read_marker",
    "tiny_mllama_config",
    "tiny_sam3_config",
    "tiny_sam3_tracker_config",
]

#: Bump when the tiny architectures or their processors change: cached builds with another format
#: are rebuilt by :func:`ensure_tiny_models`.
FORMAT_VERSION = 1
#: Marker file written (last) into every built model directory.
MARKER_FILE = "dataengine_model.json"

#: Input side of the tiny SAM 3 / tracker models (8×8 patches of 14 px).
TINY_SAM3_IMAGE_SIZE = 112
#: Input side of the mid SAM 3 benchmark model: the real checkpoint's geometry (72×72 patches).
MID_SAM3_IMAGE_SIZE = 1008
#: Tile side of the tiny Llama 3.2 Vision model (2×2 patches of 14 px per tile).
TINY_MLLAMA_IMAGE_SIZE = 28

_PATCH_SIZE = 14
#: SAM 3 text prompts are padded to 32 tokens by ``Sam3Processor``.
_SAM3_TEXT_LENGTH = 32
#: FPN scale factors of the SAM 3 vision neck (the real default); the last level (0.5) is unused by the
#: detector, the tracker uses the first three.
_SAM3_SCALE_FACTORS = [4.0, 2.0, 1.0, 0.5]

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


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte → printable unicode symbol map (the alphabet of byte-level BPE), in its
    canonical order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for a deterministic build without disturbing the caller's global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _write_marker(out_dir: Path, builder: str, seed: int) -> None:
    marker = {"builder": builder, "random_weights": True, "format": FORMAT_VERSION, "seed": seed}
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def read_marker(model_dir: Path) -> dict[str, Any] | None:
    """The marker of a directory built by this module, or ``None`` (no marker / unreadable)."""
    try:
        data = json.loads((Path(model_dir) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save(out_dir: Path, model: Any, processor: Any, builder: str, seed: int) -> Path:
    """``save_pretrained`` model and processor into ``out_dir``, then write the marker (last)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _write_marker(out_dir, builder, seed)
    return out_dir


# --------------------------------------------------------------------------------------------------
# SAM 3 (detector) and SAM 3 tracker
# --------------------------------------------------------------------------------------------------


def _clip_byte_tokenizer(model_max_length: int = _SAM3_TEXT_LENGTH) -> CLIPTokenizer:
    """A CLIP tokenizer with a byte-level vocabulary and no merges.

    Vocabulary: the 256 byte symbols (ids 0–255), their end-of-word ``</w>`` forms (256–511), then
    ``<|startoftext|>`` (512) and ``<|endoftext|>`` (513, also pad and unk) — the real CLIP layout
    without the 48 894 merges. Every text tokenizes (one token per byte).
    """
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def _sam3_backbone_feature_sizes(image_size: int) -> list[list[int]]:
    """Spatial sizes of the first three FPN levels (scale factors 4, 2, 1) for an input side."""
    patches = image_size // _PATCH_SIZE
    return [[int(patches * s), int(patches * s)] for s in _SAM3_SCALE_FACTORS[:3]]


def _tiny_sam3_vision_config() -> dict[str, Any]:
    """The tiny SAM 3 vision tower (ViT backbone + FPN neck) as a config dict.

    Nested configs passed as dicts must carry their ``model_type``.
    """
    return {
        "model_type": "sam3_vision_model",
        "backbone_config": {
            "model_type": "sam3_vit_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_SAM3_IMAGE_SIZE,
            "patch_size": _PATCH_SIZE,
            "window_size": 4,  # 8×8 patches → 2×2 windows (the real model: 72×72 → 3×3 of 24)
            "global_attn_indexes": [1],
            "pretrain_image_size": 56,  # 4×4 position embeddings tiled to 8×8, like the real 24 → 72
        },
        "fpn_hidden_size": 32,
        "scale_factors": list(_SAM3_SCALE_FACTORS),
        "backbone_feature_sizes": _sam3_backbone_feature_sizes(TINY_SAM3_IMAGE_SIZE),
    }


def _clip_text_config(vocab_size: int, hidden_size: int, num_layers: int, projection_dim: int) -> dict[str, Any]:
    """A CLIP text encoder config for the byte-level tokenizer (bos 512, eos/pad 513)."""
    return {
        "model_type": "clip_text_model",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": 4 * hidden_size,
        "projection_dim": projection_dim,
        "num_hidden_layers": num_layers,
        "num_attention_heads": hidden_size // 64 if hidden_size >= 64 else 2,
        "max_position_embeddings": _SAM3_TEXT_LENGTH,  # the processor pads to 32 tokens
        "hidden_act": "gelu",
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }


def tiny_sam3_config() -> Sam3Config:
    """Config of the tiny SAM 3 detector: every sub-model 32 wide, one layer each, 16 queries."""
    from transformers import Sam3Config

    return Sam3Config(
        vision_config=_tiny_sam3_vision_config(),
        text_config=_clip_text_config(vocab_size=514, hidden_size=32, num_layers=1, projection_dim=32),
        geometry_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_decoder_config={
            "hidden_size": 32,
            "num_layers": 1,
            "num_queries": 16,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )


def mid_sam3_config() -> Sam3Config:
    """Config of the ~105 M parameter SAM 3 used for benchmarks.

    The real checkpoint's geometry (1008 px input, 72×72 patches, window 24, FPN 256, and the full-size
    DETR encoder/decoder, geometry encoder and mask decoder with 200 queries) with a narrower backbone
    (ViT 576 wide, 12 layers) and text encoder (CLIP 512 wide, 6 layers, byte-level vocabulary), so
    per-image and per-phrase costs keep the real model's proportions.
    """
    from transformers import Sam3Config

    vision = {
        "model_type": "sam3_vision_model",
        "backbone_config": {
            "model_type": "sam3_vit_model",
            "hidden_size": 576,
            "intermediate_size": 4 * 576,
            "num_hidden_layers": 12,
            "num_attention_heads": 9,
            "image_size": MID_SAM3_IMAGE_SIZE,
            "patch_size": _PATCH_SIZE,
            "window_size": 24,
            "global_attn_indexes": [2, 5, 8, 11],
            "pretrain_image_size": 336,
        },
        "fpn_hidden_size": 256,
        "scale_factors": list(_SAM3_SCALE_FACTORS),
        "backbone_feature_sizes": _sam3_backbone_feature_sizes(MID_SAM3_IMAGE_SIZE),
    }
    return Sam3Config(
        vision_config=vision,
        text_config=_clip_text_config(vocab_size=514, hidden_size=512, num_layers=6, projection_dim=512),
    )


def _sam3_processor(image_size: int) -> Any:
    """``Sam3Processor`` with the byte-level CLIP tokenizer and a ``Sam3ImageProcessor`` of the given
    side (mask size = side / 3.5, as 1008 → 288 in the real processor)."""
    from transformers import Sam3ImageProcessor, Sam3Processor

    mask_side = round(image_size / 3.5)
    image_processor = Sam3ImageProcessor(
        size={"height": image_size, "width": image_size},
        mask_size={"height": mask_side, "width": mask_side},
    )
    return Sam3Processor(image_processor=image_processor, tokenizer=_clip_byte_tokenizer())


def build_tiny_sam3(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight ``Sam3Model`` and its ``Sam3Processor`` into ``out_dir``.

    Load back with ``Sam3Model.from_pretrained(out_dir, local_files_only=True)`` and
    ``Sam3Processor.from_pretrained(out_dir, local_files_only=True)``. Deterministic for a seed.
    Returns ``out_dir``.
    """
    from transformers import Sam3Model

    with _seeded(seed):
        model = Sam3Model(tiny_sam3_config()).eval()
    return _save(Path(out_dir), model, _sam3_processor(TINY_SAM3_IMAGE_SIZE), "tiny-sam3", seed)


def build_mid_sam3(out_dir: Path, seed: int = 0) -> Path:
    """Build the ~105 M parameter random-weight ``Sam3Model`` (:func:`mid_sam3_config`) and its
    ``Sam3Processor`` (same byte-level tokenizer as the tiny model, 1008 px images) into ``out_dir``.

    About 420 MB on disk; meant for benchmarks, not tests. Returns ``out_dir``.
    """
    from transformers import Sam3Model

    with _seeded(seed):
        model = Sam3Model(mid_sam3_config()).eval()
    return _save(Path(out_dir), model, _sam3_processor(MID_SAM3_IMAGE_SIZE), "mid-sam3", seed)


def tiny_sam3_tracker_config() -> Sam3TrackerConfig:
    """Config of the tiny SAM 3 tracker (click to segment): the tiny SAM 3 vision tower, a 32-wide
    prompt encoder and a 1-layer, 32-wide mask decoder."""
    from transformers import Sam3TrackerConfig

    return Sam3TrackerConfig(
        vision_config=_tiny_sam3_vision_config(),
        prompt_encoder_config={"hidden_size": 32, "image_size": TINY_SAM3_IMAGE_SIZE, "patch_size": _PATCH_SIZE},
        mask_decoder_config={
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
    )


def build_tiny_sam3_tracker(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight ``Sam3TrackerModel`` and its ``Sam3TrackerProcessor`` (wrapping a
    112 px ``Sam2ImageProcessor``) into ``out_dir``. Returns ``out_dir``."""
    from transformers import Sam2ImageProcessor, Sam3TrackerModel, Sam3TrackerProcessor

    with _seeded(seed):
        model = Sam3TrackerModel(tiny_sam3_tracker_config()).eval()
    mask_side = round(TINY_SAM3_IMAGE_SIZE / 3.5)
    processor = Sam3TrackerProcessor(
        image_processor=Sam2ImageProcessor(
            size={"height": TINY_SAM3_IMAGE_SIZE, "width": TINY_SAM3_IMAGE_SIZE},
            mask_size={"height": mask_side, "width": mask_side},
        )
    )
    return _save(Path(out_dir), model, processor, "tiny-sam3-tracker", seed)


# --------------------------------------------------------------------------------------------------
# Llama 3.2 Vision (Mllama)
# --------------------------------------------------------------------------------------------------


def _llama3_byte_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A Llama 3 style byte-level BPE tokenizer, built in memory.

    Layout (mirroring the real one): the 256 byte symbols, merges that make each of
    :data:`MLLAMA_SINGLE_TOKEN_WORDS` one token (bare and with the leading-space ``Ġ``), then the Llama 3
    special tokens padded with reserved tokens to a multiple of 8 (the *text vocabulary*), then
    ``<|image|>`` whose id equals the text vocabulary size. The begin token is added by the
    post-processor; bos ``<|begin_of_text|>``, eos ``<|eot_id|>``, pad ``<|finetune_right_pad_id|>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(_bytes_to_unicode().values())}
    merges: list[tuple[str, str]] = []

    def add_merge(left: str, right: str) -> None:
        if (left, right) not in merges:
            merges.append((left, right))
            vocab.setdefault(left + right, len(vocab))

    for word in MLLAMA_SINGLE_TOKEN_WORDS:
        for i in range(1, len(word)):
            add_merge(word[:i], word[i])
    for word in MLLAMA_SINGLE_TOKEN_WORDS:
        add_merge("Ġ", word)

    specials = list(_LLAMA3_SPECIAL_TOKENS)
    text_vocab_size = -(-(len(vocab) + len(specials)) // 8) * 8
    while len(vocab) + len(specials) < text_vocab_size:
        specials.append(f"<|reserved_special_token_{len(specials) - len(_LLAMA3_SPECIAL_TOKENS) + 2}|>")

    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
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
            "patch_size": _PATCH_SIZE,
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
    with _seeded(seed):
        model = MllamaForConditionalGeneration(tiny_mllama_config(tokenizer)).eval()
    image_processor = MllamaImageProcessorPil(
        size={"height": TINY_MLLAMA_IMAGE_SIZE, "width": TINY_MLLAMA_IMAGE_SIZE}, max_image_tiles=2
    )
    processor = MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=TINY_MLLAMA_CHAT_TEMPLATE
    )
    return _save(Path(out_dir), model, processor, "tiny-mllama", seed)


# --------------------------------------------------------------------------------------------------
# Cache of tiny models
# --------------------------------------------------------------------------------------------------

_TINY_BUILDERS: dict[str, tuple[str, Callable[[Path, int], Path]]] = {
    "sam3": ("tiny-sam3", build_tiny_sam3),
    "mllama": ("tiny-mllama", build_tiny_mllama),
    "sam3_tracker": ("tiny-sam3-tracker", build_tiny_sam3_tracker),
}


def _is_current(model_dir: Path, builder: str) -> bool:
    marker = read_marker(model_dir)
    return marker is not None and marker.get("builder") == builder and marker.get("format") == FORMAT_VERSION


def _build_atomically(final: Path, builder: str, build: Callable[[Path, int], Path]) -> None:
    """Build into a temporary sibling directory, then rename it into place.

    A stale directory (no marker, another format) is moved aside and removed. If another process
    renamed a current build into place first, ours is discarded.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
    try:
        build(tmp, 0)
        tmp.chmod(0o755)  # mkdtemp creates 0700; the cache is read by other processes and users
        if final.exists() and not _is_current(final, builder):
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=final.parent))
            os.replace(final, stale / final.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_current(final, builder):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_tiny_models(cache_dir: Path) -> dict[str, Path]:
    """Build each tiny model (seed 0) once into ``cache_dir/<name>`` and return their paths.

    Returns ``{"sam3": ..., "mllama": ..., "sam3_tracker": ...}``. A directory whose marker names the
    right builder and the current :data:`FORMAT_VERSION` is reused untouched; otherwise the model is
    built into a temporary directory inside ``cache_dir`` and renamed into place, so a reader never
    sees a half-written model.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, (builder, build) in _TINY_BUILDERS.items():
        final = cache_dir / name
        if not _is_current(final, builder):
            _build_atomically(final, builder, build)
        paths[name] = final
    return paths
