"""What must hold after any fault, once the job is done: every item recorded once with a final
status, no duplicate image or stage output, and the media root holding exactly the images' files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from engine.db.models import (
    Caption,
    Image,
    ImageConcept,
    ItemStatus,
    JobItem,
    JobStatus,
    Mask,
    MiningJob,
    ModelKind,
    ModelVersion,
    StageItem,
    StageStatus,
)
from engine.db.session import session_scope
from engine.storage import TMP_PREFIX

FINAL_ITEM = {ItemStatus.DONE, ItemStatus.DUPLICATE, ItemStatus.NEAR_DUPLICATE, ItemStatus.FAILED}
FINAL_STAGE = {StageStatus.DONE, StageStatus.SKIPPED, StageStatus.FAILED}


@dataclass
class JobState:
    """What the invariant check saw, for the test's own assertions."""

    status: JobStatus
    items: dict[str, ItemStatus]  # key → status
    errors: dict[str, str]  # key → error of the failed items
    images: int
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage → status → count

    def count(self, status: ItemStatus) -> int:
        return sum(1 for s in self.items.values() if s is status)


def _problems(db_url: str, media_root: Path, job_id: int) -> tuple[list[str], JobState]:
    problems: list[str] = []
    with session_scope(db_url) as s:
        job = s.get(MiningJob, job_id)
        assert job is not None, f"job {job_id} is missing"
        if job.status is not JobStatus.DONE:
            problems.append(f"job status is {job.status.value}, not done")
        items = s.execute(select(JobItem).where(JobItem.job_id == job_id)).scalars().all()
        keys = [i.key for i in items]
        if len(keys) != len(set(keys)):
            problems.append("an item key is recorded twice")
        for item in items:
            if item.status not in FINAL_ITEM:
                problems.append(f"item {item.key} is {item.status.value}")
            elif item.status is ItemStatus.FAILED and not item.error:
                problems.append(f"item {item.key} failed without a reason")
            elif item.status is not ItemStatus.FAILED and item.image_id is None:
                problems.append(f"item {item.key} is {item.status.value} without an image")
        done_images = [i.image_id for i in items if i.status is ItemStatus.DONE]
        if len(done_images) != len(set(done_images)):
            problems.append("two items were recorded done on the same image (one should be a duplicate)")
        doubled = s.execute(select(Image.sha256).group_by(Image.sha256).having(func.count() > 1)).all()
        problems += [f"image sha256 {sha} stored twice" for (sha,) in doubled]
        doubled = s.execute(select(StageItem.stage, StageItem.subject_id)
                            .where(StageItem.job_id == job_id)
                            .group_by(StageItem.stage, StageItem.subject_id).having(func.count() > 1)).all()
        problems += [f"stage {st} recorded image {img} twice" for st, img in doubled]
        for stage, subject, status in s.execute(select(StageItem.stage, StageItem.subject_id, StageItem.status)
                                                .where(StageItem.job_id == job_id)).all():
            if status not in FINAL_STAGE:
                problems.append(f"stage {stage} image {subject} is {status.value}")
        doubled = s.execute(
            select(Caption.image_id, Caption.model_version_id)
            .join(ModelVersion, ModelVersion.id == Caption.model_version_id)
            .where(ModelVersion.kind == ModelKind.CAPTIONER)
            .group_by(Caption.image_id, Caption.model_version_id).having(func.count() > 1)).all()
        problems += [f"image {img} has two captions of model version {mv}" for img, mv in doubled]
        doubled = s.execute(select(ImageConcept.image_id, ImageConcept.concept_id)
                            .group_by(ImageConcept.image_id, ImageConcept.concept_id).having(func.count() > 1)).all()
        problems += [f"pair image {img} concept {c} stored twice" for img, c in doubled]
        doubled = s.execute(select(Mask.pair_id, Mask.model_version_id, Mask.rle_counts)
                            .group_by(Mask.pair_id, Mask.model_version_id, Mask.rle_counts)
                            .having(func.count() > 1)).all()
        problems += [f"pair {pair} has the same mask of version {mv} twice" for pair, mv, _ in doubled]
        keys_stored = set(s.scalars(select(Image.storage_key)).all())
        stages: dict[str, dict[str, int]] = {}
        for stage, status, n in s.execute(select(StageItem.stage, StageItem.status, func.count())
                                          .where(StageItem.job_id == job_id)
                                          .group_by(StageItem.stage, StageItem.status)).all():
            stages.setdefault(stage, {})[status.value] = n
        state = JobState(job.status, {i.key: i.status for i in items},
                         {i.key: i.error or "" for i in items if i.status is ItemStatus.FAILED},
                         s.scalar(select(func.count()).select_from(Image)) or 0, stages)
    on_disk: set[str] = set()
    for folder, _dirs, files in os.walk(media_root):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), media_root)
            if name.startswith(TMP_PREFIX):
                problems.append(f"temporary file left in the media root: {rel}")
            elif not name.startswith(".filler"):
                on_disk.add(rel)
    problems += [f"image file missing: {k}" for k in sorted(keys_stored - on_disk)]
    problems += [f"orphan media file (no image names it): {k}" for k in sorted(on_disk - keys_stored)]
    return problems, state


def assert_job_sound(db_url: str, media_root: Path, job_id: int) -> JobState:
    """Fail with every broken invariant listed; return what was seen."""
    problems, state = _problems(db_url, media_root, job_id)
    assert not problems, "invariants broken:\n  " + "\n  ".join(problems)
    return state
