"""Propose stage of a video job: masklets for every phrase of a video from one proposer session —
all of the video's phrases are text prompts of it (vision features shared), its frames streamed.

Each (phrase, object id) the proposer tracks becomes a masklet of the phrase's pair (see
``masklet_writer``), written as its frames arrive. Masklets shorter than ``video.min_masklet_frames``
are dropped and each phrase keeps its best ``video.max_masklets_per_phrase`` by mean score; a
phrase with none has no masklet (the exhaustivity verifier decides it later). When the session
fails with several phrases, each phrase is tried alone; what still fails is recorded on the video's
row (which phrases), the rest kept. A video's writes are all or nothing per attempt (a savepoint)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.balancing_settings import BalancingSettings
from engine.db.models import Mask, StageItem
from engine.domain.balancing import SKIP_REASON
from engine.domain.vocabulary import StageStatus
from engine.ports import MaskletProposer
from engine.repositories import video_labels as labels_repo
from engine.services.common import MAX_SIDE, StageReport, Timer, claim_batch, describe, record
from engine.services.concept_stats import balance_pairs
from engine.services.video_stages.masklet_writer import MaskletWriter
from engine.services.video_stages.media import StoredVideo, open_video
from engine.storage import MediaStore
from engine.video_settings import VideoSettings

STAGE = "propose"
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError)  # the database went away: the batch is retried


@dataclass
class _Outcome:
    masklets: int = 0
    failures: list[str] = field(default_factory=list)


def propose_video_batch(session: Session, store: MediaStore, proposer: MaskletProposer, settings: VideoSettings,
                        job_id: int, video_ids: list[int], *, max_side: int = MAX_SIDE,
                        balancing: BalancingSettings | None = None) -> StageReport:
    """Propose masklets for the claimed videos' phrases; with ``balancing``, saturated concepts'
    pairs are left out (but for the explored share) and named in the stage detail."""
    batch = claim_batch(session, STAGE, job_id, video_ids, proposer.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    version = batch.version
    todo = _todo(session, [i.subject_id for i in items], version)
    balanced_out = balance_pairs(session, todo, balancing) if balancing is not None else {}
    for item in items:  # one video's frames in memory at a time
        own = todo.get(item.subject_id, [])
        if not own:
            reason = SKIP_REASON if balanced_out.get(item.subject_id) else "no phrase left to propose for this video"
            record(report, item, StageStatus.SKIPPED, version_id=version,
                   detail={"reason": reason, **_out(balanced_out, item.subject_id)})
            continue
        with Timer(report, "load"):
            video = open_video(session, store, item.subject_id, max_side)
        if isinstance(video, str):
            record(report, item, StageStatus.FAILED, version_id=version, error=video)
            continue
        with Timer(report, "model") as timer:
            outcome = propose_phrases(session, proposer, settings, version, video, own)
        _record(report, item, own, outcome, version, timer.elapsed, _out(balanced_out, item.subject_id))
    session.flush()
    return report


def _todo(session: Session, video_ids: list[int], version: int) -> dict[int, list[tuple[int, str]]]:
    """Per video: its (pair id, phrase) this proposer version has not proposed for yet."""
    pairs = labels_repo.phrases_of_videos(session, video_ids)
    proposed_before = set(session.scalars(select(Mask.pair_id).where(
        Mask.model_version_id == version, Mask.pair_id.in_([p[0] for p in pairs]))))
    todo: dict[int, list[tuple[int, str]]] = {}
    for pair_id, video_id, text in pairs:
        if pair_id not in proposed_before:
            todo.setdefault(video_id, []).append((pair_id, text))
    return todo


def propose_phrases(session: Session, proposer: MaskletProposer, settings: VideoSettings, version: int,
                    video: StoredVideo, pairs: Sequence[tuple[int, str]]) -> _Outcome:
    """All the phrases in one session; when that fails, each phrase alone."""
    outcome = _Outcome()
    groups = [list(pairs)]
    while groups:
        group = groups.pop(0)
        try:
            with session.begin_nested():
                outcome.masklets += _run(session, proposer, settings, version, video, group)
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - a model error fails its phrases, not the batch
            if len(group) > 1:
                groups += [[pair] for pair in group]
            else:
                outcome.failures.append(f"{group[0][1]!r}: {describe(exc)}")
    return outcome


def _run(session: Session, proposer: MaskletProposer, settings: VideoSettings, version: int, video: StoredVideo,
         pairs: list[tuple[int, str]]) -> int:
    """One proposer session over the video for ``pairs``' phrases; returns the masklets kept."""
    writer = MaskletWriter(session, version, video.stored_size)
    for frame in proposer.propose_video(video, [text for _, text in pairs]):
        for obj in frame.objects:
            if 0 <= obj.phrase_index < len(pairs):
                writer.add(pairs[obj.phrase_index][0], (obj.phrase_index, obj.object_id), frame.frame_index,
                           obj.mask, obj.score)
    kept = writer.finish(settings.min_masklet_frames, settings.max_masklets_per_phrase)
    return sum(len(own) for own in kept.values())


def _out(balanced_out: dict[int, list[str]], video_id: int) -> dict[str, list[str]]:
    """The stage detail's entry naming a video's phrases left out by balancing (none: empty)."""
    return {"balanced_out": balanced_out[video_id]} if balanced_out.get(video_id) else {}


def _record(report: StageReport, item: StageItem, pairs: list[tuple[int, str]], outcome: _Outcome, version: int,
            seconds: float, extra: dict[str, list[str]]) -> None:
    detail = {"phrases": len(pairs), "masklets": outcome.masklets, **extra}
    if outcome.failures:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=seconds, detail=detail,
               error=f"{len(outcome.failures)} of {len(pairs)} phrases failed: " + "; ".join(outcome.failures))
    else:
        record(report, item, StageStatus.DONE, version_id=version, seconds=seconds, detail=detail)
    report.counts["masklets"] += outcome.masklets
