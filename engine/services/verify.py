"""Verify stage: the AI verifiers judge every candidate of an image.

MV: each mask of each pair, alone (rendered as two views). EV: each pair, with the boxes of the
masks MV thinks are present (P(accept) ≥ survive_probability); with no boxes its answer also gives
the presence score. Each judgement is an AI verdict (label = the most likely choice, with all
probabilities) from the verifier's model version; a verifier version never judges the same mask
or pair twice — except that EV judges a pair again when the boxes it would be shown changed (a newly
promoted MV changed which masks survive; the verdict's payload records the mask ids it saw). Masks
and pairs a person has judged are not judged again (a newly promoted version re-scores only what no
person has decided); a mask a person accepted is one of EV's boxes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import ImageConcept, Mask, StageItem, Verdict
from engine.domain.mask_scale import decode_at
from engine.domain.masks import MaskError
from engine.domain.vocabulary import Decider, MaskState, MaskVerifierAnswer, StageStatus, VerdictKind, VerdictSource
from engine.ports import ExhaustivityVerifier, MaskQuery, MaskVerifier, PairQuery
from engine.repositories import labels as labels_repo
from engine.services.common import (
    MAX_SIDE,
    StageReport,
    Timer,
    call_split,
    claim_batch,
    describe,
    image_sizes,
    load_images,
    record,
    with_work,
)
from engine.storage import MediaStore

STAGE = "verify"
MASKS_PER_CALL = 16  # decoded masks in memory at once (each at most models.max_side² bytes)


def verify_batch(session: Session, store: MediaStore, mv: MaskVerifier, ev: ExhaustivityVerifier,
                 survive_probability: float, job_id: int, image_ids: list[int], *,
                 max_side: int = MAX_SIDE) -> StageReport:
    batch = claim_batch(session, STAGE, job_id, image_ids, mv.stamp, ev.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    mv_version, ev_version = batch.versions
    verifiers = _Verifiers(mv, ev, mv_version, ev_version, survive_probability)
    ids = [i.subject_id for i in items]
    pairs = labels_repo.phrases_of_images(session, ids)
    by_image: dict[int, list[tuple[int, str]]] = {}
    for pid, image_id, text in pairs:
        by_image.setdefault(image_id, []).append((pid, text))
    sizes = image_sizes(session, sorted(by_image))
    for item, own, image in _one_at_a_time(session, store, report, items, by_image, ev_version, max_side):
        with Timer(report, "model") as timer:
            errors, counts = _verify_image(session, image, sizes[item.subject_id], own, verifiers)
        detail = {"masks": counts[0], "pairs": counts[1]}
        if errors:
            record(report, item, StageStatus.FAILED, version_id=ev_version, seconds=timer.elapsed,
                   error=f"{len(errors)} verifier calls failed: " + "; ".join(errors[:5]), detail=detail)
        else:
            record(report, item, StageStatus.DONE, version_id=ev_version, seconds=timer.elapsed, detail=detail)
    session.flush()
    return report


def _one_at_a_time(session: Session, store: MediaStore, report: StageReport, items: list[StageItem],
                   by_image: dict[int, list[tuple[int, str]]], version: int, max_side: int,
                   ) -> Iterator[tuple[StageItem, list[tuple[int, str]], PILImage.Image]]:
    """``with_work`` over the items, each image loaded (downscaled to ``max_side``) only in its turn."""
    for item in items:
        with Timer(report, "load"):
            images = (load_images(session, store, [item.subject_id], max_side=max_side)
                      if by_image.get(item.subject_id) else {})
        yield from with_work(report, [item], by_image, images, version, "no phrase to verify for this image")


@dataclass(frozen=True)
class _Verifiers:
    """The two verifiers and their versions; MV's P(accept) from which a mask is one of EV's boxes."""

    mv: MaskVerifier
    ev: ExhaustivityVerifier
    mv_version: int
    ev_version: int
    survive: float


@dataclass
class _Judging:
    """One image's pairs and masks as the verifiers' passes see them: what each version judged so
    far (grows with the masks pass), what people decided, and the calls that failed."""

    image: PILImage.Image  # downscaled
    size: tuple[int, int]  # the stored (height, width): boxes are stored in its pixels
    pairs: list[tuple[int, str]]
    masks: Sequence[Mask]
    judged: dict[tuple[int | None, int, VerdictKind], dict[str, float]]
    human_masks: set[int]
    human_pairs: set[int]
    errors: list[str] = field(default_factory=list)


def _verify_image(session: Session, image: PILImage.Image, size: tuple[int, int], pairs: list[tuple[int, str]],
                  verifiers: _Verifiers) -> tuple[list[str], tuple[int, int]]:
    """MV on the image's masks not judged yet, then EV on its pairs; the failures and (masks, pairs) judged."""
    pair_ids = [pid for pid, _ in pairs]
    masks = session.scalars(select(Mask).where(Mask.pair_id.in_(pair_ids)).order_by(Mask.id)).all()
    judged = {
        (v.mask_id, v.pair_id, v.kind): v.probabilities or {}
        for v in session.scalars(select(Verdict).where(
            Verdict.pair_id.in_(pair_ids), Verdict.model_version_id.in_([verifiers.mv_version, verifiers.ev_version])))
    }
    state = _Judging(image, size, pairs, masks, judged, *human_decided(session, pair_ids, masks))
    n_masks = _masks_pass(session, verifiers, state)
    n_pairs = _pairs_pass(session, verifiers, state)
    return state.errors, (n_masks, n_pairs)


