"""Propose stage: candidate masks for every phrase of an image, from one encoding of the image.

Masks are deduplicated by IoU per phrase, capped, and stored as COCO RLE with box, area and
score. A failing model call is split and retried down to single phrases; what still fails is
recorded (the image's row says which phrases), the rest is kept.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Mask, StageStatus
from engine.domain.masks import RleMask, dedup_by_iou, encode_mask
from engine.ports import MaskProposer
from engine.repositories import labels as labels_repo
from engine.repositories import stages as stages_repo
from engine.services.common import (
    StageReport,
    Timer,
    call_split,
    describe,
    load_images,
    record,
    register,
    with_work,
)
from engine.settings import ProposeSettings
from engine.storage import MediaStore

STAGE = "propose"


def propose_batch(session: Session, store: MediaStore, proposer: MaskProposer, settings: ProposeSettings,
                  job_id: int, image_ids: list[int]) -> StageReport:
    report = StageReport(STAGE)
    items = stages_repo.claim_pending(session, job_id, STAGE, image_ids)
    if not items:
        return report
    version = register(session, proposer.stamp).id
    ids = [i.subject_id for i in items]
    pairs = labels_repo.phrases_of_images(session, ids)
    proposed_before = set(session.scalars(select(Mask.pair_id).where(
        Mask.model_version_id == version, Mask.pair_id.in_([p[0] for p in pairs]))))
    by_image: dict[int, list[tuple[int, str]]] = {}
    for pair_id, image_id, text in pairs:
        if pair_id not in proposed_before:
            by_image.setdefault(image_id, []).append((pair_id, text))
    with Timer(report, "load"):
        images = load_images(session, store, [i for i in ids if by_image.get(i)])
    for item, todo, image in with_work(report, items, by_image, images, version,
                                       "no phrase left to propose for this image"):
        with Timer(report, "model") as timer:
            results = call_split(lambda batch: proposer.propose(image, [t for _, t in batch]), todo)
        masks, failures = 0, []
        for (pair_id, text), result in zip(todo, results):
            if isinstance(result, Exception):
                failures.append(f"{text!r}: {describe(result)}")
            else:
                masks += store_proposals(session, pair_id, version,
                                         [encode_mask(p.mask) for p in result], [p.score for p in result], settings)
        detail = {"phrases": len(todo), "masks": masks}
        if failures:
            record(report, item, StageStatus.FAILED, version_id=version, seconds=timer.elapsed,
                   error=f"{len(failures)} of {len(todo)} phrases failed: " + "; ".join(failures),
                   detail=detail)
        else:
            record(report, item, StageStatus.DONE, version_id=version, seconds=timer.elapsed, detail=detail)
        report.counts["masks"] += masks
    session.flush()
    return report


def store_proposals(session: Session, pair_id: int, version: int, encoded: list[RleMask], scores: list[float],
                    settings: ProposeSettings) -> int:
    """Keep the best of overlapping masks (IoU above ``dedup_iou``), at most ``max_masks_per_phrase``,
    and store them on the pair; returns how many were stored."""
    scores = [float(s) for s in scores]
    keep = dedup_by_iou(encoded, scores, settings.dedup_iou)[: settings.max_masks_per_phrase]
    for index in keep:
        labels_repo.add_mask(session, pair_id, version, encoded[index], score=scores[index])
    return len(keep)
