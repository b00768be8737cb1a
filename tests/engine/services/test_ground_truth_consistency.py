"""One ground truth, read the same way by the quality report, the COCO and SA-Co exports, the
verifier training sets and calibration: a database with pairs in every label state
(tests/ground_truth_states.py), each label source, both databases, compared pair by pair and mask
by mask with the hand-written expectation."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.db.models import ImageConcept, Mask, MaskState, TaskKind
from engine.db.session import session_scope
from engine.domain.ground_truth import GroundTruth
from engine.services import calibrate, quality
from engine.services.export import ExportFilters, commit_or_discard, export_dataset
from tests.ground_truth_states import SOURCES, STATES, seed_states


@pytest.fixture
def seeded(settings):
    with session_scope(settings.db_url) as s:
        return seed_states(s, settings.media_path)


def export(settings, fmt: str, out: Path, **filters) -> dict:
    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, fmt, out, ExportFilters(val_percent=0, **filters))
        commit_or_discard(s, result)
    if fmt == "verifier":
        return {"manifest": result.manifest,
                "records": [json.loads(line) for name in ("mv.train.jsonl", "ev.train.jsonl")
                            for line in (out / name).read_text().splitlines()]}
    return json.loads((out / ("saco_train.json" if fmt == "saco" else "instances_train.json")).read_text())


def saco_pairs(data: dict) -> tuple[dict[int, dict], dict[int, set[int]]]:
    """SA-Co entries by pair id, and the exported mask ids per pair."""
    masks: dict[int, set[int]] = defaultdict(set)
    for ann in data["annotations"]:
        masks[ann["image_id"]].add(ann["id"])
    return {e["id"]: e for e in data["images"]}, dict(masks)


@pytest.mark.parametrize("source", SOURCES)
def test_report_and_exports_select_the_same_ground_truth(settings, seeded, tmp_path, source):
    expected = seeded.truth(source)
    expected_masks = seeded.gt_masks(source)
    entries, exported_masks = saco_pairs(export(settings, "saco", tmp_path / "saco", label_source=source))
    with session_scope(settings.db_url) as s:
        report = quality.ground_truth_pairs(s, label_source=source)
        gt = GroundTruth(source)
        defined = set(s.scalars(select(ImageConcept.id).where(gt.ground_truth_pair())))
        defined_masks: dict[int, set[int]] = defaultdict(set)
        for mask_id, pair_id in s.execute(select(Mask.id, Mask.pair_id).join(
                ImageConcept, ImageConcept.id == Mask.pair_id).where(gt.mask_is_ground_truth())):
            defined_masks[pair_id].add(mask_id)
        accepted: dict[int, set[int]] = defaultdict(set)  # what the report scores against on its pairs
        for mask_id, pair_id in s.execute(select(Mask.id, Mask.pair_id).where(Mask.state == MaskState.ACCEPTED)):
            accepted[pair_id].add(mask_id)

    # the pairs: the export's, the definition's and the hand-written ones, pair by pair
    assert set(entries) == defined == set(expected)
    # the masks of every exported pair
    assert {p: exported_masks.get(p, set()) for p in entries} == expected_masks
    assert {p: defined_masks.get(p, set()) for p in defined} == expected_masks
    # the report's pairs are the instance-exhaustive ones, with their images
    instance = {p for p, e in entries.items() if e["is_instance_exhaustive"] == 1}
    assert set(report) == instance == {p for p, t in expected.items() if t.instance_exhaustive}
    assert report == {p: entries[p]["original_image_id"] for p in instance}
    # on them the report's ground truth (their accepted masks) is what the export holds
    assert {p: accepted.get(p, set()) for p in report} == {p: exported_masks.get(p, set()) for p in report}
    for pair_id, entry in entries.items():
        kind = expected[pair_id].kind
        assert entry["is_pixel_exhaustive"] == int(kind != "partial"), seeded.name_of(pair_id)
        assert entry["is_instance_exhaustive"] == int(expected[pair_id].instance_exhaustive)


@pytest.mark.parametrize("source", SOURCES)
def test_coco_lists_the_same_ground_truth(settings, seeded, tmp_path, source):
    data = export(settings, "coco", tmp_path / "coco", label_source=source)
    expected = seeded.truth(source)
    by_image = {seeded.images[seeded.name_of(p)]: p for p in seeded.pairs.values()}
    negative, partial, listed = set(), set(), set()
    for image in data["images"]:
        pair = by_image[image["id"]]  # one pair per image
        assert image["neg_category_ids"] in ([], [seeded.concepts[seeded.name_of(pair)]])
        if image["neg_category_ids"]:
            negative.add(pair)
        if image["not_exhaustive_category_ids"]:
            partial.add(pair)
        listed.add(pair)
    masks: dict[int, set[int]] = defaultdict(set)
    for ann in data["annotations"]:
        masks[by_image[ann["image_id"]]].add(ann["id"])
    assert listed == set(expected)
    assert negative == {p for p, t in expected.items() if t.kind == "negative"}
    assert partial == {p for p, t in expected.items() if t.kind == "partial"}
    assert {p: masks.get(p, set()) for p in listed} == seeded.gt_masks(source)


def test_the_three_selections_of_bug_3_agree(settings, seeded, tmp_path):
    """Once the report (people's pairs with every accepted mask), the default export (AI-decided
    pairs too) and ``--label-source human`` (it dropped the AI-accepted masks of people's pairs)
    selected different pairs and masks from one database. Now each label source is one selection."""
    human_entries, human_masks = saco_pairs(export(settings, "saco", tmp_path / "h", label_source="human"))
    both_entries, both_masks = saco_pairs(export(settings, "saco", tmp_path / "b"))  # the default: both
    with session_scope(settings.db_url) as s:
        report_human = quality.ground_truth_pairs(s)  # the report's default: human
        report_both = quality.ground_truth_pairs(s, label_source="both")
    exh_h, ai_accepted = seeded.pairs["exh_h"], seeded.masks["exh_h"][1]
    assert exh_h in report_human and exh_h in human_entries
    assert ai_accepted in human_masks[exh_h]  # the router's mask a person declared complete: ground truth
    assert human_entries[exh_h]["is_instance_exhaustive"] == 1
    assert set(report_human) == {p for p, e in human_entries.items() if e["is_instance_exhaustive"]}
    assert set(report_both) == {p for p, e in both_entries.items() if e["is_instance_exhaustive"]}
    for p in report_human:  # the same masks wherever a pair is ground truth under both sources
        assert human_masks.get(p, set()) == both_masks.get(p, set())
    # an AI-declared exhaustive pair is partial for people: only their own mask, no exhaustivity flags
    exh_ai = seeded.pairs["exh_ai"]
    assert human_masks[exh_ai] == {seeded.masks["exh_ai"][1]}
    assert (human_entries[exh_ai]["is_instance_exhaustive"], human_entries[exh_ai]["is_pixel_exhaustive"]) == (0, 0)
    assert exh_ai not in report_human and exh_ai in report_both


def test_min_agreement_and_exhaustive_only_narrow_the_ground_truth(settings, seeded, tmp_path):
    from engine.db.models import ModelKind, Verdict, VerdictKind, VerdictSource
    from engine.repositories.model_versions import get_or_create

    exh_h, (m0, m1, _) = seeded.pairs["exh_h"], seeded.masks["exh_h"]
    with session_scope(settings.db_url) as s:  # a second verifier disagrees with the router's accept
        other = get_or_create(s, ModelKind.MASK_VERIFIER, "test-mv", "2")
        s.flush()
        s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=exh_h, mask_id=m1,
                      model_version_id=other.id, label="reject"))
    entries, masks = saco_pairs(export(settings, "saco", tmp_path / "a", label_source="human", min_agreement=0.6))
    # the disputed mask is dropped, so the pair's masks are no longer complete: exported as partial
    assert masks[exh_h] == {m0}
    assert (entries[exh_h]["is_instance_exhaustive"], entries[exh_h]["is_pixel_exhaustive"]) == (0, 0)
    assert set(entries) <= set(seeded.truth("human"))  # narrowing only
    strict, _ = saco_pairs(export(settings, "saco", tmp_path / "b", label_source="human", min_agreement=0.6,
                                  exhaustive_only=True))
    assert exh_h not in strict
    assert set(strict) == {p for p, t in seeded.truth("human").items() if t.kind != "partial"} - {exh_h}
    loose, loose_masks = saco_pairs(export(settings, "saco", tmp_path / "c", label_source="human",
                                           exhaustive_only=True))
    assert set(loose) == {p for p, t in seeded.truth("human").items() if t.kind != "partial"}
    assert loose_masks[exh_h] == {m0, m1}


@pytest.mark.parametrize("source", SOURCES)
def test_verifier_examples_are_ground_truth(settings, seeded, tmp_path, source):
    result = export(settings, "verifier", tmp_path / "v", label_source=source)
    records = result["records"]
    gt_masks = set().union(*seeded.gt_masks(source).values())
    rejections, claims = seeded.rejections(source), seeded.claims(source)
    mv = [r for r in records if r["task"] == "mv"]
    ev = [r for r in records if r["task"] == "ev"]
    assert mv and ev
    for r in mv:  # the target is the mask's ground truth
        assert (r["mask_id"] in gt_masks, r["mask_id"] in rejections) == (r["target"] == 1, r["target"] == 0), r
    for r in ev:  # the pair carries a claim decided under the source
        assert r["pair_id"] in claims, r
    skipped = result["manifest"]["counts"].get("skipped", {})
    if source != "ai":  # people's labels that are not the truth any more are counted, not exported
        undecided, overruled = seeded.pairs["undecided"], seeded.masks["missing_h_empty"][0]
        assert undecided not in {r["pair_id"] for r in ev}
        assert overruled not in {r["mask_id"] for r in mv}
        assert skipped == {
            "ev: human label 'complete': the pair has no claim decided under the label source": 1,
            "mv: human label 'accept': the mask's final state disagrees": 1}
    else:
        assert skipped == {}
    # every mask decided under the source by the one who judged it is an example, but the overruled one
    judged_by = {"human": {"human"}, "ai": {"ai"}, "both": {"human", "ai"}}[source]
    expected_mv = set()
    for name, spec in STATES.items():
        for i, (state, who, _) in enumerate(spec.masks):
            mask_id = seeded.masks[name][i]
            if state != "candidate" and who in judged_by and (mask_id in gt_masks or mask_id in rejections):
                expected_mv.add(mask_id)
    assert {r["mask_id"] for r in mv} == expected_mv - {seeded.masks["missing_h_empty"][0]}


def test_calibration_targets_are_the_human_training_targets(settings, seeded, tmp_path):
    """For every item, calibration's target and the human verifier set's target are one: the same
    items (people's, ground truth under label source human) and the same labels."""
    records = export(settings, "verifier", tmp_path / "v", label_source="human")["records"]
    with session_scope(settings.db_url) as s:
        mv = calibrate.human_decisions(s, TaskKind.VERIFY_MASK)
        ev = calibrate.human_decisions(s, TaskKind.CHECK_EXHAUSTIVITY)
    people = [r for r in records if r["label_source"] in ("human", "label_studio") and r["label"] != "corrected"]
    assert {r["mask_id"]: (r["label"], r["target"]) for r in people if r["task"] == "mv"} == {
        mask_id: (label, calibrate.human_positive(TaskKind.VERIFY_MASK, label, "all"))
        for (mask_id, _), label in mv.items()}
    assert {r["pair_id"]: r["label"] for r in people if r["task"] == "ev"} == {
        pair_id: label for (_, pair_id), label in ev.items()}
