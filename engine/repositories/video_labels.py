"""Video–concept pairs (the video half of ``labels``): the same rows as an image's, with
``video_id`` set instead of ``image_id`` (a video's captions: ``videos.add_captions``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Concept, ImageConcept
from engine.db.upsert import insert_ignore
from engine.domain.vocabulary import PairOrigin, Polarity


def add_pairs(session: Session, pairs: list[tuple[int, int, int | None]], *, polarity: Polarity,
              origin: PairOrigin, model_version_id: int | None) -> int:
    """Create (video, concept, caption) pairs in one statement; existing pairs are left alone."""
    rows = [{"video_id": video_id, "concept_id": concept_id, "polarity": polarity.value,
             "origin": origin.value, "model_version_id": model_version_id, "caption_id": caption_id}
            for video_id, concept_id, caption_id in pairs]
    return insert_ignore(session, ImageConcept.__table__, rows, ["video_id", "concept_id"])


def pair_id(session: Session, video_id: int, concept_id: int, *, polarity: Polarity, origin: PairOrigin,
            model_version_id: int | None) -> int:
    """The video pair's id; created if new (an existing pair keeps its origin and polarity)."""
    add_pairs(session, [(video_id, concept_id, None)], polarity=polarity, origin=origin,
              model_version_id=model_version_id)
    return session.scalars(select(ImageConcept.id).where(
        ImageConcept.video_id == video_id, ImageConcept.concept_id == concept_id)).one()


def phrases_of_videos(session: Session, video_ids: list[int], *,
                      exclude_origin: PairOrigin | None = None) -> list[tuple[int, int, str]]:
    """(pair id, video id, phrase) of the videos' pairs not known to be negative, oldest first."""
    query = (select(ImageConcept.id, ImageConcept.video_id, Concept.text)
             .join(Concept, Concept.id == ImageConcept.concept_id)
             .where(ImageConcept.video_id.in_(video_ids), ImageConcept.polarity != Polarity.NEGATIVE))
    if exclude_origin is not None:
        query = query.where(ImageConcept.origin != exclude_origin)
    return [(pid, video_id, text) for pid, video_id, text in session.execute(query.order_by(ImageConcept.id))
            if video_id is not None]
