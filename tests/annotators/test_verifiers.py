"""MV/EV verifiers on the tiny Llama 3.2 Vision (random weights) through the real processor and the
real rendering; the MiniLM phrase embedder (real weights, shipped as a package)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from annotators.verifiers import EV_CHOICES, MV_CHOICES, presence_score
from engine.domain.render import boxes_view, mask_box, mask_view
from engine.ports import MaskQuery, PairQuery

pytestmark = pytest.mark.models  # the tiny random-weight models


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))


def test_mask_view_shows_context_box_and_zoomed_mask(image):
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:70, 60:100] = True
    view = mask_view(image, mask, size=64)
    assert view.size == (128, 64)
    right = np.asarray(view)[:, 64:]
    assert (right[..., 2] > right[..., 0]).mean() > 0.3  # the blue overlay dominates the zoomed view
    assert mask_box(mask) == (60, 40, 100, 70) and mask_box(np.zeros((3, 3), bool)) is None
    with pytest.raises(ValueError, match="does not match"):
        mask_view(image, np.zeros((10, 10), dtype=bool))


def test_boxes_view_draws_every_box(image):
    plain = np.asarray(boxes_view(image, [], size=160))
    boxed = np.asarray(boxes_view(image, [(10, 10, 50, 40), (100, 60, 30, 30)], size=160))
    assert plain.shape == boxed.shape == (120, 160, 3)
    assert tuple(boxed[10, 30]) == (255, 40, 40) and (plain != boxed).any()


def test_mask_verifier_scores_every_choice(tiny, image):
    from annotators.verifiers import LlamaMaskVerifier

    mv = LlamaMaskVerifier(str(tiny["mllama"]), device="cpu")
    mask = np.zeros((120, 160), dtype=bool)
    mask[20:60, 30:90] = True
    out = mv.verify_masks([MaskQuery(image, "cat", mask), MaskQuery(image, "dog", ~mask)])
    assert len(out) == 2
    for probs in out:
        assert list(probs) == [label for label, _ in MV_CHOICES]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5) and min(probs.values()) > 0
    assert out[0] != out[1]  # the rendered input reaches the model
    assert mv.stamp.kind == "mask_verifier" and mv.stamp.random_weights
    assert mv.verify_masks([]) == []


def test_exhaustivity_verifier_and_presence(tiny, image):
    from annotators.verifiers import LlamaExhaustivityVerifier

    ev = LlamaExhaustivityVerifier(str(tiny["mllama"]), device="cpu")
    out = ev.verify_pairs([PairQuery(image, "cat", [(10, 10, 40, 30)]), PairQuery(image, "cat", [])])
    assert [list(p) for p in out] == [[label for label, _ in EV_CHOICES]] * 2
    assert presence_score(out[1]) == pytest.approx(1 - out[1]["accept"])
    assert ev.stamp.kind == "exhaustivity_verifier"


def test_minilm_embeddings_put_related_phrases_closer():
    from annotators.embeddings import MiniLmEmbedder

    embedder = MiniLmEmbedder()
    vectors = embedder.embed(["a small dog", "a puppy", "a steel bridge", "a small dog"])
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert np.allclose(vectors[0], vectors[3])
    assert not embedder.stamp.random_weights


def test_llm_suggester_answers_raw_text(tiny):
    from annotators.parsers import LlmSuggester

    suggester = LlmSuggester(str(tiny["mllama"]), max_new_tokens=6, device="cpu")
    out = suggester.suggest(["dog"])
    assert len(out) == 1 and isinstance(out[0], str)
    assert "hard negatives" in suggester.stamp.params["instruction"]
