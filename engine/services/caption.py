"""Caption stage: one caption per image from the captioner model, beside the source alt-text."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Caption
from engine.domain.vocabulary import StageStatus
from engine.ports import Captioner
from engine.repositories import labels as labels_repo
from engine.services.common import MAX_SIDE, StageReport, Timer, call_split, claim_batch, describe, load_images, record
from engine.storage import MediaStore

STAGE = "caption"


def printable(text: str) -> str:
    """Model output without control characters (NUL cannot even be stored in PostgreSQL)."""
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t").strip()


def caption_batch(session: Session, store: MediaStore, captioner: Captioner | None, job_id: int,
                  image_ids: list[int], *, max_side: int = MAX_SIDE) -> StageReport:
    """Caption the pending images among ``image_ids``, each handed to the model downscaled to
    ``max_side``. Images the same model version already captioned are not captioned again
    (idempotent per image and model version)."""
    stamps = [] if captioner is None else [captioner.stamp]
    batch = claim_batch(session, STAGE, job_id, image_ids, *stamps)
    report, items = batch.report, batch.items
    if not items:
        return report
    if captioner is None:
        return batch.skip_all("model captions are turned off")
    version = batch.version
    done_before = set(session.scalars(select(Caption.image_id).where(
        Caption.model_version_id == version, Caption.image_id.in_([i.subject_id for i in items]))))
    todo = []
    for item in items:
        if item.subject_id in done_before:
            record(report, item, StageStatus.DONE, version_id=version, detail={"reused": True})
        else:
            todo.append(item)
    with Timer(report, "load"):
        images = load_images(session, store, [i.subject_id for i in todo], max_side=max_side)
    ready = []
    for item in todo:
        image = images[item.subject_id]
        if isinstance(image, str):
            record(report, item, StageStatus.FAILED, version_id=version, error=image)
        else:
            ready.append((item, image))
    with Timer(report, "model") as timer:
        results = call_split(lambda pairs: captioner.caption([img for _, img in pairs]), ready)
    per_image = timer.elapsed / max(len(ready), 1)
    for (item, _), result in zip(ready, results, strict=True):
        if not isinstance(result, Exception):
            result = printable(result)
        if isinstance(result, Exception):
            record(report, item, StageStatus.FAILED, version_id=version,
                   error=f"captioner failed: {describe(result)}", seconds=per_image)
        elif not result.strip():
            record(report, item, StageStatus.FAILED, version_id=version,
                   error="the model returned an empty caption", seconds=per_image)
        else:
            labels_repo.add_captions(session, item.subject_id, version, [result.strip()])
            record(report, item, StageStatus.DONE, version_id=version, seconds=per_image,
                   detail={"caption_sha256": hashlib.sha256(result.strip().encode()).hexdigest()[:16]})
    session.flush()
    return report
