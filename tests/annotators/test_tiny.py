"""Tiny random-weight models of the real architectures: built offline, saved with ``save_pretrained``,
loaded back with ``from_pretrained(path, local_files_only=True)`` and run through their real processors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from annotators.tiny import (
    FORMAT_VERSION,
    MARKER_FILE,
    MLLAMA_SINGLE_TOKEN_WORDS,
    TINY_SAM3_IMAGE_SIZE,
    build_tiny_mllama,
    build_tiny_sam3,
    build_tiny_sam3_tracker,
    ensure_tiny_models,
    mid_sam3_config,
    read_marker,
)

pytestmark = pytest.mark.models  # the tiny random-weight models

IMAGE_W, IMAGE_H = 160, 120


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> dict[str, Path]:
    """All three tiny models, built once for the module."""
    return ensure_tiny_models(cache_dir)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(IMAGE_H, IMAGE_W, 3), dtype=np.uint8))


def _state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------- SAM 3


@pytest.fixture(scope="module")
def sam3(tiny: dict[str, Path]):
    from transformers import Sam3Model, Sam3Processor

    model = Sam3Model.from_pretrained(tiny["sam3"], local_files_only=True).eval()
    processor = Sam3Processor.from_pretrained(tiny["sam3"], local_files_only=True)
    return model, processor


def test_tiny_sam3_directory_is_a_checkpoint_with_marker(tiny: dict[str, Path]) -> None:
    path = tiny["sam3"]
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", MARKER_FILE} <= names
    marker = json.loads((path / MARKER_FILE).read_text())
    assert marker["builder"] == "tiny-sam3" and marker["random_weights"] is True
    assert marker["format"] == FORMAT_VERSION == 1
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "sam3"
    assert config["detr_decoder_config"]["num_queries"] == 16


def test_tiny_sam3_loads_through_auto_classes(tiny: dict[str, Path]) -> None:
    from transformers import AutoModel, AutoProcessor, Sam3Model, Sam3Processor

    assert isinstance(AutoProcessor.from_pretrained(tiny["sam3"], local_files_only=True), Sam3Processor)
    assert isinstance(AutoModel.from_pretrained(tiny["sam3"], local_files_only=True), Sam3Model)


def test_tiny_sam3_segments_a_text_prompt(sam3, image: Image.Image) -> None:
    model, processor = sam3
    assert sum(p.numel() for p in model.parameters()) < 300_000
    inputs = processor(images=image, text="a cat", return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, TINY_SAM3_IMAGE_SIZE, TINY_SAM3_IMAGE_SIZE)
    assert inputs["input_ids"].shape == (1, 32)  # the processor pads text to 32 tokens
    assert inputs["original_sizes"].tolist() == [[IMAGE_H, IMAGE_W]]
    with torch.no_grad():
        outputs = model(
            pixel_values=inputs["pixel_values"],
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
        )
    assert outputs.pred_logits.shape == (1, 16)
    assert outputs.pred_boxes.shape == (1, 16, 4)
    assert outputs.pred_masks.shape == (1, 16, 32, 32)
    assert outputs.presence_logits.shape == (1, 1)

    results = processor.post_process_instance_segmentation(
        outputs, threshold=0.0, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist()
    )
    assert len(results) == 1
    result = results[0]
    n = result["scores"].shape[0]
    assert n == 16  # threshold 0 keeps every query
    assert result["boxes"].shape == (n, 4)
    assert result["masks"].shape == (n, IMAGE_H, IMAGE_W)
    assert ((result["scores"] >= 0) & (result["scores"] <= 1)).all()
    assert result["masks"].dtype == torch.long and set(result["masks"].unique().tolist()) <= {0, 1}
    # score = sigmoid(logit) * sigmoid(presence)
    expected = outputs.pred_logits[0].sigmoid() * outputs.presence_logits[0].sigmoid()
    assert torch.allclose(result["scores"].sort().values, expected.sort().values, atol=1e-6)
    # a real threshold drops queries
    strict = processor.post_process_instance_segmentation(
        outputs, threshold=float(expected.max()) + 1e-3, mask_threshold=0.5, target_sizes=[(IMAGE_H, IMAGE_W)]
    )[0]
    assert strict["scores"].shape[0] == 0 and strict["masks"].shape[0] == 0


def test_tiny_sam3_vision_reuse_matches_full_forward(sam3, image: Image.Image) -> None:
    model, processor = sam3
    inputs = processor(images=image, text="a red car", return_tensors="pt")
    with torch.no_grad():
        full = model(
            pixel_values=inputs["pixel_values"],
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
        )
        vision = model.get_vision_features(pixel_values=inputs["pixel_values"])
        reused = model(vision_embeds=vision, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        other = processor(text="a dog", return_tensors="pt")
        second = model(vision_embeds=vision, input_ids=other["input_ids"], attention_mask=other["attention_mask"])
    assert torch.allclose(reused.pred_logits, full.pred_logits, atol=1e-5)
    assert torch.allclose(reused.pred_masks, full.pred_masks, atol=1e-5)
    assert torch.allclose(reused.pred_boxes, full.pred_boxes, atol=1e-5)
    assert not torch.allclose(second.pred_logits, full.pred_logits)  # the text prompt matters


def test_tiny_sam3_tokenizer_is_byte_level(sam3) -> None:
    _, processor = sam3
    tok = processor.tokenizer
    ids = tok("a cat")["input_ids"]
    assert ids[0] == tok.bos_token_id == 512 and ids[-1] == tok.eos_token_id == 513
    assert tok.decode(ids, skip_special_tokens=True) == "a cat"
    assert len(tok) == 514
    # any text, even outside ASCII, tokenizes to ids inside the tiny vocabulary
    assert max(tok("naïve 猫")["input_ids"]) < 514


# -------------------------------------------------------------------------------- Llama 3.2 Vision


@pytest.fixture(scope="module")
def mllama(tiny: dict[str, Path]):
    from transformers import MllamaForConditionalGeneration, MllamaProcessor

    model = MllamaForConditionalGeneration.from_pretrained(tiny["mllama"], local_files_only=True).eval()
    processor = MllamaProcessor.from_pretrained(tiny["mllama"], local_files_only=True)
    return model, processor


def _mllama_inputs(processor, image: Image.Image, question: str):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>")
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    return processor(images=image, text=prompt, add_special_tokens=False, return_tensors="pt")


def test_tiny_mllama_generates_and_scores(mllama, image: Image.Image) -> None:
    model, processor = mllama
    tok = processor.tokenizer
    inputs = _mllama_inputs(processor, image, "Is there a cat in the image? Answer yes or no.")
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # no double begin token
    assert ids.count(model.config.image_token_id) == 1
    assert inputs["pixel_values"].shape[:3] == (1, 1, 2)  # batch, images, tiles
    assert inputs["pixel_values"].shape[-2:] == (28, 28)
    assert inputs["cross_attention_mask"].shape[:2] == inputs["input_ids"].shape

    with torch.no_grad():
        logits = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    vocab = model.config.text_config.vocab_size
    assert logits.shape == (1, len(ids), vocab)
    assert torch.isfinite(logits).all()
    new = generated.shape[1] - len(ids)
    assert 1 <= new <= 5
    assert torch.equal(generated[0, : len(ids)], inputs["input_ids"][0])
    assert isinstance(processor.batch_decode(generated[:, len(ids) :], skip_special_tokens=True)[0], str)

    # the verifier pattern: softmax over the choice tokens at the last position
    choice_ids = [tok.convert_tokens_to_ids(w) for w in ("Yes", "No")]
    probs = logits[0, -1, choice_ids].softmax(-1)
    assert probs.shape == (2,) and torch.isclose(probs.sum(), torch.tensor(1.0))


def test_tiny_mllama_tokenizer_layout(mllama) -> None:
    model, processor = mllama
    tok = processor.tokenizer
    for word in MLLAMA_SINGLE_TOKEN_WORDS:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1, word
        assert tok.decode(tok.encode(word, add_special_tokens=False)) == word
    assert tok.encode("Yes", add_special_tokens=False) != tok.encode("yes", add_special_tokens=False)
    vocab = model.config.text_config.vocab_size
    assert tok.convert_tokens_to_ids("<|image|>") == vocab == model.config.image_token_id
    for special in ("<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|finetune_right_pad_id|>", "<|python_tag|>"):
        assert 0 <= tok.convert_tokens_to_ids(special) < vocab, special
    assert tok.pad_token == "<|finetune_right_pad_id|>"
    assert tok.pad_token_id == model.config.text_config.pad_token_id
    assert tok.convert_tokens_to_ids("<|eot_id|>") in model.generation_config.eos_token_id
    # tokenization round-trips arbitrary text (byte level)
    text = "A cat, 3 dogs — naïve?"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert processor.chat_template is not None and tok.chat_template is not None


def test_tiny_mllama_loads_with_pil_image_backend(tiny: dict[str, Path], mllama, image: Image.Image) -> None:
    from transformers import MllamaProcessor

    pil = MllamaProcessor.from_pretrained(tiny["mllama"], local_files_only=True, backend="pil")
    assert type(pil.image_processor).__name__ == "MllamaImageProcessorPil"
    _, processor = mllama
    a = _mllama_inputs(pil, image, "What is it? A, B or C?")
    b = _mllama_inputs(processor, image, "What is it? A, B or C?")
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert a["pixel_values"].shape == b["pixel_values"].shape


# ----------------------------------------------------------------------------------- SAM 3 tracker


def test_tiny_sam3_tracker_segments_a_click(tiny: dict[str, Path], image: Image.Image) -> None:
    from transformers import Sam3TrackerModel, Sam3TrackerProcessor

    model = Sam3TrackerModel.from_pretrained(tiny["sam3_tracker"], local_files_only=True).eval()
    processor = Sam3TrackerProcessor.from_pretrained(tiny["sam3_tracker"], local_files_only=True)
    assert read_marker(tiny["sam3_tracker"])["builder"] == "tiny-sam3-tracker"

    inputs = processor(images=image, return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, TINY_SAM3_IMAGE_SIZE, TINY_SAM3_IMAGE_SIZE)
    embeddings = model.get_image_embeddings(pixel_values=inputs["pixel_values"])
    assert [tuple(e.shape[-2:]) for e in embeddings] == [(32, 32), (16, 16), (8, 8)]

    # one object, a positive and a negative click
    prompt = processor(
        images=image, input_points=[[[[80, 60], [10, 10]]]], input_labels=[[[1, 0]]], return_tensors="pt"
    )
    assert prompt["input_points"].shape == (1, 1, 2, 2)
    with torch.no_grad():
        out = model(
            image_embeddings=embeddings,
            input_points=prompt["input_points"],
            input_labels=prompt["input_labels"],
            multimask_output=False,
        )
        full = model(
            pixel_values=prompt["pixel_values"],
            input_points=prompt["input_points"],
            input_labels=prompt["input_labels"],
            multimask_output=False,
        )
    assert out.pred_masks.shape == (1, 1, 1, 32, 32)
    assert out.iou_scores.shape == (1, 1, 1)
    assert torch.allclose(out.pred_masks, full.pred_masks, atol=1e-5)

    masks = processor.post_process_masks(out.pred_masks, prompt["original_sizes"])
    assert len(masks) == 1
    assert masks[0].shape == (1, 1, IMAGE_H, IMAGE_W)
    assert masks[0].dtype == torch.bool


# ------------------------------------------------------------------------------- cache & determinism


def test_ensure_tiny_models_is_idempotent(cache_dir: Path, tiny: dict[str, Path]) -> None:
    assert set(tiny) == {"sam3", "mllama", "sam3_tracker", "sam3_video", "sam3_tracker_video"}
    assert all(p.parent == cache_dir and (p / MARKER_FILE).is_file() for p in tiny.values())
    assert all(p.stat().st_mode & 0o777 == 0o755 for p in tiny.values())  # readable by other users
    before = {name: (p / MARKER_FILE).stat().st_mtime_ns for name, p in tiny.items()}
    weights = {name: (p / "model.safetensors").stat().st_mtime_ns for name, p in tiny.items()}
    again = ensure_tiny_models(cache_dir)
    assert again == tiny
    assert {name: (p / MARKER_FILE).stat().st_mtime_ns for name, p in again.items()} == before
    assert {name: (p / "model.safetensors").stat().st_mtime_ns for name, p in again.items()} == weights
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(tiny)  # no temp dirs


def test_ensure_tiny_models_rebuilds_a_stale_or_partial_directory(tmp_path: Path) -> None:
    first = ensure_tiny_models(tmp_path)
    marker = first["sam3"] / MARKER_FILE
    marker.write_text(json.dumps({"builder": "tiny-sam3", "random_weights": True, "format": 0}))
    (first["mllama"] / MARKER_FILE).unlink()  # as if a build had been interrupted
    tracker_mtime = (first["sam3_tracker"] / MARKER_FILE).stat().st_mtime_ns
    second = ensure_tiny_models(tmp_path)
    assert read_marker(second["sam3"])["format"] == FORMAT_VERSION
    assert read_marker(second["mllama"])["builder"] == "tiny-mllama"
    assert (second["sam3_tracker"] / MARKER_FILE).stat().st_mtime_ns == tracker_mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(second)


@pytest.mark.parametrize(
    ("name", "build", "model_class"),
    [
        ("sam3", build_tiny_sam3, "Sam3Model"),
        ("mllama", build_tiny_mllama, "MllamaForConditionalGeneration"),
        ("sam3_tracker", build_tiny_sam3_tracker, "Sam3TrackerModel"),
    ],
)
def test_builds_are_deterministic_for_a_seed(tiny, tmp_path: Path, name, build, model_class) -> None:
    import transformers

    cls = getattr(transformers, model_class)
    rng_state = torch.get_rng_state()
    same = build(tmp_path / "seed0", seed=0)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is left alone
    other = build(tmp_path / "seed1", seed=1)
    cached = cls.from_pretrained(tiny[name], local_files_only=True)
    assert _state_dicts_equal(cls.from_pretrained(same, local_files_only=True), cached)
    assert not _state_dicts_equal(cls.from_pretrained(other, local_files_only=True), cached)
    assert read_marker(other)["seed"] == 1


def test_mid_sam3_has_about_100m_parameters() -> None:
    from transformers import Sam3Model

    config = mid_sam3_config()
    assert config.vision_config.backbone_config.image_size == 1008
    with torch.device("meta"):
        model = Sam3Model(config)
    params = sum(p.numel() for p in model.parameters())
    assert 80_000_000 <= params <= 130_000_000
