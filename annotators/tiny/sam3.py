"""The tiny SAM 3 detector and SAM 3 tracker (and the mid-size SAM 3 for benchmarks): configs,
processors with a byte-level CLIP tokenizer, builders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotators.tiny.saving import PATCH_SIZE, bytes_to_unicode, save, seeded

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import CLIPTokenizer, Sam3Config, Sam3TrackerConfig

#: Input side of the tiny SAM 3 / tracker models (8×8 patches of 14 px).
TINY_SAM3_IMAGE_SIZE = 112
#: Input side of the mid SAM 3 benchmark model: the real checkpoint's geometry (72×72 patches).
MID_SAM3_IMAGE_SIZE = 1008
#: SAM 3 text prompts are padded to 32 tokens by ``Sam3Processor``.
_SAM3_TEXT_LENGTH = 32
#: FPN scale factors of the SAM 3 vision neck (the real default); the last level (0.5) is unused by the
#: detector, the tracker uses the first three.
_SAM3_SCALE_FACTORS = [4.0, 2.0, 1.0, 0.5]


def _clip_byte_tokenizer(model_max_length: int = _SAM3_TEXT_LENGTH) -> CLIPTokenizer:
    """A CLIP tokenizer with a byte-level vocabulary and no merges.

    Vocabulary: the 256 byte symbols (ids 0–255), their end-of-word ``</w>`` forms (256–511), then
    ``<|startoftext|>`` (512) and ``<|endoftext|>`` (513, also pad and unk) — the real CLIP layout
    without the 48 894 merges. Every text tokenizes (one token per byte).
    """
    from transformers import CLIPTokenizer

    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def _sam3_backbone_feature_sizes(image_size: int) -> list[list[int]]:
    """Spatial sizes of the first three FPN levels (scale factors 4, 2, 1) for an input side."""
    patches = image_size // PATCH_SIZE
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
            "patch_size": PATCH_SIZE,
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
            "patch_size": PATCH_SIZE,
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

    with seeded(seed):
        model = Sam3Model(tiny_sam3_config()).eval()
    return save(Path(out_dir), model, _sam3_processor(TINY_SAM3_IMAGE_SIZE), "tiny-sam3", seed)


def build_mid_sam3(out_dir: Path, seed: int = 0) -> Path:
    """Build the ~105 M parameter random-weight ``Sam3Model`` (:func:`mid_sam3_config`) and its
    ``Sam3Processor`` (same byte-level tokenizer as the tiny model, 1008 px images) into ``out_dir``.

    About 420 MB on disk; meant for benchmarks, not tests. Returns ``out_dir``.
    """
    from transformers import Sam3Model

    with seeded(seed):
        model = Sam3Model(mid_sam3_config()).eval()
    return save(Path(out_dir), model, _sam3_processor(MID_SAM3_IMAGE_SIZE), "mid-sam3", seed)


def tiny_sam3_tracker_config() -> Sam3TrackerConfig:
    """Config of the tiny SAM 3 tracker (click to segment): the tiny SAM 3 vision tower, a 32-wide
    prompt encoder and a 1-layer, 32-wide mask decoder."""
    from transformers import Sam3TrackerConfig

    return Sam3TrackerConfig(
        vision_config=_tiny_sam3_vision_config(),
        prompt_encoder_config={"hidden_size": 32, "image_size": TINY_SAM3_IMAGE_SIZE, "patch_size": PATCH_SIZE},
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

    with seeded(seed):
        model = Sam3TrackerModel(tiny_sam3_tracker_config()).eval()
    mask_side = round(TINY_SAM3_IMAGE_SIZE / 3.5)
    processor = Sam3TrackerProcessor(
        image_processor=Sam2ImageProcessor(
            size={"height": TINY_SAM3_IMAGE_SIZE, "width": TINY_SAM3_IMAGE_SIZE},
            mask_size={"height": mask_side, "width": mask_side},
        )
    )
    return save(Path(out_dir), model, processor, "tiny-sam3-tracker", seed)
