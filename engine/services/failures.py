"""Failure mining: find where people found the model wrong, and take a new pool of images most like
those first (``dataengine mine SOURCE --prioritise-failures``, job option ``prioritise_failures``).

Failures come from people's verdicts (ours and Label Studio's; gold answers and verdicts a later one
superseded — an undo, a reviewer's replacement — excluded), each kept only while the label state it
produced still stands (the state is the one source of truth):

- ``rejected_mask``: a person rejected a mask the proposer made (not one a person made with a model);
  the mask is still rejected;
- ``missing_instances``: a person said instances are missing from the proposer's masks of a pair that
  is still not negative;
- ``false_positive``: a person said the phrase is not present in an image where the proposer found
  masks for it; the pair is still negative.

How a prioritised job runs:

1. Its mine batches embed what they mined with the configured image embedder (``Settings.similarity``:
   pooled SAM 3 vision features, or a cheaper dedicated model), and the recent failure images with the
   same embedder (:func:`embed_for_ranking`). Nothing is handed to the model stages yet.
2. When no item of the job is left to mine, the batch that finished last ranks the mined images not yet
   handed on (:func:`rank_pool`: highest cosine similarity to a recent failure first, an explore share
   in a seeded random order; engine/domain/failure_order.py), keeps each item's score and rank
   (``job_items.failure_score`` / ``priority_rank``), and hands them on in that order.

"Found faster" is measured by the simulation (bench/failure_mining_sim.py) and, once people have
reviewed a prioritised job, by :func:`failure_yield` (in ``dataengine report``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, bindparam, exists, func, literal, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from engine.db.models import ImageConcept, ImageEmbedding, JobItem, Mask, MiningJob, ModelVersion, StageItem, Verdict
from engine.domain.failure_order import failure_scores, priority_order
from engine.domain.similarity import unpack
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    ItemStatus,
    MaskLabel,
    MaskState,
    ModelKind,
    PairLabel,
    Polarity,
    VerdictKind,
)
from engine.failure_settings import FailureMiningSettings
from engine.ports import ImageEmbedder
from engine.services.common import register
from engine.services.embeddings import embed_images
from engine.services.export_rows import not_gold, standing
from engine.storage import MediaStore

log = logging.getLogger(__name__)

OPTION = "prioritise_failures"  # the job option
VERSION_OPTION = "failure_embedder_version_id"  # the embedder version the pool was embedded with
KINDS = ("rejected_mask", "missing_instances", "false_positive")


def is_prioritised(job: MiningJob | None) -> bool:
    return bool(job is not None and (job.options or {}).get(OPTION))


@dataclass(frozen=True)
class FailureImage:
    image_id: int
    failures: int  # failure verdicts on the image (all kinds)
    latest: dt.datetime  # the latest of them
    kinds: tuple[str, ...] = field(default_factory=tuple)


def _proposed_by_model(mask: Any) -> Any:
    """The mask was proposed by a model, not made by a person with one (clicks, exemplars)."""
    return exists().where(ModelVersion.id == mask.model_version_id, ModelVersion.kind == ModelKind.PROPOSER,
                          mask.prompt.is_(None))


def failure_events(concept_ids: Sequence[int] | None = None) -> Any:
    """A SELECT of (image_id, concept_id, kind, at), one row per failure verdict (see the module)."""
    human = [Verdict.source.in_(HUMAN_SOURCES), not_gold(), standing(), ImageConcept.image_id.is_not(None)]
    if concept_ids is not None:
        human.append(ImageConcept.concept_id.in_(list(concept_ids)))
    m = aliased(Mask)
    cols = (ImageConcept.image_id.label("image_id"), ImageConcept.concept_id.label("concept_id"))
    rejected = (select(*cols, _literal("rejected_mask"), Verdict.created_at.label("at"))
                .join(Mask, Mask.id == Verdict.mask_id).join(ImageConcept, ImageConcept.id == Mask.pair_id)
                .where(*human, Verdict.kind == VerdictKind.MASK, Verdict.label == MaskLabel.REJECT.value,
                       Mask.state == MaskState.REJECTED, _proposed_by_model(Mask)))
    missing = (select(*cols, _literal("missing_instances"), Verdict.created_at.label("at"))
               .join(ImageConcept, ImageConcept.id == Verdict.pair_id)
               .where(*human, Verdict.kind == VerdictKind.EXHAUSTIVITY, Verdict.label == PairLabel.MISSING.value,
                      ImageConcept.polarity != Polarity.NEGATIVE))
    false_positive = (select(*cols, _literal("false_positive"), Verdict.created_at.label("at"))
                      .join(ImageConcept, ImageConcept.id == Verdict.pair_id)
                      .where(*human, Verdict.kind == VerdictKind.EXHAUSTIVITY,
                             Verdict.label == PairLabel.NOT_PRESENT.value, ImageConcept.polarity == Polarity.NEGATIVE,
                             exists().where(m.pair_id == ImageConcept.id, _proposed_by_model(m))))
    return union_all(rejected, missing, false_positive)


def _literal(kind: str) -> Any:
    return literal(kind).label("kind")


def recent_failures(session: Session, limit: int, *, concept_ids: Sequence[int] | None = None,
                    exclude: Sequence[int] = ()) -> list[FailureImage]:
    """The ``limit`` images with the most recent failures, latest first (``exclude``: image ids left out)."""
    events = failure_events(concept_ids).subquery()
    where = [events.c.image_id.not_in(list(exclude))] if exclude else []
    rows = session.execute(
        select(events.c.image_id, func.count(), func.max(events.c.at))
        .where(*where).group_by(events.c.image_id)
        .order_by(func.max(events.c.at).desc(), events.c.image_id.desc()).limit(limit)).all()
    if not rows:
        return []
    kinds: dict[int, set[str]] = {}
    for image_id, kind in session.execute(select(events.c.image_id, events.c.kind).where(
            events.c.image_id.in_([r[0] for r in rows])).distinct()):
        kinds.setdefault(int(image_id), set()).add(str(kind))
    return [FailureImage(int(i), int(n), at, tuple(sorted(kinds.get(int(i), ())))) for i, n, at in rows]


def failure_counts(session: Session) -> dict[str, int]:
    """Failure verdicts of each kind, over all images (the report's summary)."""
    events = failure_events().subquery()
    found: dict[str, int] = {str(k): int(n) for k, n in session.execute(
        select(events.c.kind, func.count()).group_by(events.c.kind))}
    return {kind: found.get(kind, 0) for kind in KINDS}


# --------------------------------------------------------------------------- step 1: the mine batches
def embed_for_ranking(session: Session, store: MediaStore, embedder: ImageEmbedder, job_id: int,
                      image_ids: Sequence[int], settings: FailureMiningSettings, *, data_dir: Path,
                      max_side: int | None) -> int:
    """Embed a mine batch's images and the recent failure images (those not embedded yet by this embedder),
    and note the embedder's version on the job; returns how many were embedded. Two batches embedding the
    same image at once: the second one's savepoint is rolled back and it is tried once more (it then finds
    the row)."""
    version_id = register(session, embedder.stamp).id
    job = session.execute(select(MiningJob).where(MiningJob.id == job_id).with_for_update()).scalar_one()
    if job.options.get(VERSION_OPTION) != version_id:
        job.options = {**job.options, VERSION_OPTION: version_id}
    failures = [f.image_id for f in recent_failures(session, settings.max_failure_images)]
    wanted = list(dict.fromkeys([*image_ids, *failures]))
    for attempt in range(2):
        try:
            with session.begin_nested():
                return embed_images(session, store, embedder, wanted, data_dir=data_dir, max_side=max_side)
        except IntegrityError:
            if attempt:
                raise
    return 0


# --------------------------------------------------------------------------- step 2: rank the pool
@dataclass(frozen=True)
class Ranking:
    order: list[int]  # image ids, first to be taken first
    scores: dict[int, float | None]  # highest similarity to a failure (None: no embedding)
    failure_images: int  # the failure images compared with (that have embeddings)


def rank_pool(session: Session, job_id: int, image_ids: Sequence[int], settings: FailureMiningSettings) -> Ranking:
    """Order ``image_ids`` (a prioritised job's mined images) most like recent failures first and keep each
    item's score and rank. Without failures (a new engine) or embeddings, the order is the images' ids, each
    explore place aside. Model-free: it reads the vectors :func:`embed_for_ranking` stored."""
    job = session.get_one(MiningJob, job_id)
    ids = list(dict.fromkeys(image_ids))
    version_id = (job.options or {}).get(VERSION_OPTION)
    pool_ids, pool = _vectors(session, version_id, ids)
    failure_ids = [f.image_id for f in recent_failures(session, settings.max_failure_images)]
    failure_ids = [i for i in failure_ids if i not in set(ids)]  # a pool image is not its own evidence
    _, failures = _vectors(session, version_id, failure_ids)
    scored = dict(zip(pool_ids, failure_scores(pool, failures).tolist(), strict=True)) if len(failures) else {}
    scores: dict[int, float | None] = {i: scored.get(i) for i in ids}
    seed = settings.seed * 1_000_003 + job_id
    order = priority_order(ids, [scores[i] for i in ids], explore_rate=settings.explore_rate, seed=seed)
    rank = {image_id: n for n, image_id in enumerate(order)}
    _keep(session, job_id, rank, scores)
    return Ranking(order, scores, int(len(failures)))


def _vectors(session: Session, version_id: int | None,
             image_ids: Sequence[int]) -> tuple[list[int], NDArray[np.float32]]:
    if version_id is None or not image_ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    out_ids: list[int] = []
    rows: list[NDArray[np.float32]] = []
    for start in range(0, len(image_ids), 1000):
        for image_id, dim, vector in session.execute(
                select(ImageEmbedding.image_id, ImageEmbedding.dim, ImageEmbedding.vector).where(
                    ImageEmbedding.model_version_id == version_id,
                    ImageEmbedding.image_id.in_(image_ids[start:start + 1000]))):
            out_ids.append(int(image_id))
            rows.append(unpack(vector, dim))
    return out_ids, (np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32))


