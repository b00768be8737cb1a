"""The verifier fine-tuner on the tiny Llama 3.2 Vision: the saved checkpoint is the trained model
(same answers, same version stamp when the adapter loads it), bad requests are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from annotators.verifier_training import TrainingError, VerifierFineTuner
from annotators.verifiers import LlamaExhaustivityVerifier, LlamaMaskVerifier
from engine.ports import MaskQuery, PairQuery, TrainConfig, VerifierExample

pytestmark = pytest.mark.models  # the tiny random-weight models


def mask_examples(n: int = 6) -> list[VerifierExample]:
    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype("uint8"))
    out = []
    for i in range(n):
        mask = np.zeros((48, 64), dtype=bool)
        mask[4 + i: 30, 6: 40 + i] = True
        out.append(VerifierExample(MaskQuery(image, "dog" if i % 2 else "cup", mask), "accept" if i % 2 else "reject"))
    return out


@pytest.mark.parametrize("lora_rank, mode", [(0, "full"), (4, "lora(r=4)")])
def test_saved_checkpoint_is_the_trained_model(tiny, tmp_path, lora_rank, mode):
    train = mask_examples()
    val = [e.query for e in train[:3]]
    result = VerifierFineTuner().train("mv", str(tiny["mllama"]), train, val,
                                       TrainConfig(steps=4, learning_rate=1e-3, batch_size=3, device="cpu",
                                                   lora_rank=lora_rank), str(tmp_path))
    assert result.mode == mode and len(result.losses) == 4
    assert (result.trainable_params < result.total_params) == (lora_rank > 0)
    loaded = LlamaMaskVerifier(result.output_dir, device="cpu")
    assert loaded.stamp == result.stamp  # what the pipeline will register when it loads the folder
    assert loaded.stamp.name == "tiny-mllama+mv-finetune" and loaded.stamp.random_weights
    again = loaded.verify_masks(val)
    for ours, theirs in zip(result.val_probabilities, again, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-5)
    base = LlamaMaskVerifier(str(tiny["mllama"]), device="cpu")
    assert base.stamp.version != result.stamp.version  # the weights changed


def test_ev_examples_train(tiny, tmp_path):
    image = Image.new("RGB", (64, 48), (120, 90, 60))
    train = [VerifierExample(PairQuery(image, "dog", [(4, 4, 20, 20)]), "accept"),
             VerifierExample(PairQuery(image, "cat", []), "reject_missing")]
    result = VerifierFineTuner().train("ev", str(tiny["mllama"]), train, [], TrainConfig(steps=2, device="cpu"),
                                       str(tmp_path))
    assert LlamaExhaustivityVerifier(result.output_dir, device="cpu").stamp == result.stamp


def test_bad_requests(tiny, tmp_path):
    tuner = VerifierFineTuner()
    with pytest.raises(TrainingError, match="unknown verifier task"):
        tuner.train("xx", str(tiny["mllama"]), mask_examples(), [], TrainConfig(device="cpu"), str(tmp_path))
    with pytest.raises(TrainingError, match="no training examples"):
        tuner.train("mv", str(tiny["mllama"]), [], [], TrainConfig(device="cpu"), str(tmp_path))
    wrong = [VerifierExample(mask_examples(1)[0].query, "reject_missing")]  # an EV answer for MV
    with pytest.raises(TrainingError, match="not choices of this verifier"):
        tuner.train("mv", str(tiny["mllama"]), wrong, [], TrainConfig(device="cpu"), str(tmp_path))
    with pytest.raises(TrainingError, match="LoRA rank"):
        tuner.train("mv", str(tiny["mllama"]), mask_examples(), [], TrainConfig(device="cpu", lora_rank=-1),
                    str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing half-saved
