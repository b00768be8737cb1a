"""SAM 3's proposer at a bounded size: masks made one at a time at the size of the image handed in,
equal to transformers' own post-processing, and the image encoded once across phrase-by-phrase calls.
The tiny model has random weights: its masks are noise, only their form and agreement are checked."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.models  # the tiny random-weight models


@pytest.fixture(scope="module")
def proposer(tiny):
    from annotators.sam3 import Sam3Proposer

    return Sam3Proposer(str(tiny["sam3"]), score_threshold=0.0, mask_threshold=0.5, device="cpu")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (300, 420, 3), dtype=np.uint8))


def test_masks_equal_the_library_post_processing(proposer, image):
    import torch

    with torch.inference_mode():
        inputs = proposer.processor(images=image, text="cat", return_tensors="pt")
        outputs = proposer.model(**inputs)
        reference = proposer.processor.post_process_instance_segmentation(
            outputs, threshold=0.0, mask_threshold=0.5, target_sizes=[(image.height, image.width)])[0]
        ours = proposer._proposals(outputs, image)
    order = torch.argsort(reference["scores"], descending=True).tolist()
    assert [p.score for p in ours] == pytest.approx(reference["scores"][order].tolist())
    for p, index in zip(ours, order, strict=True):
        assert p.mask.dtype == bool and p.mask.shape == (300, 420)
        assert np.array_equal(p.mask, reference["masks"][index].numpy().astype(bool))


def test_the_image_is_encoded_once_across_calls(proposer, image, monkeypatch):
    calls = []
    encode = proposer.model.get_vision_features

    def counting(*args, **kwargs):
        calls.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(proposer.model, "get_vision_features", counting)
    together = proposer.propose(image, ["cat", "sofa"])
    one_by_one = proposer.propose(image, ["cat"]) + proposer.propose(image, ["sofa"])
    assert len(calls) == 1  # the same image object: its encoding is kept
    for a_list, b_list in zip(together, one_by_one, strict=True):
        assert [a.score for a in a_list] == [b.score for b in b_list]
        assert all(np.array_equal(a.mask, b.mask) for a, b in zip(a_list, b_list, strict=True))
    proposer.propose(image.copy(), ["cat"])
    assert len(calls) == 2  # another image is encoded anew