def _keep(session: Session, job_id: int, rank: dict[int, int], scores: dict[int, float | None]) -> None:
    """Each item's rank and score: one statement executed for many parameter sets (a pool of 100,000
    images is not 100,000 round trips of statement preparation)."""
    table = cast(Table, JobItem.__table__)
    stmt = (update(table).where(table.c.job_id == job_id, table.c.image_id == bindparam("image"))
            .values(priority_rank=bindparam("place"), failure_score=bindparam("score")))
    rows = [{"image": image_id, "place": place,
             "score": None if scores.get(image_id) is None else round(float(scores[image_id] or 0.0), 6)}
            for image_id, place in rank.items()]
    for start in range(0, len(rows), 5000):
        session.connection().execute(stmt, rows[start:start + 5000])


def unreleased(session: Session, job_id: int, image_ids: Sequence[int], next_stage: str) -> list[int]:
    """Those of ``image_ids`` without a row in the job's ``next_stage`` yet."""
    have = set(session.scalars(select(StageItem.subject_id).where(
        StageItem.job_id == job_id, StageItem.stage == next_stage)))
    return [i for i in image_ids if i not in have]


def in_rank_order(session: Session, job_id: int, image_ids: Sequence[int]) -> list[int]:
    """``image_ids`` in the job's priority order (images without a rank last, by id)."""
    ranks: dict[int, int] = {int(i): int(r) for i, r in session.execute(
        select(JobItem.image_id, func.min(JobItem.priority_rank)).where(
            JobItem.job_id == job_id, JobItem.priority_rank.is_not(None)).group_by(JobItem.image_id))
        if i is not None and r is not None}
    last = len(ranks)
    return sorted(image_ids, key=lambda i: (ranks.get(i, last), i))


