"""The verifier export: MV and EV training examples from the verdicts, as JSONL.

Three streams ordered by pair id — the pairs with a (non-gold) verdict, their masks, their
verdicts — are merged pair by pair, so only one pair's rows are held at a time. Per pair:

- MV, people: per mask, the people's label (majority, a tie goes to the latest), answer from
  :func:`engine.domain.exports.verifier_label`;
- MV, AI: a mask the router decided on the verifier's word (``decided_by`` ai) and no person
  judged: the latest AI verdict's label is the answer;
- EV, people: the people's exhaustivity label; the masks are the boxes the EV saw (the
  ``mask_ids`` a verdict recorded, else the pair's masks made by then and not rejected);
- EV, AI: a pair the router decided (``decided_by`` ai) that no person judged: the latest AI
  exhaustivity verdict;
- a finished correction: an EV example with the final masks (none for "not present") answered
  accept, and an MV example answered accept for each mask a person drew.

Every example's item must be ground truth under the label source (engine/domain/ground_truth.py):
an MV example's target must be its mask's ground truth (1: a ground-truth mask, 0: rejected by an
allowed decider); an EV example's pair must carry a claim decided by an allowed decider. Others are
left out and counted in the manifest under ``counts.skipped``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, String, exists, select, type_coerce
from sqlalchemy.orm import aliased

from engine.db.models import Concept, Image, ImageConcept, Mask, Verdict
from engine.domain.exports import SPLITS, ExportSpecError, human_target, split_of, verifier_label
from engine.domain.ground_truth import VERIFIER_TASKS, mask_truth, people_decision
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    CorrectionLabel,
    Decider,
    LabelSource,
    MaskState,
    VerdictKind,
    VerdictSource,
    VerifierTask,
)
from engine.services.export_rows import (
    ExportFilters,
    HashingWriter,
    Progress,
    Stats,
    not_gold,
    pair_conditions,
    standing,
    stream,
    tick,
)


def _joined(stmt: Any, filters: ExportFilters) -> Any:
    """Restrict a statement over a pair-bearing table to the filtered pairs that have a verdict."""
    judging = aliased(Verdict)
    judged = exists().where(judging.pair_id == ImageConcept.id, not_gold(judging))
    return (stmt.join(Image, Image.id == ImageConcept.image_id).join(Concept, Concept.id == ImageConcept.concept_id)
            .where(*pair_conditions(filters), judged))


def _streams(conn: Connection, filters: ExportFilters) -> tuple[Iterator[Any], Iterator[Any], Iterator[Any]]:
    gt = filters.ground_truth
    pairs = _joined(select(
        ImageConcept.id.label("pair_id"), Image.id.label("image_id"), Image.sha256, Image.storage_key,
        Image.width, Image.height, Concept.text, type_coerce(ImageConcept.decided_by, String).label("decided_by"),
        gt.decided_claim().label("claim_is_truth"),
    ).select_from(ImageConcept), filters).order_by(ImageConcept.id)
    masks = _joined(select(
        Mask.id, Mask.pair_id, Mask.rle_counts, Mask.height, Mask.width, Mask.created_at, Mask.model_version_id,
        type_coerce(Mask.state, String).label("state"), type_coerce(Mask.decided_by, String).label("decided_by"),
        gt.mask_is_ground_truth().label("is_truth"), gt.mask_rejection_is_ground_truth().label("is_rejection"),
    ).select_from(Mask).join(ImageConcept, ImageConcept.id == Mask.pair_id), filters).order_by(Mask.pair_id, Mask.id)
    verdicts = _joined(select(
        Verdict.id, Verdict.pair_id, Verdict.mask_id, type_coerce(Verdict.kind, String).label("kind"),
        type_coerce(Verdict.source, String).label("source"), Verdict.label, Verdict.model_version_id,
        Verdict.created_at, Verdict.payload,
    ).select_from(Verdict).join(ImageConcept, ImageConcept.id == Verdict.pair_id).where(not_gold(), standing()),
        filters).order_by(Verdict.pair_id, Verdict.id)
    return stream(conn, pairs), stream(conn, masks), stream(conn, verdicts)


def _by_pair(rows: Iterator[Any]) -> Iterator[tuple[int, list[Any]]]:
    for pair_id, group in groupby(rows, key=attrgetter("pair_id")):
        yield pair_id, list(group)


def _take(groups: Iterator[tuple[int, list[Any]]], state: list[Any], pair_id: int) -> list[Any]:
    """The rows of ``pair_id`` from an ordered group stream (``state`` holds the peeked group)."""
    while state[0] is not None and state[0][0] < pair_id:
        state[0] = next(groups, None)
    if state[0] is not None and state[0][0] == pair_id:
        rows: list[Any] = state[0][1]
        state[0] = next(groups, None)
        return rows
    return []


def write_verifier(conn: Connection, filters: ExportFilters, folder: Path, stats: Stats,
                   progress: Progress | None) -> dict[str, Any]:
    pairs, masks, verdicts = _streams(conn, filters)
    mask_groups, verdict_groups = _by_pair(masks), _by_pair(verdicts)
    mask_state, verdict_state = [next(mask_groups, None)], [next(verdict_groups, None)]
    names = {(task, split): f"{task}.{split}.jsonl" for task in VERIFIER_TASKS for split in SPLITS}
    files = {key: HashingWriter(folder / name) for key, name in names.items()}
    try:
        for pair in pairs:
            split = split_of(pair.sha256, filters.val_percent)
            skipped: list[str] = []
            examples = pair_examples(pair, _take(mask_groups, mask_state, pair.pair_id),
                                     _take(verdict_groups, verdict_state, pair.pair_id), filters, skipped)
            for reason in skipped:
                stats.add("skipped", reason)
            for ex in examples:
                ex["split"] = split
                files[(ex["task"], split)].write(orjson.dumps(ex, option=orjson.OPT_SORT_KEYS
                                                              | orjson.OPT_APPEND_NEWLINE))
                stats.add(split, ex["task"])
                stats.add(split, f"{ex['task']}_positive", ex["target"])
                if ex["model_version_id"] is not None:
                    stats.versions.add(ex["model_version_id"])
                tick(stats, progress)
        return {names[key]: f.close() for key, f in files.items()}
    except BaseException:
        for f in files.values():
            f.abandon()
        raise


# ------------------------------------------------------------------------- per-pair examples
def _decided(verdicts: list[Any]) -> Any:
    """The verdict that carries the people's decision: majority label, a tie to the latest."""
    return verdicts[people_decision([v.label for v in verdicts])]


