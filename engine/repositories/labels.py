"""Captions, concepts, image–concept pairs and masks."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Caption, Concept, ImageConcept, Mask
from engine.db.upsert import insert_ignore
from engine.domain.masks import RleMask, validate_mask
from engine.domain.vocabulary import PairOrigin, Polarity


def add_captions(session: Session, image_id: int, model_version_id: int, texts: list[str]) -> int:
    rows = [{"image_id": image_id, "model_version_id": model_version_id, "text": text,
             "text_sha256": hashlib.sha256(text.encode()).hexdigest()} for text in texts]
    return insert_ignore(session, Caption.__table__, rows, ["image_id", "model_version_id", "text_sha256"])


def concept_ids(session: Session, texts: set[str]) -> dict[str, int]:
    """Ids of the concepts with these normalised texts, creating the missing ones."""
    if not texts:
        return {}
    insert_ignore(session, Concept.__table__, [{"text": t} for t in sorted(texts)], ["text"])
    return dict(session.execute(select(Concept.text, Concept.id).where(Concept.text.in_(texts))).all())


def pair_id(session: Session, image_id: int, concept_id: int, *, polarity: Polarity,
            origin: PairOrigin, model_version_id: int | None, caption_id: int | None = None) -> int:
    """The pair's id; created if new (an existing pair keeps its origin and polarity)."""
    insert_ignore(session, ImageConcept.__table__, [{
        "image_id": image_id, "concept_id": concept_id, "polarity": polarity.value,
        "origin": origin.value, "model_version_id": model_version_id, "caption_id": caption_id,
    }], ["image_id", "concept_id"])
    return session.scalars(select(ImageConcept.id).where(
        ImageConcept.image_id == image_id, ImageConcept.concept_id == concept_id)).one()


def add_pairs(session: Session, pairs: list[tuple[int, int, int | None]], *, polarity: Polarity,
              origin: PairOrigin, model_version_id: int | None) -> int:
    """Create (image, concept, caption) pairs in one statement; existing pairs are left alone."""
    rows = [{"image_id": image_id, "concept_id": concept_id, "polarity": polarity.value,
             "origin": origin.value, "model_version_id": model_version_id, "caption_id": caption_id}
            for image_id, concept_id, caption_id in pairs]
    return insert_ignore(session, ImageConcept.__table__, rows, ["image_id", "concept_id"])


def add_mask(session: Session, pair_id: int, model_version_id: int, mask: RleMask, *,
             score: float | None = None, is_crowd: bool = False) -> Mask:
    validate_mask(mask)  # the last gate: no invalid RLE is stored (raises MaskError)
    x, y, w, h = mask.bbox
    row = Mask(pair_id=pair_id, model_version_id=model_version_id, rle_counts=mask.counts,
               height=mask.height, width=mask.width, bbox_x=x, bbox_y=y, bbox_w=w, bbox_h=h,
               area=mask.area, score=score, is_crowd=is_crowd)
    session.add(row)
    return row


def rle_of(mask: Mask) -> RleMask:
    """A stored mask as the domain's RLE record."""
    return RleMask(mask.rle_counts, mask.height, mask.width,
                   (mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h), mask.area)


def phrases_of_images(session: Session, image_ids: list[int], *,
                      exclude_origin: PairOrigin | None = None) -> list[tuple[int, int, str]]:
    """(pair id, image id, phrase) of the images' pairs not known to be negative, oldest first."""
    query = (select(ImageConcept.id, ImageConcept.image_id, Concept.text)
             .join(Concept, Concept.id == ImageConcept.concept_id)
             .where(ImageConcept.image_id.in_(image_ids), ImageConcept.polarity != Polarity.NEGATIVE))
    if exclude_origin is not None:
        query = query.where(ImageConcept.origin != exclude_origin)
    return [(pid, image_id, text) for pid, image_id, text in session.execute(query.order_by(ImageConcept.id))
            if image_id is not None]
