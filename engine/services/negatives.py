"""Hard negatives: for each positive phrase of an image, propose nearby concepts (phrase-embedding
neighbours among known concepts, and an LLM's visually similar concepts), keep only the adversarial
ones — the proposer's masks for the candidate overlap the positive's masks — and queue them as
pairs of origin hard_negative, with those masks, for the verifiers and humans to confirm absent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Concept, Mask, StageItem
from engine.domain.masks import RleMask, iou_matrix, is_valid
from engine.domain.phrases import PhraseListError, clean_phrase, parse_phrase_list
from engine.domain.vocabulary import PairOrigin, Polarity, StageStatus
from engine.ports import ConceptSuggester, MaskProposer, PhraseEmbedder
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
from engine.services.propose import encode_proposals, store_proposals
from engine.settings import NegativeSettings, ProposeSettings
from engine.storage import MediaStore

STAGE = "negatives"


@dataclass(frozen=True)
class _Positives:
    """The batch's positive phrases (pairs with masks) by image, and every phrase each image has."""

    by_image: dict[int, list[tuple[int, str]]]  # image id → (pair id, phrase) of its pairs with masks
    masks: dict[int, list[Mask]]  # pair id → its masks
    phrases: dict[int, set[str]]  # image id → the phrases of its pairs (hard negatives left out)


@dataclass(frozen=True)
class _Search:
    """What looking for hard negatives needs, the same for every image of a batch."""

    session: Session
    proposer: MaskProposer
    embedder: PhraseEmbedder
    settings: NegativeSettings
    propose: ProposeSettings
    version: int  # the proposer's
    known: list[str]  # every concept, oldest first
    suggestions: dict[str, list[str]]  # the LLM's concepts per positive phrase