def _agrees(task: str, target: int, labels: list[str], has_masks: bool, min_agreement: float | None) -> bool:
    if min_agreement is None or not labels:
        return True
    same = sum(1 for label in labels if human_target(task, label, has_masks=has_masks) == target)
    return same / len(labels) >= min_agreement


def pair_examples(pair: Any, masks: list[Any], verdicts: list[Any], filters: ExportFilters,
                  skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The training examples one pair gives (see the module's docstring). A label that maps to no
    verifier answer (e.g. an AI verdict of an older choice list) is left out and its reason
    appended to ``skipped`` (the manifest counts them under ``counts.skipped``)."""
    people = filters.label_source in (LabelSource.HUMAN, LabelSource.BOTH)
    machine = filters.label_source in (LabelSource.AI, LabelSource.BOTH)
    by_id = {m.id: m for m in masks}
    out: list[dict[str, Any]] = []

    def add(task: VerifierTask, verdict: Any, shown: list[Any], mask_id: int | None, source: str,
            label: str | None = None, judged: list[str] | None = None) -> None:
        label = label or verdict.label
        try:
            by = VerdictSource.AI if source == VerdictSource.AI else VerdictSource.HUMAN
            mapped = verifier_label(task, label, has_masks=bool(shown), source=by)
        except ExportSpecError:
            if skipped is not None:
                skipped.append(f"{task}: {source} label {label!r} is no verifier answer")
            return
        reason = _not_truth(task, mapped.target, pair, by_id.get(mask_id) if mask_id is not None else None)
        if reason:
            if skipped is not None:
                skipped.append(f"{task}: {source} label {label!r}: {reason}")
            return
        if not _agrees(task, mapped.target, judged or [], bool(shown), filters.min_agreement):
            return
        out.append({
            "task": task.value, "pair_id": pair.pair_id, "mask_id": mask_id, "phrase": pair.text,
            "image": {"id": pair.image_id, "sha256": pair.sha256, "file_name": pair.storage_key,
                      "width": pair.width, "height": pair.height},
            "masks": [{"size": [m.height, m.width], "counts": m.rle_counts} for m in shown],
            "answer": mapped.answer, "target": mapped.target, "label": label, "label_source": source,
            "verdict_id": verdict.id if verdict is not None else None,
            "model_version_id": verdict.model_version_id if source == VerdictSource.AI else None})

    mv = [v for v in verdicts if v.kind == VerdictKind.MASK and v.mask_id in by_id]
    for mask_id, group in groupby(sorted(mv, key=attrgetter("mask_id", "id")), key=attrgetter("mask_id")):
        rows = list(group)
        human = [v for v in rows if v.source in HUMAN_SOURCES]
        labels = [v.label for v in rows]
        if human and people:
            chosen = _decided(human)
            add(VerifierTask.MV, chosen, [by_id[mask_id]], mask_id, chosen.source, judged=labels)
        elif not human and machine and by_id[mask_id].decided_by == Decider.AI:
            chosen = [v for v in rows if v.source == VerdictSource.AI][-1]
            add(VerifierTask.MV, chosen, [by_id[mask_id]], mask_id, VerdictSource.AI, judged=labels)
    _ev_examples(pair, masks, verdicts, people, machine, add)
    return out


def _not_truth(task: str, target: int, pair: Any, mask: Any) -> str | None:
    """Why an example with ``target`` is not ground truth under the export's label source (None:
    it is): an MV target must be its mask's ground truth, an EV example's pair must carry a claim
    decided by an allowed decider."""
    if task == VerifierTask.MV:
        truth = mask_truth(bool(mask.is_truth), bool(mask.is_rejection))
        if truth is None:
            return "the mask is not decided under the label source"
        return None if truth == target else "the mask's final state disagrees"
    return None if pair.claim_is_truth else "the pair has no claim decided under the label source"


def _shown(masks: list[Any], verdict: Any) -> list[Any]:
    """The pair's masks an exhaustivity judge saw: those its verdict lists (the EV records
    ``mask_ids``), else those made by then and not rejected."""
    listed = (verdict.payload or {}).get("mask_ids")
    if isinstance(listed, list):
        wanted = set(listed)
        return [m for m in masks if m.id in wanted]
    return [m for m in masks if m.state != MaskState.REJECTED and m.created_at <= verdict.created_at]


class _AddExample(Protocol):
    """``pair_examples``' ``add``: appends one example of the pair unless it is left out (see there)."""

    def __call__(self, task: VerifierTask, verdict: Any, shown: list[Any], mask_id: int | None, source: str,
                 label: str | None = None, judged: list[str] | None = None) -> None: ...


