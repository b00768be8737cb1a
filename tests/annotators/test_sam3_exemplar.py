"""annotators/sam3_exemplar.py on the tiny random-weight SAM 3: masks at the image's size, the vision
features encoded once per image key (bounded LRU), the cached path equal to a full forward pass with
the same boxes, and the boxes reaching the model (random weights: shapes and links, not quality)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.factories import photo


@pytest.fixture(scope="module")
def exemplar(tiny):
    from annotators.sam3_exemplar import Sam3ExemplarProposer

    return Sam3ExemplarProposer(str(tiny["sam3"]), score_threshold=0.0, mask_threshold=0.5, feature_cache_size=2,
                                device="cpu")


def _full_forward(proposer, image: Image.Image, phrase: str, boxes, labels):
    import torch

    inputs = proposer.processor(images=image, text=phrase, input_boxes=[[list(b) for b in boxes]],
                                input_boxes_labels=[list(labels)], return_tensors="pt")
    with torch.inference_mode():
        outputs = proposer.model(**{k: v for k, v in inputs.items() if k != "original_sizes"})
        return proposer._proposals(outputs, image)


def test_exemplar_masks_come_at_the_image_size_on_cached_features(exemplar):
    image = photo(7, (80, 60))
    boxes, labels = [(5.0, 5.0, 30.0, 40.0), (40.0, 10.0, 70.0, 50.0)], [1, 0]
    before = exemplar.encoded
    got = exemplar.propose_with_exemplars("image:1", image, "dog", boxes, labels)
    again = exemplar.propose_with_exemplars("image:1", image, "dog", boxes[:1], labels[:1])
    assert exemplar.encoded == before + 1  # the second call reused the image's features
    assert got and all(p.mask.shape == (60, 80) and p.mask.dtype == bool for p in got)
    assert [p.score for p in got] == sorted((p.score for p in got), reverse=True)
    reference = _full_forward(exemplar, image, "dog", boxes, labels)
    assert [round(p.score, 4) for p in got] == [round(p.score, 4) for p in reference]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(got, reference, strict=True))
    assert [round(p.score, 5) for p in again] != [round(p.score, 5) for p in got]  # the boxes reach the model
    assert exemplar.stamp.params["exemplars"] is True


def test_the_feature_cache_is_bounded(exemplar):
    image = photo(8, (64, 48))
    for key in ("a", "b", "c"):
        exemplar.propose_with_exemplars(key, image, "cat", [(1.0, 1.0, 20.0, 20.0)], [1])
    assert list(exemplar._features) == ["b", "c"]
    before = exemplar.encoded
    exemplar.propose_with_exemplars("a", image, "cat", [(1.0, 1.0, 20.0, 20.0)], [1])
    assert exemplar.encoded == before + 1
