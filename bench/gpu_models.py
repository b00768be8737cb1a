"""The GPU benchmark's models (``bench/gpu.py``): configs of the real architectures at their real sizes, and
the tiny configs of ``annotators.tiny`` for ``--smoke``, built with random weights straight on the device in
the wanted dtype (no checkpoint on disk, no CPU copy of the parameters), with the processors the product uses.

* ``sam3``:    ``Sam3Model`` with ``Sam3Config()``'s sizes (ViT 1024 wide, 32 layers, 1008 px; CLIP text
  1024 wide, 24 layers, 49,408-row vocabulary; 200 queries) and the byte-level CLIP tokenizer of the tiny models
  (its ids fit the real vocabulary; a real tokenizer would only change the prompts' token ids);
* ``tracker``: ``Sam3TrackerModel`` with ``Sam3TrackerConfig()``'s sizes (the same ViT, 1008 px);
* ``mllama``:  ``MllamaForConditionalGeneration`` with Llama 3.2 11B Vision's sizes (text 4096 wide, 40 layers,
  8 cross-attention layers, 128,256-row vocabulary; vision 1280 wide, 32 + 8 layers, 560 px tiles, 4 tiles) and
  the tiny models' Llama 3 style byte-level tokenizer (its ``<|image|>`` id is the config's image token);
* ``video``:   ``Sam3VideoModel`` with ``Sam3VideoConfig()``'s sizes (the real detector and tracker), at most
  8 objects.

Only the cost of these models means anything: their weights are random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Tile side of Llama 3.2 Vision (its image processor's ``size``).
MLLAMA_TILE = 560
#: Objects tracked at most by the real-size video model (its thresholds are calibrated, see bench/gpu.py).
VIDEO_MAX_OBJECTS = 8


@dataclass(frozen=True)
class Spec:
    """How to make one model: its transformers class name, config and processor factories, input side."""

    model_class: str
    config: Callable[[], Any]
    processor: Callable[[], Any]
    image_size: int


# ----------------------------------------------------------------------------- real sizes
def real_sam3_config() -> Any:
    from transformers import Sam3Config

    config = Sam3Config()
    text = config.text_config
    text.bos_token_id, text.eos_token_id, text.pad_token_id = 512, 513, 513  # the byte-level tokenizer's
    return config


def real_tracker_config() -> Any:
    from transformers import Sam3TrackerConfig

    return Sam3TrackerConfig()


def real_mllama_config() -> Any:
    """Llama 3.2 11B Vision's sizes (the defaults of ``MllamaConfig`` but the 560 px tiles) for the byte-level
    tokenizer: the special-token ids are the tokenizer's, the vocabulary keeps its real 128,256 rows."""
    from transformers import MllamaConfig

    from annotators.tiny.mllama import _LLAMA3_IMAGE_TOKEN, _llama3_byte_tokenizer

    tok = _llama3_byte_tokenizer()
    image_token_id = tok.convert_tokens_to_ids(_LLAMA3_IMAGE_TOKEN)
    return MllamaConfig(
        vision_config={"image_size": MLLAMA_TILE, "max_num_tiles": 4},
        text_config={
            "vocab_size": 128256,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": [tok.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")],
            "pad_token_id": tok.pad_token_id,
        },
        image_token_index=image_token_id,
    )


def real_video_config() -> Any:
    from transformers import Sam3VideoConfig

    config = Sam3VideoConfig(max_num_objects=VIDEO_MAX_OBJECTS)
    text = config.detector_config.text_config
    text.bos_token_id, text.eos_token_id, text.pad_token_id = 512, 513, 513
    return config


def tracker_processor(image_size: int) -> Any:
    from transformers import Sam2ImageProcessor, Sam3TrackerProcessor

    mask_side = round(image_size / 3.5)
    return Sam3TrackerProcessor(image_processor=Sam2ImageProcessor(
        size={"height": image_size, "width": image_size}, mask_size={"height": mask_side, "width": mask_side}))


