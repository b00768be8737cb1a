"""Fine-tuning the AI verifiers (implements engine.ports.VerifierTrainer).

The loss is the cross-entropy of the right choice over the choice letters' logits at the answer
position: exactly the distribution annotators/verifiers.py scores with, on exactly the views and
questions it renders. Small models are fine-tuned whole; large ones (or on request) get LoRA
adapters (``peft``) on the attention projections, merged into the weights before saving, so the
saved folder loads like any checkpoint. The folder is written beside its final place and renamed
into ``<output_root>/<task>-<weights hash>`` at the end."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annotators.loading import checkpoint_version, display_name, is_random_weights, resolve
from annotators.verifiers import LlamaExhaustivityVerifier, LlamaMaskVerifier
from engine.domain.vocabulary import VerifierTask
from engine.extras import require
from engine.ports import MaskQuery, ModelStamp, PairQuery, TrainConfig, TrainResult, VerifierExample

MARKER_FILE = "dataengine_model.json"
#: above this many parameters a fine-tune trains LoRA adapters unless told otherwise
LORA_ABOVE_PARAMS = 100_000_000
DEFAULT_LORA_RANK = 16
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
VERIFIERS: dict[str, type[LlamaMaskVerifier] | type[LlamaExhaustivityVerifier]] = {
    VerifierTask.MV: LlamaMaskVerifier, VerifierTask.EV: LlamaExhaustivityVerifier}


class TrainingError(RuntimeError):
    """A fine-tune that cannot run (unknown task or answer, nothing to train on)."""


class VerifierFineTuner:
    def train(self, task: str, base_ref: str, train: Sequence[VerifierExample],
              val: Sequence[MaskQuery | PairQuery], config: TrainConfig, output_root: str) -> TrainResult:
        if task not in VERIFIERS:
            raise TrainingError(f"unknown verifier task {task!r}; use mv or ev")
        if not train:
            raise TrainingError("no training examples")
        require("models", feature="verifier retraining")
        import torch

        torch.manual_seed(config.seed)
        verifier = VERIFIERS[task](base_ref, device=config.device)
        targets = _targets(verifier.labels, train)
        model, mode, trainable = _trainable(verifier.model, config.lora_rank)
        verifier.model = model
        losses = _fit(verifier, model, [e.query for e in train], targets, config)
        if mode != "full":
            model = model.merge_and_unload()
        model.eval()
        verifier.model = model
        val_probabilities = _score(verifier, val)
        total = sum(p.numel() for p in model.parameters())
        out = _save(verifier, model, task, base_ref, Path(output_root))
        stamp = ModelStamp(kind=verifier.stamp.kind, name=display_name(str(out), str(out)),
                           version=checkpoint_version(str(out)), params=verifier.stamp.params,
                           uri=resolve(str(out)), random_weights=is_random_weights(str(out)))
        return TrainResult(stamp, str(out), losses, val_probabilities, trainable, total, mode)


def _targets(labels: Sequence[str], examples: Sequence[VerifierExample]) -> list[int]:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.answer for e in examples if e.answer not in index})
    if unknown:
        raise TrainingError(f"answers {unknown} are not choices of this verifier ({', '.join(labels)})")
    return [index[e.answer] for e in examples]


def _trainable(model: Any, lora_rank: int | None) -> tuple[Any, str, int]:
    """The model to optimise (itself for a full fine-tune, or wrapped with LoRA adapters), the
    mode's name and the number of trainable parameters."""
    total = sum(p.numel() for p in model.parameters())
    rank = lora_rank if lora_rank is not None else (DEFAULT_LORA_RANK if total > LORA_ABOVE_PARAMS else 0)
    if rank < 0:
        raise TrainingError(f"LoRA rank must be 0 (full fine-tune) or positive, not {rank}")
    if rank == 0:
        for p in model.parameters():
            p.requires_grad_(True)
        return model, "full", total
    require("models", "peft", feature="LoRA fine-tuning")
    from peft import LoraConfig, get_peft_model

    try:
        wrapped = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                   target_modules=LORA_TARGETS))
    except ValueError as exc:  # no module of the model matches the targets
        raise TrainingError(f"cannot add LoRA adapters ({', '.join(LORA_TARGETS)}) to this model: {exc}; "
                            "fine-tune it whole with --lora 0") from exc
    return wrapped, f"lora(r={rank})", sum(p.numel() for p in wrapped.parameters() if p.requires_grad)


def _fit(verifier: Any, model: Any, queries: list[MaskQuery | PairQuery], targets: list[int],
         config: TrainConfig) -> list[float]:
    """``config.steps`` optimiser steps over shuffled batches (the examples are cycled); each
    batch's views are rendered when it is used, so memory holds one batch of them."""
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate)
    order = _batches(len(targets), config.batch_size, config.steps, config.seed)
    losses = []
    for batch in order:
        inputs = verifier.inputs(*verifier.prompts([queries[i] for i in batch]))
        logits = verifier.choice_logits(inputs)
        target = torch.tensor([targets[i] for i in batch], device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach().cpu()))
    return losses


def _batches(n: int, size: int, steps: int, seed: int) -> list[list[int]]:
    """Index batches for ``steps`` steps: a fresh shuffle per pass over the data."""
    rng = random.Random(seed)
    size = max(1, min(size, n))
    out: list[list[int]] = []
    pool: list[int] = []
    while len(out) < steps:
        if len(pool) < size:
            refill = list(range(n))
            rng.shuffle(refill)
            pool.extend(refill)
        out.append(pool[:size])
        del pool[:size]
    return out


def _score(verifier: Any, queries: Sequence[MaskQuery | PairQuery]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for i in range(0, len(queries), 8):
        out.extend(verifier.score(*verifier.prompts(queries[i:i + 8])))
    return out


def _save(verifier: Any, model: Any, task: str, base_ref: str, root: Path) -> Path:
    """Save model + processor + marker into a temporary folder, then rename it to its final name
    (``<task>-<weights hash>``); an identical checkpoint already there is kept."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=root))
    try:
        model.save_pretrained(tmp)
        verifier.processor.save_pretrained(tmp)
        base = resolve(base_ref)
        (tmp / MARKER_FILE).write_text(json.dumps({
            "builder": f"{display_name(base, base_ref)}+{task}-finetune",
            "random_weights": is_random_weights(base), "base": base, "task": task}, sort_keys=True))
        target = root / f"{task}-{checkpoint_version(str(tmp))}"
        if target.exists():
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)
        return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
