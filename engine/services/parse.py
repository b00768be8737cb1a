"""Parse stage: noun phrases from every caption of an image → cleaned concepts → image–concept pairs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Caption, StageItem
from engine.domain.phrases import PhraseListError, clean_phrase, clean_phrases, parse_phrase_list
from engine.domain.vocabulary import PairOrigin, Polarity, StageStatus
from engine.ports import PhraseParser
from engine.repositories import labels as labels_repo
from engine.services.common import StageReport, Timer, call_split, claim_batch, describe, record

STAGE = "parse"


def parse_batch(session: Session, parser: PhraseParser, job_id: int, image_ids: list[int]) -> StageReport:
    batch = claim_batch(session, STAGE, job_id, image_ids, parser.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    version = batch.version
    captions = session.execute(
        select(Caption.id, Caption.image_id, Caption.text)
        .where(Caption.image_id.in_([i.subject_id for i in items])).order_by(Caption.id)
    ).all()
    with session.no_autoflush:
        found = parse_captions(report, items, [(c, i, t) for c, i, t in captions], parser, version)
    # one statement for the concepts and one for the pairs of the whole batch
    concept_ids = labels_repo.concept_ids(session, {phrase for _, phrase, _ in found})
    labels_repo.add_pairs(session, [(image_id, concept_ids[phrase], caption_id)
                                    for image_id, phrase, caption_id in found],
                          polarity=Polarity.UNKNOWN, origin=PairOrigin.CAPTION, model_version_id=version)
    session.flush()
    return report


def parse_captions(report: StageReport, items: list[StageItem], captions: list[tuple[int, int | None, str]],
                   parser: PhraseParser, version: int) -> list[tuple[int, str, int | None]]:
    """Parse the captions (caption id, subject id, text) of the claimed subjects (images or videos),
    each distinct text once, and record each subject's outcome; returns the (subject, phrase,
    caption) pairs to create."""
    texts = sorted({text for _, _, text in captions})
    with Timer(report, "model") as timer:
        answers = dict(zip(texts, call_split(lambda batch: parser.parse(batch), texts), strict=True))
    per_item = timer.elapsed / max(len(items), 1)
    by_subject: dict[int, list[tuple[int, str]]] = {}
    for caption_id, subject_id, text in captions:
        if subject_id is not None:
            by_subject.setdefault(subject_id, []).append((caption_id, text))
    found: list[tuple[int, str, int | None]] = []
    for item in items:
        found += _parse_image(report, item, by_subject.get(item.subject_id, []), answers, version, per_item)
    return found


def _parse_image(report: StageReport, item: StageItem, captions: list[tuple[int, str]],
                 answers: dict[str, list[str] | str | Exception], version: int,
                 seconds: float) -> list[tuple[int, str, int | None]]:
    """Record the image's outcome; returns the (image, phrase, caption) pairs to create."""
    if not captions:
        record(report, item, StageStatus.SKIPPED, version_id=version, seconds=seconds,
               detail={"reason": "the image has no captions"})
        return []
    raw: list[tuple[int, str]] = []  # (caption id, phrase)
    errors: list[str] = []
    for caption_id, text in captions:
        answer = answers[text]
        if isinstance(answer, Exception):
            errors.append(f"parser failed: {describe(answer)}")
            continue
        if isinstance(answer, str):
            try:
                answer = parse_phrase_list(answer)
            except PhraseListError as exc:
                errors.append(str(exc))
                continue
        raw.extend((caption_id, phrase) for phrase in answer)
    if errors and not raw:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=seconds,
               error="; ".join(dict.fromkeys(errors)))
        return []
    kept, dropped = clean_phrases([phrase for _, phrase in raw])
    detail = {"phrases": kept,
              "dropped": [{"phrase": d.source, "reason": d.reason} for d in dropped][:50]}
    if errors:
        detail["errors"] = errors[:10]
    if not kept:
        record(report, item, StageStatus.SKIPPED, version_id=version, seconds=seconds,
               detail={**detail, "reason": "no groundable noun phrase in the captions"})
        return []
    first_caption: dict[str, int] = {}
    for caption_id, phrase in raw:  # the caption each concept was first found in
        cleaned = clean_phrase(phrase).phrase
        if cleaned is not None:
            first_caption.setdefault(cleaned, caption_id)
    record(report, item, StageStatus.DONE, version_id=version, seconds=seconds, detail=detail)
    return [(item.subject_id, phrase, first_caption.get(phrase)) for phrase in kept]
