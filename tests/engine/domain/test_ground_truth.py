"""The one definition of ground truth: its SQL predicates against every label state on SQLite and
PostgreSQL (expected values written by hand from docs/architecture.md), and the pure mapping of a
person's decision to a verifier's target."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db.models import ImageConcept, Mask, TaskKind
from engine.domain.exports import verifier_label
from engine.domain.ground_truth import (
    LABEL_SOURCES,
    GroundTruth,
    deciders,
    instance_exhaustive,
    mask_truth,
    people_decision,
    verifier_target,
)
from engine.services.calibrate import human_positive
from tests.ground_truth_states import EXPECTED, SOURCES, STATES, seed_states


@pytest.fixture
def seeded(settings, session):
    return seed_states(session, settings.media_path)


@pytest.mark.parametrize("source", SOURCES)
def test_pairs_of_every_state(session, seeded, source):
    gt = GroundTruth(source)
    rows = session.execute(select(
        ImageConcept.id, gt.negative_pair(), gt.exhaustive_pair(), gt.partial_pair(), gt.ground_truth_pair(),
        gt.instance_exhaustive_pair(), gt.has_ground_truth_mask()))
    got = {seeded.name_of(r[0]): tuple(bool(v) for v in r[1:]) for r in rows}
    assert set(got) == set(STATES)
    for name in STATES:
        truth = EXPECTED[source].get(name)
        kind = truth.kind if truth else None
        expected = (kind == "negative", kind == "exhaustive", kind == "partial", truth is not None,
                    bool(truth and truth.instance_exhaustive), bool(truth and truth.masks))
        assert got[name] == expected, (source, name)
        # the row form the exports evaluate (crowd: among the pair's ground-truth masks) agrees
        crowd = bool(truth) and any(STATES[name].masks[i][2] for i in truth.masks)
        assert instance_exhaustive(got[name][0], got[name][1], crowd) == got[name][4], (source, name)


@pytest.mark.parametrize("source", SOURCES)
def test_masks_of_every_state(session, seeded, source):
    gt = GroundTruth(source)
    got_gt: dict[int, set[int]] = {}
    rejected = set()
    for mask_id, pair_id, is_gt, is_rejection in session.execute(
            select(Mask.id, Mask.pair_id, gt.mask_is_ground_truth(), gt.mask_rejection_is_ground_truth())
            .join(ImageConcept, ImageConcept.id == Mask.pair_id)):
        if is_gt:
            got_gt.setdefault(pair_id, set()).add(mask_id)
        if is_rejection:
            rejected.add(mask_id)
        assert not (is_gt and is_rejection)
    expected = {p: masks for p, masks in seeded.gt_masks(source).items() if masks}
    assert got_gt == expected
    assert rejected == seeded.rejections(source)
    claimed = set(session.scalars(select(ImageConcept.id).where(gt.decided_claim())))
    assert claimed == seeded.claims(source)


def test_label_sources():
    assert LABEL_SOURCES == ("human", "ai", "both")
    assert [len(deciders(s)) for s in LABEL_SOURCES] == [1, 1, 2]
    with pytest.raises(ValueError, match="label source"):
        deciders("robots")
    with pytest.raises(ValueError, match="label source"):
        GroundTruth("robots")


MV_LABELS = ("accept", "reject", "ungroundable")
EV_LABELS = ("complete", "missing", "not_present", "accept", "negative", "exhaustive", "ungroundable")


@pytest.mark.parametrize("label", MV_LABELS)
def test_mv_target_is_one_mapping(label):
    target = verifier_target("mv", label, has_masks=True)
    assert target == verifier_target("verify_mask", label, has_masks=True) == int(label == "accept")
    assert human_positive(TaskKind.VERIFY_MASK, label, "all") == target
    assert verifier_label("mv", label, has_masks=True, source="human").target == target


@pytest.mark.parametrize("label", EV_LABELS)
@pytest.mark.parametrize("has_masks", [True, False])
def test_ev_target_is_one_mapping(label, has_masks):
    target = verifier_target("ev", label, has_masks=has_masks)
    scope = "with_masks" if has_masks else "presence"
    assert human_positive(TaskKind.CHECK_EXHAUSTIVITY, label, scope) == target
    assert verifier_label("ev", label, has_masks=has_masks, source="human").target == target
    if label in ("not_present", "negative"):
        assert target == int(not has_masks)  # absent: right without boxes, wrong with boxes
    else:
        assert target == int(label in ("complete", "accept", "exhaustive"))


def test_verifier_target_refuses_unknown_tasks():
    with pytest.raises(ValueError, match="unknown verifier task"):
        verifier_target("xv", "accept", has_masks=True)


@pytest.mark.parametrize(("labels", "index"), [
    (["accept"], 0),
    (["accept", "reject"], 1),  # a tie goes to the latest
    (["accept", "reject", "accept"], 2),
    (["reject", "accept", "accept", "reject", "reject"], 4),
    (["accept", "accept", "reject"], 1),  # the majority, its latest verdict
])
def test_people_decision(labels, index):
    assert people_decision(labels) == index


def test_people_decision_needs_labels():
    with pytest.raises(ValueError):
        people_decision([])


def test_mask_truth():
    assert (mask_truth(True, False), mask_truth(False, True), mask_truth(False, False)) == (1, 0, None)