def _masks_pass(session: Session, verifiers: _Verifiers, state: _Judging) -> int:
    """MV judges each mask this version has not judged and no person decided, a chunk at a time;
    returns how many it was asked about."""
    image, judged, phrase_of = state.image, state.judged, dict(state.pairs)
    todo = 0
    pending = [m for m in state.masks
               if (m.id, m.pair_id, VerdictKind.MASK) not in judged and m.id not in state.human_masks]
    for start in range(0, len(pending), MASKS_PER_CALL):  # a chunk's masks decoded at a time, at the image's size
        chunk, queries = [], []
        for m in pending[start:start + MASKS_PER_CALL]:
            try:
                decoded = decode_at(labels_repo.rle_of(m), image.height, image.width)
            except MaskError as exc:  # a stored mask written past the validator (dataengine check: M2) fails alone
                state.errors.append(f"mask {m.id}: {exc}")
                continue
            chunk.append(m)
            queries.append(MaskQuery(image, phrase_of[m.pair_id], decoded))
        todo += len(chunk)
        for mask, result in zip(chunk, call_split(lambda qs: verifiers.mv.verify_masks(qs), queries), strict=True):
            if isinstance(result, Exception):
                state.errors.append(f"mask {mask.id}: {describe(result)}")
                continue
            add_verdict(session, VerdictKind.MASK, mask.pair_id, mask.id, verifiers.mv_version, result)
            judged[(mask.id, mask.pair_id, VerdictKind.MASK)] = result
        del queries
    return todo


def _pairs_pass(session: Session, verifiers: _Verifiers, state: _Judging) -> int:
    """EV judges each pair no person decided, shown the boxes of its surviving masks, unless this
    version judged it with these very boxes; returns how many pairs it was asked about."""
    seen = boxes_seen(session, [pid for pid, _ in state.pairs], verifiers.ev_version)
    sy, sx = state.image.height / state.size[0], state.image.width / state.size[1]  # boxes: original pixels
    ev_todo, ev_queries = [], []
    for pid, text in state.pairs:
        shown = [m for m in state.masks if m.pair_id == pid and _survives(m, state, verifiers.survive)]
        ids = sorted(m.id for m in shown)
        if pid in state.human_pairs or (pid in seen and seen[pid] in (None, ids)):
            continue  # a person decided it, or this EV version judged these very boxes
        ev_todo.append((pid, ids))
        ev_queries.append(PairQuery(state.image, text, [(m.bbox_x * sx, m.bbox_y * sy, m.bbox_w * sx, m.bbox_h * sy)
                                                        for m in shown]))
    results = call_split(lambda qs: verifiers.ev.verify_pairs(qs), ev_queries)
    for (pid, ids), result in zip(ev_todo, results, strict=True):
        if isinstance(result, Exception):
            state.errors.append(f"pair {pid}: {describe(result)}")
            continue
        add_verdict(session, VerdictKind.EXHAUSTIVITY, pid, None, verifiers.ev_version, result,
             payload={"boxes": len(ids), "mask_ids": ids})
    return len(ev_todo)


def _survives(mask: Mask, state: _Judging, survive: float) -> bool:
    """The mask is one of EV's boxes: a person accepted it, or (no person decided it) MV thinks it present."""
    if mask.id in state.human_masks:
        return mask.state == MaskState.ACCEPTED
    probabilities = state.judged.get((mask.id, mask.pair_id, VerdictKind.MASK), {})
    return probabilities.get(MaskVerifierAnswer.ACCEPT, 0.0) >= survive


def boxes_seen(session: Session, pair_ids: list[int], ev_version: int) -> dict[int, list[int] | None]:
    """Per pair this EV version judged: the mask ids its latest verdict was shown (None: not
    recorded, from before they were)."""
    out: dict[int, list[int] | None] = {}
    for v in session.scalars(select(Verdict).where(
            Verdict.pair_id.in_(pair_ids), Verdict.model_version_id == ev_version,
            Verdict.kind == VerdictKind.EXHAUSTIVITY).order_by(Verdict.id)):
        ids = (v.payload or {}).get("mask_ids")
        out[v.pair_id] = sorted(ids) if isinstance(ids, list) else None
    return out


def human_decided(session: Session, pair_ids: list[int], masks: Sequence[Mask]) -> tuple[set[int], set[int]]:
    """Masks and pairs a person has decided or judged (any human verdict counts)."""
    human = session.execute(select(Verdict.mask_id, Verdict.pair_id, Verdict.kind).where(
        Verdict.pair_id.in_(pair_ids), Verdict.source != VerdictSource.AI)).all()
    human_masks = {m.id for m in masks if m.decided_by == Decider.HUMAN}
    human_masks |= {mask_id for mask_id, _, kind in human if mask_id is not None and kind == VerdictKind.MASK}
    human_pairs = set(session.scalars(select(ImageConcept.id).where(
        ImageConcept.id.in_(pair_ids), ImageConcept.decided_by == Decider.HUMAN)))
    human_pairs |= {pair_id for _, pair_id, kind in human if kind != VerdictKind.MASK}
    return human_masks, human_pairs


def add_verdict(session: Session, kind: VerdictKind, pair_id: int, mask_id: int | None, version: int,
         probabilities: dict[str, float], payload: dict[str, object] | None = None) -> None:
    label = max(probabilities, key=probabilities.__getitem__)
    session.add(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pair_id, mask_id=mask_id,
                        model_version_id=version, label=label,
                        probabilities={k: float(v) for k, v in probabilities.items()}, payload=payload))


