"""Caption stage of a video job: the captioner on ``video.keyframes`` evenly spaced sampled frames
of each video, one caption row per distinct keyframe caption (the parser reads each; its phrases
become the video's pairs). The source's own captions / alt-text are stored by mining (version
``source:alt-text``), as an image's are; parse reads both."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Caption, StageItem
from engine.domain.video_render import evenly_spaced
from engine.domain.vocabulary import StageStatus
from engine.ports import Captioner
from engine.repositories import videos as videos_repo
from engine.services.caption import printable
from engine.services.common import MAX_SIDE, StageReport, Timer, call_split, claim_batch, describe, record
from engine.services.video_stages.media import open_video, read_frames
from engine.storage import MediaStore

STAGE = "caption"


def caption_video_batch(session: Session, store: MediaStore, captioner: Captioner | None, job_id: int,
                        video_ids: list[int], *, keyframes: int, max_side: int = MAX_SIDE) -> StageReport:
    """Caption the pending videos among ``video_ids`` on ``keyframes`` keyframes each. Videos the
    same model version already captioned are not captioned again (idempotent per video and version)."""
    stamps = [] if captioner is None else [captioner.stamp]
    batch = claim_batch(session, STAGE, job_id, video_ids, *stamps)
    report, items = batch.report, batch.items
    if not items:
        return report
    if captioner is None:
        return batch.skip_all("model captions are turned off")
    version = batch.version
    done_before = set(session.scalars(select(Caption.video_id).where(
        Caption.model_version_id == version, Caption.video_id.in_([i.subject_id for i in items]))))
    for item in items:
        if item.subject_id in done_before:
            record(report, item, StageStatus.DONE, version_id=version, detail={"reused": True})
        else:
            _caption_video(session, store, captioner, report, item, version, keyframes, max_side)
    session.flush()
    return report


def _caption_video(session: Session, store: MediaStore, captioner: Captioner, report: StageReport,
                   item: StageItem, version: int, keyframes: int, max_side: int) -> None:
    with Timer(report, "load"):
        video = open_video(session, store, item.subject_id, max_side)
        frames = (read_frames(video, evenly_spaced(range(video.frame_count), keyframes))
                  if not isinstance(video, str) else video)
    if isinstance(frames, str):
        record(report, item, StageStatus.FAILED, version_id=version, error=frames)
        return
    with Timer(report, "model") as timer:
        results = call_split(lambda batch: captioner.caption(batch), frames)
    texts = [printable(r) for r in results if not isinstance(r, Exception)]
    texts = list(dict.fromkeys(t for t in texts if t))
    errors = [f"captioner failed: {describe(r)}" for r in results if isinstance(r, Exception)]
    if not texts:
        error = "; ".join(dict.fromkeys(errors)) or "the model returned an empty caption"
        record(report, item, StageStatus.FAILED, version_id=version, error=error, seconds=timer.elapsed)
        return
    videos_repo.add_captions(session, item.subject_id, version, texts)
    detail: dict[str, object] = {"keyframes": len(frames), "captions": len(texts), "caption_sha256": [
        hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts]}
    if errors:
        detail["errors"] = errors[:5]
    record(report, item, StageStatus.DONE, version_id=version, seconds=timer.elapsed, detail=detail)
