"""What a job produced: counts across the whole chain, for the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.db.models import Caption, HumanTask, ImageConcept, JobItem, Mask, ModelVersion, StageItem
from engine.domain.vocabulary import ItemStatus, StageStatus, TaskState


@dataclass(frozen=True)
class JobSummary:
    images: int  # distinct images the job's items map to (kept, not near duplicates)
    duplicates: int  # items that were exact or near duplicates
    captions: int
    concepts: int
    pairs: int
    masks: int
    human_tasks: int  # open or leased tasks on the job's pairs
    failures: int  # failed items and failed stage rows
    random_weight_models: list[str]


def job_summary(session: Session, job_id: int) -> JobSummary:
    image_ids = select(JobItem.image_id).where(
        JobItem.job_id == job_id, JobItem.status.in_([ItemStatus.DONE, ItemStatus.DUPLICATE])
    ).distinct().scalar_subquery()

    def count(query: Select[int]) -> int:
        return session.scalar(query) or 0

    pairs = select(ImageConcept.id).where(ImageConcept.image_id.in_(image_ids)).scalar_subquery()
    versions = select(StageItem.model_version_id).where(
        StageItem.job_id == job_id, StageItem.model_version_id.is_not(None)).distinct().scalar_subquery()
    return JobSummary(
        images=count(select(func.count(func.distinct(JobItem.image_id))).where(
            JobItem.job_id == job_id, JobItem.status.in_([ItemStatus.DONE, ItemStatus.DUPLICATE]))),
        duplicates=count(select(func.count()).where(
            JobItem.job_id == job_id,
            JobItem.status.in_([ItemStatus.DUPLICATE, ItemStatus.NEAR_DUPLICATE]))),
        captions=count(select(func.count()).select_from(Caption).where(Caption.image_id.in_(image_ids))),
        concepts=count(select(func.count(func.distinct(ImageConcept.concept_id))).where(
            ImageConcept.image_id.in_(image_ids))),
        pairs=count(select(func.count()).where(ImageConcept.image_id.in_(image_ids))),
        masks=count(select(func.count()).select_from(Mask).where(Mask.pair_id.in_(pairs))),
        human_tasks=count(select(func.count()).select_from(HumanTask).where(
            HumanTask.pair_id.in_(pairs), HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]))),
        failures=count(select(func.count()).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED))
        + count(select(func.count()).where(StageItem.job_id == job_id, StageItem.status == StageStatus.FAILED)),
        random_weight_models=list(session.scalars(
            select(ModelVersion.name).where(ModelVersion.id.in_(versions), ModelVersion.random_weights)
            .distinct().order_by(ModelVersion.name))),
    )
