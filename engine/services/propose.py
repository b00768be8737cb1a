"""Propose stage: candidate masks for every phrase of an image, from one encoding of the image.

Masks are deduplicated by IoU per phrase, capped, and stored as COCO RLE with box, area and
score. A failing model call is split and retried down to single phrases; what still fails is
recorded (the image's row says which phrases), the rest is kept.

Memory per image is bounded whatever its size: the proposer is handed the image downscaled to
``max_side`` (``models.max_side``), phrase by phrase (the proposer keeps the image's encoding), so
at most one phrase's masks exist at the downscaled size; each is encoded at the image's original
size on its own (``engine/domain/mask_scale.py``).

With ``embed_to`` (the data directory) and a proposer that has the ``PooledEmbeddings`` port, each proposed
image's embedding — the proposer's vision features pooled, no second encoding — is stored under the image
embedder's model version and added to the similarity index, once per batch. Images not encoded (skipped,
balanced out, nothing left to propose) get none here (``dataengine index embed`` embeds them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.balancing_settings import BalancingSettings
from engine.db.models import Mask, StageItem
from engine.domain.balancing import SKIP_REASON
from engine.domain.mask_scale import encode_at
from engine.domain.masks import RleMask, dedup_by_iou
from engine.domain.vocabulary import StageStatus
from engine.ports import MaskProposer, PooledEmbeddings, Proposal
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
    register,
    with_work,
)
from engine.services.concept_stats import balance_pairs
from engine.services.embeddings import store_embeddings
from engine.settings import ProposeSettings
from engine.storage import MediaStore

STAGE = "propose"


def propose_batch(session: Session, store: MediaStore, proposer: MaskProposer, settings: ProposeSettings,
                  job_id: int, image_ids: list[int], *, max_side: int = MAX_SIDE,
                  balancing: BalancingSettings | None = None, embed_to: Path | None = None) -> StageReport:
    """Propose masks for the claimed images' phrases. With ``balancing``, the pairs of saturated
    concepts are left out (except the explored share); each image's stage detail names them. With
    ``embed_to`` (the data directory, whose ``index/`` holds the similarity index) and a proposer with
    pooled embeddings, the encoded images' embeddings are stored as well (counts["embeddings"])."""
    batch = claim_batch(session, STAGE, job_id, image_ids, proposer.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    version = batch.version
    ids = [i.subject_id for i in items]
    pairs = labels_repo.phrases_of_images(session, ids)
    proposed_before = set(session.scalars(select(Mask.pair_id).where(
        Mask.model_version_id == version, Mask.pair_id.in_([p[0] for p in pairs]))))
    by_image: dict[int, list[tuple[int, str]]] = {}
    for pair_id, image_id, text in pairs:
        if pair_id not in proposed_before:
            by_image.setdefault(image_id, []).append((pair_id, text))
    balanced_out = balance_pairs(session, by_image, balancing) if balancing is not None else {}
    sizes = image_sizes(session, ids)
    pooling = proposer if embed_to is not None and isinstance(proposer, PooledEmbeddings) else None
    pooled: dict[int, NDArray[np.floating]] = {}
    for claimed in items:  # one image in memory at a time
        images: dict[int, PILImage.Image | str] = {}
        if balanced_out.get(claimed.subject_id) and not by_image.get(claimed.subject_id):
            record(report, claimed, StageStatus.SKIPPED, version_id=version, detail={
                "reason": SKIP_REASON, "balanced_out": balanced_out[claimed.subject_id]})
            continue
        if by_image.get(claimed.subject_id):
            with Timer(report, "load"):
                images = load_images(session, store, [claimed.subject_id], max_side=max_side)
        for item, todo, image in with_work(report, [claimed], by_image, images, version,
                                           "no phrase left to propose for this image"):
            _propose_image(session, report, item, todo, image, sizes[item.subject_id], proposer, version, settings,
                           balanced_out.get(item.subject_id, []))
            vector = pooling.pooled_embedding(image) if pooling is not None else None
            if vector is not None:
                pooled[item.subject_id] = vector
        del images
    session.flush()
    if pooling is not None and pooled and embed_to is not None:
        with Timer(report, "embed"):
            embedder_version = register(session, pooling.embedding_stamp).id
            report.counts["embeddings"] += store_embeddings(
                session, embedder_version, list(pooled), np.stack(list(pooled.values())), data_dir=embed_to)
    return report


def _propose_image(session: Session, report: StageReport, item: StageItem, todo: list[tuple[int, str]],
                   image: PILImage.Image, size: tuple[int, int], proposer: MaskProposer, version: int,
                   settings: ProposeSettings, balanced_out: list[str]) -> None:
    masks, failures, elapsed = 0, [], 0.0
    for pair_id, text in todo:
        with Timer(report, "model") as timer:
            result = call_split(lambda batch: proposer.propose(image, batch), [text])[0]
        elapsed += timer.elapsed
        if isinstance(result, Exception):
            failures.append(f"{text!r}: {describe(result)}")
            continue
        encoded, scores = encode_proposals(result, size)
        masks += store_proposals(session, pair_id, version, encoded, scores, settings)
    detail: dict[str, object] = {"phrases": len(todo), "masks": masks}
    if balanced_out:
        detail["balanced_out"] = balanced_out  # phrases of saturated concepts, not proposed
    if failures:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=elapsed,
               error=f"{len(failures)} of {len(todo)} phrases failed: " + "; ".join(failures), detail=detail)
    else:
        record(report, item, StageStatus.DONE, version_id=version, seconds=elapsed, detail=detail)
    report.counts["masks"] += masks


def encode_proposals(proposals: list[Proposal], size: tuple[int, int]) -> tuple[list[RleMask], list[float]]:
    """Each proposal's mask as RLE at the original (height, width), one full-size mask at a time.
    Empties ``proposals``: each mask is let go once encoded."""
    encoded, scores = [], []
    while proposals:
        proposal = proposals.pop(0)
        encoded.append(encode_at(proposal.mask, *size))
        scores.append(float(proposal.score))
    return encoded, scores


def store_proposals(session: Session, pair_id: int, version: int, encoded: list[RleMask], scores: list[float],
                    settings: ProposeSettings) -> int:
    """Keep the best of overlapping masks (IoU above ``dedup_iou``), at most ``max_masks_per_phrase``,
    and store them on the pair; returns how many were stored."""
    scores = [float(s) for s in scores]
    keep = dedup_by_iou(encoded, scores, settings.dedup_iou)[: settings.max_masks_per_phrase]
    for index in keep:
        labels_repo.add_mask(session, pair_id, version, encoded[index], score=scores[index])
    return len(keep)
