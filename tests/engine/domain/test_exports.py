"""The pure pieces of the exports: split by hash, the verifier label mapping, SA-Co boxes/flags."""

from __future__ import annotations

import hashlib

import pytest

from engine.db.models import TaskKind
from engine.domain.exports import (
    EV_ANSWERS,
    MV_ANSWERS,
    ExportSpecError,
    VerifierLabel,
    exhaustivity_flags,
    human_target,
    saco_area,
    saco_box,
    split_of,
    verifier_label,
)
from engine.services.calibrate import human_positive


def test_split_is_a_function_of_the_hash_and_near_the_share():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    val = [s for s in shas if split_of(s, 10) == "val"]
    assert 300 < len(val) < 500
    assert all(split_of(s, 10) == "val" for s in val)  # stable
    assert {split_of(s, 0) for s in shas} == {"train"} and {split_of(s, 100) for s in shas} == {"val"}
    assert set(val) <= {s for s in shas if split_of(s, 20) == "val"}  # a bigger share only adds images
    with pytest.raises(ExportSpecError):
        split_of("not-hex", 10)
    with pytest.raises(ExportSpecError):
        split_of(shas[0], 101)


@pytest.mark.parametrize("label", ["accept", "reject", "ungroundable"])
def test_mv_target_is_the_calibration_target(label):
    assert human_target("mv", label, has_masks=True) == human_positive(TaskKind.VERIFY_MASK, label, "all")


@pytest.mark.parametrize("label", ["complete", "missing", "not_present", "accept", "negative"])
@pytest.mark.parametrize("has_masks", [True, False])
def test_ev_target_is_the_calibration_target(label, has_masks):
    scope = "with_masks" if has_masks else "presence"
    assert human_target("ev", label, has_masks=has_masks) == human_positive(TaskKind.CHECK_EXHAUSTIVITY, label, scope)


@pytest.mark.parametrize(("task", "label", "has_masks", "source", "expected"), [
    ("mv", "accept", True, "human", VerifierLabel("accept", 1)),
    ("mv", "reject", True, "human", VerifierLabel("reject", 0)),
    ("mv", "ungroundable", True, "human", VerifierLabel("flag_label", 0)),
    ("ev", "complete", True, "human", VerifierLabel("accept", 1)),
    ("ev", "complete", False, "human", VerifierLabel("accept", 1)),
    ("ev", "missing", True, "human", VerifierLabel("reject_missing", 0)),
    ("ev", "not_present", False, "human", VerifierLabel("accept", 1)),
    ("ev", "not_present", True, "human", VerifierLabel("reject_missing", 0)),
    ("ev", "ungroundable", False, "human", VerifierLabel("ungroundable", 0)),
    ("ev", "corrected", True, "human", VerifierLabel("accept", 1)),
    ("mv", "corrected", True, "human", VerifierLabel("accept", 1)),
    ("mv", "whole_image", True, "ai", VerifierLabel("whole_image", 0)),
    ("ev", "reject_unseparated", True, "ai", VerifierLabel("reject_unseparated", 0)),
    ("ev", "accept", False, "ai", VerifierLabel("accept", 1)),
])
def test_verifier_label(task, label, has_masks, source, expected):
    got = verifier_label(task, label, has_masks=has_masks, source=source)
    assert got == expected
    assert got.answer in (MV_ANSWERS if task == "mv" else EV_ANSWERS)


def test_verifier_label_refuses_what_it_cannot_map():
    with pytest.raises(ExportSpecError):
        verifier_label("xv", "accept", has_masks=True, source="human")
    with pytest.raises(ExportSpecError):
        verifier_label("mv", "complete", has_masks=True, source="ai")  # not an MV choice


def test_answers_are_the_verifiers_choices():
    from annotators.verifiers import EV_CHOICES, MV_CHOICES

    assert MV_ANSWERS == tuple(label for label, _ in MV_CHOICES)
    assert EV_ANSWERS == tuple(label for label, _ in EV_CHOICES)


def test_saco_box_area_and_flags():
    assert saco_box((10.0, 20.0, 30.0, 40.0), 100, 200) == [0.1, 0.1, 0.3, 0.2]
    assert saco_area(50, 10, 20) == 0.25
    with pytest.raises(ExportSpecError):
        saco_box((0, 0, 1, 1), 0, 10)
    assert exhaustivity_flags(True, False) == (1, 1)
    assert exhaustivity_flags(True, True) == (0, 1)
    assert exhaustivity_flags(False, False) == (0, 0)
    assert exhaustivity_flags(None, True) == (0, 0)