def mllama_processor(tile: int, max_tiles: int) -> Any:
    """``MllamaProcessor`` with the byte-level tokenizer and the chat template; the torchvision image processor
    when torchvision is installed (what ``from_pretrained`` picks), else the PIL one."""
    from transformers import MllamaProcessor

    from annotators.tiny.mllama import TINY_MLLAMA_CHAT_TEMPLATE, _llama3_byte_tokenizer

    try:
        from transformers import MllamaImageProcessor as image_processor_cls
        image_processor = image_processor_cls(size={"height": tile, "width": tile}, max_image_tiles=max_tiles)
    except (ImportError, ValueError):
        from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

        image_processor = MllamaImageProcessorPil(size={"height": tile, "width": tile}, max_image_tiles=max_tiles)
    return MllamaProcessor(image_processor=image_processor, tokenizer=_llama3_byte_tokenizer(),
                           chat_template=TINY_MLLAMA_CHAT_TEMPLATE)


def specs(smoke: bool) -> dict[str, Spec]:
    """The four models, at real sizes or (``smoke``) tiny."""
    from annotators.tiny import sam3 as tiny_sam3
    from annotators.tiny import sam3_video as tiny_video
    from annotators.tiny.mllama import TINY_MLLAMA_IMAGE_SIZE, tiny_mllama_config

    if smoke:
        side = tiny_sam3.TINY_SAM3_IMAGE_SIZE
        return {
            "sam3": Spec("Sam3Model", tiny_sam3.tiny_sam3_config, lambda: tiny_sam3._sam3_processor(side), side),
            "tracker": Spec("Sam3TrackerModel", tiny_sam3.tiny_sam3_tracker_config,
                            lambda: tracker_processor(side), side),
            "mllama": Spec("MllamaForConditionalGeneration", tiny_mllama_config,
                           lambda: mllama_processor(TINY_MLLAMA_IMAGE_SIZE, 2), TINY_MLLAMA_IMAGE_SIZE),
            "video": Spec("Sam3VideoModel", tiny_video.tiny_sam3_video_config,
                          lambda: tiny_video.sam3_video_processor(side), side),
        }
    side = tiny_sam3.MID_SAM3_IMAGE_SIZE  # 1008, the real geometry
    return {
        "sam3": Spec("Sam3Model", real_sam3_config, lambda: tiny_sam3._sam3_processor(side), side),
        "tracker": Spec("Sam3TrackerModel", real_tracker_config, lambda: tracker_processor(side), side),
        "mllama": Spec("MllamaForConditionalGeneration", real_mllama_config,
                       lambda: mllama_processor(MLLAMA_TILE, 4), MLLAMA_TILE),
        "video": Spec("Sam3VideoModel", real_video_config, lambda: tiny_video.sam3_video_processor(side), side),
    }


def build_on_device(spec: Spec, device: str, dtype: Any, seed: int = 0) -> Any:
    """The random-weight model of ``spec``, its parameters created on ``device`` in ``dtype`` (the
    ``torch.device`` context makes every factory call allocate there: an 11 B model never touches host memory),
    in eval mode."""
    import torch
    import transformers

    from annotators.tiny.saving import seeded

    model_cls = getattr(transformers, spec.model_class)
    config = spec.config()
    with seeded(seed), torch.device(device):
        if device.startswith("cuda"):
            torch.cuda.manual_seed_all(seed)
        model = model_cls._from_config(config, dtype=dtype)
    if spec.model_class == "Sam3TrackerModel" and hasattr(model, "mask_decoder"):
        with torch.no_grad():  # random weights say "no object": make the clicked object appear (as a trained model)
            head = getattr(model.mask_decoder, "pred_obj_score_head", None)
            if head is not None:
                head.proj_out.bias.fill_(4.0)
    return model.to(device).eval()


def parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))
