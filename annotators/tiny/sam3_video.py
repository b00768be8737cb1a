"""The tiny SAM 3 video models (and the mid-size one for benchmarks): ``Sam3VideoModel`` (detector + tracker,
masklet proposals from text prompts) and ``Sam3TrackerVideoModel`` (click on a frame, propagate), with their
real processors (``Sam3VideoProcessor`` / ``Sam3TrackerVideoProcessor`` over a ``Sam2VideoVideoProcessor``).

Constraints of the architecture found while shrinking it (transformers 5.25):

- the tracker's memory cross-attention reads 64-channel memories (``kv_in_dim=64`` is fixed), so
  ``memory_encoder_output_channels`` stays 64;
- object pointers are split into ``hidden / 64`` memory tokens and only a hidden size *larger* than 64
  reshapes them correctly, so the FPN / tracker width is 128 (the ViT backbone stays 32 wide);
- ``Sam3VideoModel`` feeds the detector's FPN features to the tracker: both widths are equal.

The tiny detector keeps few queries and objects (4 each), no hot-start delay and low detection thresholds,
so that random weights still yield a few masklets on every frame, quickly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotators.tiny.sam3 import (
    MID_SAM3_IMAGE_SIZE,
    TINY_SAM3_IMAGE_SIZE,
    _clip_byte_tokenizer,
    _clip_text_config,
    _tiny_sam3_vision_config,
    mid_sam3_config,
)
from annotators.tiny.saving import PATCH_SIZE, save, seeded

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import Sam3TrackerVideoConfig, Sam3VideoConfig

#: FPN / tracker width of the tiny video models (see the module docstring for why not 32).
TINY_VIDEO_WIDTH = 128
#: Low-resolution mask side of the tiny video models (4 × the 8×8 top feature map, as 288 = 4 × 72).
TINY_VIDEO_MASK_SIZE = 4 * TINY_SAM3_IMAGE_SIZE // PATCH_SIZE
#: Bias of the tiny tracker's object-score head: with random weights the head says "no object" (and the
#: model blanks the mask) on every frame; a positive bias makes the clicked object appear, as a trained
#: model's would.
OBJECT_SCORE_BIAS = 4.0


def _tiny_video_vision_config() -> dict[str, Any]:
    vision = _tiny_sam3_vision_config()
    vision["fpn_hidden_size"] = TINY_VIDEO_WIDTH
    return vision


def _tiny_video_detector_config() -> Any:
    """The tiny SAM 3 detector at the video width: 4 queries, one layer per block."""
    from transformers import Sam3Config

    width = TINY_VIDEO_WIDTH
    block = {"hidden_size": width, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    return Sam3Config(
        vision_config=_tiny_video_vision_config(),
        text_config=_clip_text_config(vocab_size=514, hidden_size=32, num_layers=1, projection_dim=32),
        geometry_encoder_config=dict(block),
        detr_encoder_config=dict(block),
        detr_decoder_config={**block, "num_queries": 4},
        mask_decoder_config={"hidden_size": width, "num_attention_heads": 2},
    )


def _image_size(side: int) -> dict[str, Any]:
    """``image_size`` for ``Sam3TrackerVideoConfig`` (an extra keyword its ``__post_init__`` consumes: it sets
    the prompt encoder's size, the FPN feature sizes and the memory attention's RoPE sizes)."""
    return {"image_size": side}


def tiny_sam3_tracker_video_config() -> Sam3TrackerVideoConfig:
    """Config of the tiny SAM 3 video tracker: the tiny ViT, 128-wide FPN, prompt encoder, mask decoder and
    one-layer memory attention / encoder / fuser, at 112 px."""
    from transformers import Sam3TrackerVideoConfig

    width = TINY_VIDEO_WIDTH
    return Sam3TrackerVideoConfig(
        vision_config=_tiny_video_vision_config(),
        prompt_encoder_config={"hidden_size": width, "image_size": TINY_SAM3_IMAGE_SIZE, "patch_size": PATCH_SIZE},
        mask_decoder_config={"hidden_size": width, "mlp_dim": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 32},
        memory_attention_hidden_size=width,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_encoder_hidden_size=width,
        memory_encoder_output_channels=64,  # the memory attention's key/value width is fixed at 64
        mask_downsampler_embed_dim=width,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=width,
        memory_fuser_intermediate_dim=64,
        **_image_size(TINY_SAM3_IMAGE_SIZE),
    )


def tiny_sam3_video_config() -> Sam3VideoConfig:
    """Config of the tiny ``Sam3VideoModel``: the tiny detector and tracker; at most 4 objects, no hot-start
    delay (frames come out as they are processed) and thresholds low enough for random weights."""
    from transformers import Sam3VideoConfig

    return Sam3VideoConfig(
        detector_config=_tiny_video_detector_config(),
        tracker_config=tiny_sam3_tracker_video_config(),
        low_res_mask_size=TINY_VIDEO_MASK_SIZE,
        score_threshold_detection=0.0,
        new_det_thresh=0.0,
        high_conf_thresh=0.3,
        hotstart_delay=0,
        hotstart_unmatch_thresh=0,
        hotstart_dup_thresh=0,
        max_num_objects=4,
    )


def mid_sam3_video_config() -> Sam3VideoConfig:
    """Config of the ~120 M parameter ``Sam3VideoModel`` for benchmarks: the mid SAM 3 detector
    (:func:`annotators.tiny.sam3.mid_sam3_config`, real 1008 px geometry) and the real tracker's sizes
    and hot-start delay. The random weights score every query 0.22–0.28 (seed 0): with the real detection
    thresholds (0.5, 0.7) nothing is found and the tracker never runs, and with 0 every one of the 200
    queries passes (the detector's mask NMS then needs 200² masks of 288², 26 GB); 0.27 keeps a few per
    prompt, and at most 8 objects are tracked."""
    from transformers import Sam3TrackerVideoConfig, Sam3VideoConfig

    detector = mid_sam3_config()
    vision: Any = detector.vision_config
    tracker = Sam3TrackerVideoConfig(vision_config=vision.to_dict(), **_image_size(MID_SAM3_IMAGE_SIZE))
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker, score_threshold_detection=0.27,
                           new_det_thresh=0.27, max_num_objects=8)


def _video_processor(image_size: int) -> Any:
    from transformers import Sam2VideoVideoProcessor

    return Sam2VideoVideoProcessor(size={"height": image_size, "width": image_size},
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def _image_processor(image_size: int) -> Any:
    from transformers import Sam3ImageProcessor

    mask_side = round(image_size / 3.5)
    return Sam3ImageProcessor(size={"height": image_size, "width": image_size},
                              mask_size={"height": mask_side, "width": mask_side})


def sam3_video_processor(image_size: int) -> Any:
    """``Sam3VideoProcessor``: SAM 3 image and video processors at ``image_size`` and the byte-level CLIP
    tokenizer."""
    from transformers import Sam3VideoProcessor

    return Sam3VideoProcessor(image_processor=_image_processor(image_size),
                              video_processor=_video_processor(image_size), tokenizer=_clip_byte_tokenizer())


def sam3_tracker_video_processor(image_size: int) -> Any:
    from transformers import Sam3TrackerVideoProcessor

    return Sam3TrackerVideoProcessor(image_processor=_image_processor(image_size),
                                     video_processor=_video_processor(image_size))


def build_tiny_sam3_video(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight ``Sam3VideoModel`` and its ``Sam3VideoProcessor`` into ``out_dir``
    (load back with ``from_pretrained(out_dir, local_files_only=True)``). Returns ``out_dir``."""
    from transformers import Sam3VideoModel

    with seeded(seed):
        model = Sam3VideoModel(tiny_sam3_video_config()).eval()
    return save(Path(out_dir), model, sam3_video_processor(TINY_SAM3_IMAGE_SIZE), "tiny-sam3-video", seed)


def build_tiny_sam3_tracker_video(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight ``Sam3TrackerVideoModel`` and its ``Sam3TrackerVideoProcessor`` into
    ``out_dir``. Returns ``out_dir``."""
    import torch
    from transformers import Sam3TrackerVideoModel

    with seeded(seed):
        model = Sam3TrackerVideoModel(tiny_sam3_tracker_video_config()).eval()
    with torch.no_grad():  # random weights score "no object" on every frame; make the object appear
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(OBJECT_SCORE_BIAS)
    return save(Path(out_dir), model, sam3_tracker_video_processor(TINY_SAM3_IMAGE_SIZE),
                "tiny-sam3-tracker-video", seed)


def build_mid_sam3_video(out_dir: Path, seed: int = 0) -> Path:
    """Build the ~120 M parameter random-weight ``Sam3VideoModel`` (:func:`mid_sam3_video_config`) with a
    1008 px ``Sam3VideoProcessor`` into ``out_dir``; for benchmarks, not tests. Returns ``out_dir``."""
    from transformers import Sam3VideoModel

    with seeded(seed):
        model = Sam3VideoModel(mid_sam3_video_config()).eval()
    return save(Path(out_dir), model, sam3_video_processor(MID_SAM3_IMAGE_SIZE), "mid-sam3-video", seed)
