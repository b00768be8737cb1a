"""Parse stage of a video job: the same phrase parser and cleaning as for images, on every caption
of a video (its keyframe captions and the source's) → concepts → video–concept pairs (origin
caption, polarity unknown)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Caption
from engine.domain.vocabulary import PairOrigin, Polarity
from engine.ports import PhraseParser
from engine.repositories import labels
from engine.repositories import video_labels as labels_repo
from engine.services.common import StageReport, claim_batch
from engine.services.parse import parse_captions

STAGE = "parse"


def parse_video_batch(session: Session, parser: PhraseParser, job_id: int, video_ids: list[int]) -> StageReport:
    batch = claim_batch(session, STAGE, job_id, video_ids, parser.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    captions = session.execute(
        select(Caption.id, Caption.video_id, Caption.text)
        .where(Caption.video_id.in_([i.subject_id for i in items])).order_by(Caption.id)
    ).all()
    with session.no_autoflush:
        found = parse_captions(report, items, [(c, v, t) for c, v, t in captions], parser, batch.version)
    concept_ids = labels.concept_ids(session, {phrase for _, phrase, _ in found})
    labels_repo.add_pairs(session, [(video_id, concept_ids[phrase], caption) for video_id, phrase, caption in found],
                          polarity=Polarity.UNKNOWN, origin=PairOrigin.CAPTION, model_version_id=batch.version)
    session.flush()
    return report
