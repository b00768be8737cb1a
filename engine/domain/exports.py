"""Pure pieces of the training-set exports: the train/val split, SA-Co boxes, the flags of a pair,
and the mapping of a stored label to the answer a verifier should have given.

The verifier mapping is the shared contract between ``dataengine export verifier`` (which writes
it into every record) and ``dataengine retrain verifier`` (which trains on it); see
docs/architecture.md, "Exports"."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.ground_truth import (  # noqa: F401 - the verifier mapping's names, at home in ground_truth
    LABEL_SOURCES,
    POSITIVE_LABELS,
    PRESENCE_POSITIVE,
    VERIFIER_TASKS,
    verifier_target,
)
from engine.domain.vocabulary import (
    CorrectionLabel,
    ExhaustivityVerifierAnswer,
    MaskLabel,
    MaskVerifierAnswer,
    VerdictSource,
    VerifierTask,
)

SPLITS = ("train", "val")
UNGROUNDABLE = MaskLabel.UNGROUNDABLE
#: the verifier's answer for a human "ungroundable"
UNGROUNDABLE_ANSWER = {VerifierTask.MV: MaskVerifierAnswer.FLAG_LABEL,
                       VerifierTask.EV: ExhaustivityVerifierAnswer.UNGROUNDABLE}
NEGATIVE_ANSWER = {VerifierTask.MV: MaskVerifierAnswer.REJECT,
                   VerifierTask.EV: ExhaustivityVerifierAnswer.REJECT_MISSING}
#: choice labels of the verifiers (annotators/verifiers.py MV_CHOICES / EV_CHOICES, in that order)
MV_ANSWERS = tuple(MaskVerifierAnswer)
EV_ANSWERS = tuple(ExhaustivityVerifierAnswer)
ANSWERS: dict[str, tuple[str, ...]] = {VerifierTask.MV: MV_ANSWERS, VerifierTask.EV: EV_ANSWERS}
#: the verifiers' answer that the item is right (the same word for both verifiers)
ACCEPT_ANSWER = MaskVerifierAnswer.ACCEPT


class ExportSpecError(ValueError):
    """An export request that cannot be honoured (unknown format, bad filter value)."""


@dataclass(frozen=True)
class VerifierLabel:
    answer: str  # a choice label of the verifier (MV_ANSWERS / EV_ANSWERS)
    target: int  # 1: the verifier should have said accept


def split_of(sha256: str, val_percent: int) -> str:
    """``val`` for about ``val_percent`` % of images, chosen by their content hash: an image stays
    in the same split whatever else is exported, and copies of one image never straddle splits."""
    if not 0 <= val_percent <= 100:
        raise ExportSpecError(f"val_percent must lie in 0..100, not {val_percent}")
    try:
        bucket = int(sha256[:8], 16) % 100
    except ValueError:
        raise ExportSpecError(f"not a sha256 hex digest: {sha256!r}") from None
    return "val" if bucket < val_percent else "train"


def human_target(task: str, label: str, *, has_masks: bool) -> int:
    """A person's label as the verifier's binary target: the one mapping of
    :func:`engine.domain.ground_truth.verifier_target` (calibration uses it too)."""
    if task not in VERIFIER_TASKS:
        raise ExportSpecError(f"unknown verifier task {task!r}; use mv or ev")
    return verifier_target(task, label, has_masks=has_masks)


def verifier_label(task: str, label: str, *, has_masks: bool, source: str) -> VerifierLabel:
    """The answer a verifier should give for an item that was labelled ``label``.

    - ``source`` "ai": the AI verdict's own label is the answer (it decided the item); target 1
      when that label is accept.
    - a person's "ungroundable": ``flag_label`` (MV) / ``ungroundable`` (EV), target 0.
    - a person's other labels: ``accept`` when :func:`human_target` is 1, else ``reject`` (MV) /
      ``reject_missing`` (EV).
    - a finished correction ("corrected"): the corrected set is complete and each drawn mask is an
      instance, so ``accept`` for both tasks.
    """
    if task not in VERIFIER_TASKS:
        raise ExportSpecError(f"unknown verifier task {task!r}; use mv or ev")
    if source == VerdictSource.AI:
        if label not in ANSWERS[task]:
            raise ExportSpecError(f"{label!r} is not a {task} verifier answer")
        return VerifierLabel(label, int(label == ACCEPT_ANSWER))
    if label == CorrectionLabel.CORRECTED:
        return VerifierLabel(ACCEPT_ANSWER, 1)
    if label == UNGROUNDABLE:
        return VerifierLabel(UNGROUNDABLE_ANSWER[VerifierTask(task)], 0)
    target = human_target(task, label, has_masks=has_masks)
    return VerifierLabel(ACCEPT_ANSWER if target else NEGATIVE_ANSWER[VerifierTask(task)], target)


def saco_box(bbox: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """An absolute ``[x, y, w, h]`` box as SA-Co's normalised ``[x, y, w, h]`` in 0..1."""
    if width <= 0 or height <= 0:
        raise ExportSpecError(f"image size must be positive, not {width}x{height}")
    x, y, w, h = bbox
    return [x / width, y / height, w / width, h / height]


def saco_area(area: int, width: int, height: int) -> float:
    """A mask's pixel count as the share of the image it covers (SA-Co's normalised area)."""
    return area / (width * height)


def saco_flags(negative: bool, exhaustive: bool, instance_exhaustive: bool) -> tuple[int, int]:
    """SA-Co's ``(is_instance_exhaustive, is_pixel_exhaustive)`` of an exported pair, from its
    ground truth (engine/domain/ground_truth.py): a negative has nothing missing (1, 1); an
    exhaustive pair has every pixel masked and separate instances unless a mask is a crowd
    (``instance_exhaustive``, the one predicate); a partial pair may miss instances (0, 0)."""
    return int(instance_exhaustive), int(negative or exhaustive)


def exhaustivity_flags(is_exhaustive: bool | None, has_crowd: bool) -> tuple[int, int]:
    """SA-Co's ``(is_instance_exhaustive, is_pixel_exhaustive)`` of a pair. A pair a person or the
    EV declared exhaustive has every pixel of the phrase masked; its instances are separate only
    when none of its masks is a crowd mask (one mask covering several instances)."""
    if not is_exhaustive:
        return 0, 0
    return (0 if has_crowd else 1), 1