def pool_complete(session: Session, job_id: int) -> bool:
    return not session.scalar(select(func.count()).where(JobItem.job_id == job_id,
                                                         JobItem.status == ItemStatus.PENDING))


# --------------------------------------------------------------------------- how much faster
@dataclass(frozen=True)
class YieldBand:
    band: str  # e.g. "first 25 %"
    images: int  # ranked images in the band
    reviewed: int  # of which people reviewed (gave a verdict on)
    with_failure: int  # of which a failure was found on


def failure_yield(session: Session, job_id: int, bands: int = 4) -> list[YieldBand]:
    """Per quarter of a prioritised job's order: the images people reviewed and those a failure was found
    on; the first quarter's rate over the whole job's is how much faster failures are found than in a
    random order of the same pool."""
    ranks = [(int(i), int(r)) for i, r in session.execute(
        select(JobItem.image_id, func.min(JobItem.priority_rank)).where(
            JobItem.job_id == job_id, JobItem.priority_rank.is_not(None), JobItem.image_id.is_not(None))
        .group_by(JobItem.image_id)) if i is not None and r is not None]
    if not ranks:
        return []
    ids = [i for i, _ in ranks]
    reviewed = set(session.scalars(select(ImageConcept.image_id).join(Verdict, Verdict.pair_id == ImageConcept.id)
                                   .where(ImageConcept.image_id.in_(ids), Verdict.source.in_(HUMAN_SOURCES),
                                          not_gold()).distinct()))
    events = failure_events().subquery()
    failed = set(session.scalars(select(events.c.image_id).where(events.c.image_id.in_(ids)).distinct()))
    ordered = [i for i, _ in sorted(ranks, key=lambda r: r[1])]
    size = max(1, -(-len(ordered) // bands))
    out = []
    for n in range(0, len(ordered), size):
        part = ordered[n:n + size]
        out.append(YieldBand(f"ranks {n + 1}–{n + len(part)}", len(part), sum(i in reviewed for i in part),
                             sum(i in failed for i in part)))
    return out


@dataclass(frozen=True)
class JobYield:
    job_id: int
    name: str
    bands: list[YieldBand]

    @property
    def speedup(self) -> float | None:
        """Failures per reviewed image in the first band over the same in the whole job: how much faster
        the order found failures than a random order of the same pool (None before enough reviews)."""
        if not self.bands:
            return None
        first = self.bands[0]
        reviewed = sum(b.reviewed for b in self.bands)
        failed = sum(b.with_failure for b in self.bands)
        if not first.reviewed or not reviewed or not failed:
            return None
        return (first.with_failure / first.reviewed) / (failed / reviewed)


def prioritised_yields(session: Session, limit: int = 20) -> list[JobYield]:
    """The latest ``limit`` prioritised jobs with their :func:`failure_yield`."""
    jobs = [j for j in session.scalars(select(MiningJob).order_by(MiningJob.id.desc()).limit(2000))
            if is_prioritised(j)][:limit]
    return [JobYield(j.id, j.name, failure_yield(session, j.id)) for j in jobs]
