"""Hard negatives: for each positive phrase of an image, propose nearby concepts (phrase-embedding
neighbours among known concepts, and an LLM's visually similar concepts), keep only the adversarial
ones — the proposer's masks for the candidate overlap the positive's masks — and queue them as
pairs of origin hard_negative, with those masks, for the verifiers and humans to confirm absent."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Concept, Mask, PairOrigin, Polarity, StageItem, StageStatus
from engine.domain.masks import RleMask, iou_matrix, is_valid
from engine.domain.phrases import PhraseListError, clean_phrase, parse_phrase_list
from engine.ports import ConceptSuggester, MaskProposer, PhraseEmbedder
from engine.repositories import labels as labels_repo
from engine.repositories import stages as stages_repo
from engine.services.common import (
    MAX_SIDE,
    StageReport,
    Timer,
    call_split,
    describe,
    image_sizes,
    load_images,
    record,
    register,
    with_work,
)
from engine.services.propose import encode_proposals, store_proposals
from engine.settings import NegativeSettings, ProposeSettings
from engine.storage import MediaStore

STAGE = "negatives"


def nearest(embedder: PhraseEmbedder, phrase: str, known: list[str], settings: NegativeSettings) -> list[str]:
    """Known concepts closest to ``phrase`` within the similarity band (synonyms excluded)."""
    others = [k for k in known if k != phrase]
    if not others or settings.neighbours == 0:
        return []
    vectors = embedder.embed([phrase, *others])
    sims = vectors[1:] @ vectors[0]
    order = np.argsort(-sims)
    return [others[i] for i in order
            if settings.min_similarity <= sims[i] < settings.max_similarity][: settings.neighbours]


def negatives_batch(session: Session, store: MediaStore, proposer: MaskProposer, embedder: PhraseEmbedder,
                    suggester: ConceptSuggester | None, settings: NegativeSettings, propose: ProposeSettings,
                    job_id: int, image_ids: list[int], *, max_side: int = MAX_SIDE) -> StageReport:
    report = StageReport(STAGE)
    items = stages_repo.claim_pending(session, job_id, STAGE, image_ids)
    if not items:
        return report
    version = register(session, proposer.stamp).id
    if not settings.enabled:
        for item in items:
            record(report, item, StageStatus.SKIPPED, detail={"reason": "hard negatives are turned off"})
        return report
    known = list(session.scalars(select(Concept.text).order_by(Concept.id)))
    ids = [i.subject_id for i in items]
    pairs = labels_repo.phrases_of_images(session, ids, exclude_origin=PairOrigin.HARD_NEGATIVE)
    masks_by_pair: dict[int, list[Mask]] = {}
    for mask in session.scalars(select(Mask).where(Mask.pair_id.in_([p[0] for p in pairs]))):
        masks_by_pair.setdefault(mask.pair_id, []).append(mask)
    positives = [(pid, image_id, text) for pid, image_id, text in pairs if masks_by_pair.get(pid)]
    suggestions: dict[str, list[str]] = {}
    if suggester is not None and settings.use_llm and positives:
        texts = sorted({t for _, _, t in positives})
        with Timer(report, "llm"):
            answers = call_split(lambda batch: suggester.suggest(batch), texts)
        for text, answer in zip(texts, answers):
            suggestions[text] = _phrases(answer)
    by_image: dict[int, list[tuple[int, str]]] = {}
    for pid, image_id, text in positives:
        by_image.setdefault(image_id, []).append((pid, text))
    sizes = image_sizes(session, sorted(by_image))
    for item, own, image in _one_at_a_time(session, store, report, items, by_image, version, max_side):
        taken = {t for _, image_id, t in pairs if image_id == item.subject_id}
        kept, tried, errors = [], 0, []
        with Timer(report, "model") as timer:
            for pid, text in own:
                candidates = [c for c in dict.fromkeys(nearest(embedder, text, known, settings) + suggestions.get(text, []))
                              if c not in taken]
                tried += len(candidates)
                if not candidates:
                    continue
                positive_rles = [r for r in map(labels_repo.rle_of, masks_by_pair[pid]) if is_valid(r)]  # M2
                found = 0
                for candidate in candidates:  # one candidate's masks in memory at a time
                    result = call_split(lambda batch: proposer.propose(image, batch), [candidate])[0]
                    if isinstance(result, Exception):
                        errors.append(f"{candidate!r}: {describe(result)}")
                        continue
                    encoded, scores = encode_proposals(result, sizes[item.subject_id])
                    overlap = float(iou_matrix(encoded, positive_rles).max()) if encoded and positive_rles else 0.0
                    if overlap >= settings.overlap_iou and found < settings.max_per_phrase:
                        found += 1
                        taken.add(candidate)
                        kept.append({"phrase": candidate, "of": text, "iou": round(overlap, 3)})
                        _queue(session, item.subject_id, candidate, version, encoded, scores, propose)
        detail = {"candidates": tried, "kept": kept}
        if errors:
            record(report, item, StageStatus.FAILED, version_id=version, seconds=timer.elapsed,
                   error=f"{len(errors)} candidates failed: " + "; ".join(errors[:5]), detail=detail)
        else:
            record(report, item, StageStatus.DONE, version_id=version, seconds=timer.elapsed, detail=detail)
        report.counts["hard_negatives"] += len(kept)
    session.flush()
    return report


def _one_at_a_time(session: Session, store: MediaStore, report: StageReport, items: list[StageItem],
                   by_image: dict[int, list[tuple[int, str]]], version: int, max_side: int,
                   ) -> Iterator[tuple[StageItem, list[tuple[int, str]], PILImage.Image]]:
    """``with_work`` over the items, each image loaded (downscaled to ``max_side``) only when its
    turn comes and let go after it."""
    for item in items:
        images = (load_images(session, store, [item.subject_id], max_side=max_side)
                  if by_image.get(item.subject_id) else {})
        yield from with_work(report, [item], by_image, images, version, "no positive phrase with masks on this image")


def _phrases(answer: object) -> list[str]:
    if isinstance(answer, Exception):
        return []
    try:
        raw = parse_phrase_list(answer) if isinstance(answer, str) else list(answer)  # type: ignore[arg-type]
    except PhraseListError:
        return []
    return [c for c in (clean_phrase(r).phrase for r in raw) if c]


def _queue(session: Session, image_id: int, phrase: str, version: int, encoded: list[RleMask],
           scores: list[float], propose: ProposeSettings) -> None:
    concept = labels_repo.concept_ids(session, {phrase})[phrase]
    pair = labels_repo.pair_id(session, image_id, concept, polarity=Polarity.UNKNOWN,
                               origin=PairOrigin.HARD_NEGATIVE, model_version_id=version)
    store_proposals(session, pair, version, encoded, scores, propose)