def _ev_examples(pair: Any, masks: list[Any], verdicts: list[Any], people: bool, machine: bool,
                 add: _AddExample) -> None:
    """The pair's EV examples (people's or AI's exhaustivity verdict) and its finished correction's."""
    ev = [v for v in verdicts if v.kind == VerdictKind.EXHAUSTIVITY and v.mask_id is None]
    corrections = [v for v in verdicts if v.kind == VerdictKind.CORRECTION and v.source in HUMAN_SOURCES]
    _ev_verdict_example(pair, masks, ev, bool(corrections), people, machine, add)
    if corrections and people:
        _correction_examples(masks, corrections[-1], add)


def _ev_verdict_example(pair: Any, masks: list[Any], ev: list[Any], corrected: bool, people: bool,
                        machine: bool, add: _AddExample) -> None:
    """EV, people (the people's label) or EV, AI (the latest AI verdict of a pair the router decided
    that no person judged nor corrected)."""
    human = [v for v in ev if v.source in HUMAN_SOURCES]
    labels = [v.label for v in ev]
    if human and people:
        chosen = _decided(human)
        add(VerifierTask.EV, chosen, _shown(masks, chosen), None, chosen.source, judged=labels)
    elif _ai_decides_ev(pair, ev, bool(human), corrected, machine):
        chosen = [v for v in ev if v.source == VerdictSource.AI][-1]
        add(VerifierTask.EV, chosen, _shown(masks, chosen), None, VerdictSource.AI, judged=labels)


def _ai_decides_ev(pair: Any, ev: list[Any], judged: bool, corrected: bool, machine: bool) -> bool:
    """The pair's EV example is the AI's: AI labels exported, the router decided it on the
    verifier's word, no person judged or corrected it, and an exhaustivity verdict exists."""
    return not judged and not corrected and machine and pair.decided_by == Decider.AI and bool(ev)


def _correction_examples(masks: list[Any], final: Any, add: _AddExample) -> None:
    """A finished correction: an EV example with the final masks (none for "not present") and an MV
    example for each mask a person drew, all answered accept."""
    accepted = [m for m in masks if m.state == MaskState.ACCEPTED]
    add(VerifierTask.EV, final, accepted if final.label == CorrectionLabel.CORRECTED else [], None, final.source)
    drawn = set((final.payload or {}).get("new_mask_ids") or [])
    for m in accepted:
        if m.id in drawn:
            add(VerifierTask.MV, final, [m], m.id, final.source)