@dataclass
class _Found:
    """What the search found on one image: the phrases it has (grows with every kept negative),
    the negatives kept, how many candidates were tried, and the proposer's failures."""

    image_id: int
    taken: set[str]
    kept: list[dict[str, object]] = field(default_factory=list)
    tried: int = 0
    errors: list[str] = field(default_factory=list)


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
    batch = claim_batch(session, STAGE, job_id, image_ids, proposer.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    if not settings.enabled:
        return batch.skip_all("hard negatives are turned off")
    known = list(session.scalars(select(Concept.text).order_by(Concept.id)))
    positives = _positives(session, [i.subject_id for i in items])
    search = _Search(session, proposer, embedder, settings, propose, batch.version, known,
                     _suggestions(report, suggester, settings, positives))
    sizes = image_sizes(session, sorted(positives.by_image))
    for item, own, image in _one_at_a_time(session, store, report, items, positives.by_image, batch.version,
                                           max_side):
        found = _Found(item.subject_id, set(positives.phrases.get(item.subject_id, set())))
        with Timer(report, "model") as timer:
            for pair_id, text in own:
                _phrase_negatives(search, found, image, sizes[item.subject_id], text, positives.masks[pair_id])
        _record(report, item, found, batch.version, timer.elapsed)
    session.flush()
    return report


def _positives(session: Session, image_ids: list[int]) -> _Positives:
    pairs = labels_repo.phrases_of_images(session, image_ids, exclude_origin=PairOrigin.HARD_NEGATIVE)
    masks: dict[int, list[Mask]] = {}
    for mask in session.scalars(select(Mask).where(Mask.pair_id.in_([p[0] for p in pairs]))):
        masks.setdefault(mask.pair_id, []).append(mask)
    by_image: dict[int, list[tuple[int, str]]] = {}
    phrases: dict[int, set[str]] = {}
    for pair_id, image_id, text in pairs:
        phrases.setdefault(image_id, set()).add(text)
        if masks.get(pair_id):
            by_image.setdefault(image_id, []).append((pair_id, text))
    return _Positives(by_image, masks, phrases)


def _suggestions(report: StageReport, suggester: ConceptSuggester | None, settings: NegativeSettings,
                 positives: _Positives) -> dict[str, list[str]]:
    """The LLM's visually similar concepts for each positive phrase (none when it is not used)."""
    return suggest(report, suggester, settings, {text for own in positives.by_image.values() for _, text in own})


def suggest(report: StageReport, suggester: ConceptSuggester | None, settings: NegativeSettings,
            phrases: set[str]) -> dict[str, list[str]]:
    """The LLM's cleaned, visually similar concepts for each of ``phrases`` (none when it is not used)."""
    texts = sorted(phrases)
    if suggester is None or not settings.use_llm or not texts:
        return {}
    with Timer(report, "llm"):
        answers = call_split(lambda batch: suggester.suggest(batch), texts)
    return {text: _phrases(answer) for text, answer in zip(texts, answers, strict=True)}


def _phrase_negatives(search: _Search, found: _Found, image: PILImage.Image, size: tuple[int, int], text: str,
                      masks: list[Mask]) -> None:
    """Try the concepts near one positive phrase that the image does not have yet; keep (and queue)
    those whose proposed masks overlap the phrase's, at most ``max_per_phrase``."""
    nearby = nearest(search.embedder, text, search.known, search.settings) + search.suggestions.get(text, [])
    candidates = [c for c in dict.fromkeys(nearby) if c not in found.taken]
    found.tried += len(candidates)
    if not candidates:
        return
    positive_rles = [r for r in map(labels_repo.rle_of, masks) if is_valid(r)]  # M2
    kept = 0
    for candidate in candidates:  # one candidate's masks in memory at a time
        result = call_split(lambda batch: search.proposer.propose(image, batch), [candidate])[0]
        if isinstance(result, Exception):
            found.errors.append(f"{candidate!r}: {describe(result)}")
            continue
        encoded, scores = encode_proposals(result, size)
        overlap = float(iou_matrix(encoded, positive_rles).max()) if encoded and positive_rles else 0.0
        if overlap >= search.settings.overlap_iou and kept < search.settings.max_per_phrase:
            kept += 1
            found.taken.add(candidate)
            found.kept.append({"phrase": candidate, "of": text, "iou": round(overlap, 3)})
            _queue(search, found.image_id, candidate, encoded, scores)


def _record(report: StageReport, item: StageItem, found: _Found, version: int, seconds: float) -> None:
    detail = {"candidates": found.tried, "kept": found.kept}
    if found.errors:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=seconds,
               error=f"{len(found.errors)} candidates failed: " + "; ".join(found.errors[:5]), detail=detail)
    else:
        record(report, item, StageStatus.DONE, version_id=version, seconds=seconds, detail=detail)
    report.counts["hard_negatives"] += len(found.kept)


def _one_at_a_time(session: Session, store: MediaStore, report: StageReport, items: list[StageItem],
                   by_image: dict[int, list[tuple[int, str]]], version: int, max_side: int,
                   ) -> Iterator[tuple[StageItem, list[tuple[int, str]], PILImage.Image]]:
    """``with_work`` over the items, each image loaded (downscaled to ``max_side``) only when its
    turn comes and let go after it."""
    for item in items:
        images = (load_images(session, store, [item.subject_id], max_side=max_side)
                  if by_image.get(item.subject_id) else {})
        yield from with_work(report, [item], by_image, images, version, "no positive phrase with masks on this image")


def _phrases(answer: list[str] | str | Exception) -> list[str]:
    """The cleaned concepts of one answer of the LLM (none when it failed or cannot be read)."""
    if isinstance(answer, Exception):
        return []
    try:
        raw = parse_phrase_list(answer) if isinstance(answer, str) else list(answer)
    except PhraseListError:
        return []
    return [c for c in (clean_phrase(r).phrase for r in raw) if c]


def _queue(search: _Search, image_id: int, phrase: str, encoded: list[RleMask], scores: list[float]) -> None:
    """A kept negative becomes a hard_negative pair of the image, with the proposer's masks."""
    concept = labels_repo.concept_ids(search.session, {phrase})[phrase]
    pair = labels_repo.pair_id(search.session, image_id, concept, polarity=Polarity.UNKNOWN,
                               origin=PairOrigin.HARD_NEGATIVE, model_version_id=search.version)
    store_proposals(search.session, pair, search.version, encoded, scores, search.propose)
