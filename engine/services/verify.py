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

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import ImageConcept, Mask, StageItem, Verdict
from engine.domain.mask_scale import decode_at
from engine.domain.masks import MaskError
from engine.domain.vocabulary import Decider, MaskLabel, MaskState, StageStatus, VerdictKind, VerdictSource
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
    ids = [i.subject_id for i in items]
    pairs = labels_repo.phrases_of_images(session, ids)
    by_image: dict[int, list[tuple[int, str]]] = {}
    for pid, image_id, text in pairs:
        by_image.setdefault(image_id, []).append((pid, text))
    sizes = image_sizes(session, sorted(by_image))
    for item, own, image in _one_at_a_time(session, store, report, items, by_image, ev_version, max_side):
        with Timer(report, "model") as timer:
            errors, counts = _verify_image(session, image, sizes[item.subject_id], own, mv, ev, mv_version,
                                           ev_version, survive_probability)
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


def _verify_image(session: Session, image: PILImage.Image, size: tuple[int, int], pairs: list[tuple[int, str]],
                  mv: MaskVerifier,
                  ev: ExhaustivityVerifier, mv_version: int, ev_version: int,
                  survive: float) -> tuple[list[str], tuple[int, int]]:
    pair_ids = [pid for pid, _ in pairs]
    phrase_of = dict(pairs)
    masks = session.scalars(select(Mask).where(Mask.pair_id.in_(pair_ids)).order_by(Mask.id)).all()
    judged = {
        (v.mask_id, v.pair_id, v.kind): v.probabilities or {}
        for v in session.scalars(select(Verdict).where(
            Verdict.pair_id.in_(pair_ids), Verdict.model_version_id.in_([mv_version, ev_version])))
    }
    human_masks, human_pairs = _human_decided(session, pair_ids, masks)
    errors: list[str] = []
    todo: list[Mask] = []
    pending = [m for m in masks if (m.id, m.pair_id, VerdictKind.MASK) not in judged and m.id not in human_masks]
    for start in range(0, len(pending), MASKS_PER_CALL):  # a chunk's masks decoded at a time, at the image's size
        chunk, queries = [], []
        for m in pending[start:start + MASKS_PER_CALL]:
            try:
                decoded = decode_at(labels_repo.rle_of(m), image.height, image.width)
            except MaskError as exc:  # a stored mask written past the validator (dataengine check: M2) fails alone
                errors.append(f"mask {m.id}: {exc}")
                continue
            chunk.append(m)
            queries.append(MaskQuery(image, phrase_of[m.pair_id], decoded))
        todo += chunk
        for mask, result in zip(chunk, call_split(lambda qs: mv.verify_masks(qs), queries), strict=True):
            if isinstance(result, Exception):
                errors.append(f"mask {mask.id}: {describe(result)}")
                continue
            _add(session, VerdictKind.MASK, mask.pair_id, mask.id, mv_version, result)
            judged[(mask.id, mask.pair_id, VerdictKind.MASK)] = result
        del queries
    seen = _boxes_seen(session, pair_ids, ev_version)
    sy, sx = image.height / size[0], image.width / size[1]  # boxes are stored in original pixels
    ev_todo, ev_queries = [], []
    for pid, text in pairs:
        shown = [m for m in masks if m.pair_id == pid
                 and (judged.get((m.id, pid, VerdictKind.MASK), {}).get(MaskLabel.ACCEPT, 0.0) >= survive
                      if m.id not in human_masks else m.state == MaskState.ACCEPTED)]
        ids = sorted(m.id for m in shown)
        if pid in human_pairs or (pid in seen and seen[pid] in (None, ids)):
            continue  # a person decided it, or this EV version judged these very boxes
        ev_todo.append((pid, ids))
        ev_queries.append(PairQuery(image, text, [(m.bbox_x * sx, m.bbox_y * sy, m.bbox_w * sx, m.bbox_h * sy)
                                                  for m in shown]))
    for (pid, ids), result in zip(ev_todo, call_split(lambda qs: ev.verify_pairs(qs), ev_queries), strict=True):
        if isinstance(result, Exception):
            errors.append(f"pair {pid}: {describe(result)}")
            continue
        _add(session, VerdictKind.EXHAUSTIVITY, pid, None, ev_version, result,
             payload={"boxes": len(ids), "mask_ids": ids})
    return errors, (len(todo), len(ev_todo))


def _boxes_seen(session: Session, pair_ids: list[int], ev_version: int) -> dict[int, list[int] | None]:
    """Per pair this EV version judged: the mask ids its latest verdict was shown (None: not
    recorded, from before they were)."""
    out: dict[int, list[int] | None] = {}
    for v in session.scalars(select(Verdict).where(
            Verdict.pair_id.in_(pair_ids), Verdict.model_version_id == ev_version,
            Verdict.kind == VerdictKind.EXHAUSTIVITY).order_by(Verdict.id)):
        ids = (v.payload or {}).get("mask_ids")
        out[v.pair_id] = sorted(ids) if isinstance(ids, list) else None
    return out


def _human_decided(session: Session, pair_ids: list[int], masks: Sequence[Mask]) -> tuple[set[int], set[int]]:
    """Masks and pairs a person has decided or judged (any human verdict counts)."""
    human = session.execute(select(Verdict.mask_id, Verdict.pair_id, Verdict.kind).where(
        Verdict.pair_id.in_(pair_ids), Verdict.source != VerdictSource.AI)).all()
    human_masks = {m.id for m in masks if m.decided_by == Decider.HUMAN}
    human_masks |= {mask_id for mask_id, _, kind in human if mask_id is not None and kind == VerdictKind.MASK}
    human_pairs = set(session.scalars(select(ImageConcept.id).where(
        ImageConcept.id.in_(pair_ids), ImageConcept.decided_by == Decider.HUMAN)))
    human_pairs |= {pair_id for _, pair_id, kind in human if kind != VerdictKind.MASK}
    return human_masks, human_pairs


def _add(session: Session, kind: VerdictKind, pair_id: int, mask_id: int | None, version: int,
         probabilities: dict[str, float], payload: dict[str, object] | None = None) -> None:
    label = max(probabilities, key=probabilities.__getitem__)
    session.add(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pair_id, mask_id=mask_id,
                        model_version_id=version, label=label,
                        probabilities={k: float(v) for k, v in probabilities.items()}, payload=payload))


