"""The rows of the video exports: the videos the filters select, their pairs with their ground-truth
masklets (engine/domain/ground_truth.py through export_rows' filters), their sampled frames and the
per-frame masks of masklets, read per video so memory follows one video, not the export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select

from engine.db.models import Concept, ImageConcept, JobItem, Mask, MaskletFrame, ModelVersion, Video, VideoFrame
from engine.domain.veval import FrameMask, Track, track
from engine.domain.vocabulary import ModelKind
from engine.services.export_rows import (
    ExportError,
    ExportFilters,
    mask_conditions,
    pair_only_conditions,
    pair_trust,
    stream,
)

#: model versions whose masklets are predictions to score (a proposer, or imported predictions)
PREDICTION_KINDS = (ModelKind.PROPOSER, ModelKind.EXTERNAL)
CHUNK = 500  # masks per IN (...) query


@dataclass(frozen=True)
class MaskRow:
    id: int
    crowd: bool
    height: int
    width: int
    score: float | None = None
    version_id: int | None = None
    pair_id: int | None = None


@dataclass
class PairRows:
    id: int
    concept_id: int
    phrase: str
    negative: bool
    exhaustive: bool
    version_id: int | None
    masks: list[MaskRow] = field(default_factory=list)

    @property
    def instance_exhaustive(self) -> bool:
        """What the video evaluator can score: a negative, or an exhaustive pair with a ground-truth
        masklet and none of them a crowd (engine/domain/ground_truth.py ``instance_exhaustive``)."""
        return self.negative or (self.exhaustive and bool(self.masks) and not any(m.crowd for m in self.masks))


@dataclass
class VideoRows:
    id: int
    sha256: str
    width: int  # of the sampled frames
    height: int
    file_names: list[str]
    pairs: list[PairRows]

    @property
    def frame_count(self) -> int:
        return len(self.file_names)


def video_conditions(filters: ExportFilters) -> list[Any]:
    """Conditions on ``videos`` (the job and date filters, as image_conditions for images)."""
    conds: list[Any] = []
    if filters.jobs:
        conds.append(exists().where(JobItem.video_id == Video.id, JobItem.job_id.in_(filters.jobs)))
    if filters.since:
        conds.append(Video.created_at >= filters.since)
    if filters.until:
        conds.append(Video.created_at < filters.until)
    return conds


def _label_rows(filters: ExportFilters) -> Any:
    """Every exported video pair (its ground truth under the filters) with its ground-truth masklets,
    ordered by video, phrase and masklet id; a pair that is neither negative nor has one is left out."""
    trust = pair_trust(filters)
    stmt = (select(ImageConcept.video_id, ImageConcept.id, ImageConcept.concept_id, Concept.text, trust.negative,
                   trust.exhaustive, ImageConcept.model_version_id, Mask.id, Mask.is_crowd, Mask.height, Mask.width)
            .select_from(ImageConcept).join(Concept, Concept.id == ImageConcept.concept_id))
    conds = video_conditions(filters)
    if conds:
        stmt = stmt.join(Video, Video.id == ImageConcept.video_id)
    return (stmt.outerjoin(Mask, and_(Mask.pair_id == ImageConcept.id, *mask_conditions(filters)))
            .where(ImageConcept.video_id.is_not(None), *conds, *pair_only_conditions(filters),
                   or_(trust.negative, Mask.id.is_not(None)))
            .order_by(ImageConcept.video_id, ImageConcept.concept_id, Mask.id))


def _pairs(rows: Sequence[Any]) -> list[PairRows]:
    pairs: dict[int, PairRows] = {}
    for r in rows:
        pair = pairs.get(r[1])
        if pair is None:
            pair = pairs[r[1]] = PairRows(r[1], r[2], r[3], bool(r[4]), bool(r[5]), r[6])
        if r[7] is not None:
            pair.masks.append(MaskRow(r[7], bool(r[8]), r[9], r[10]))
    return list(pairs.values())


def sampled_frames(conn: Connection, video_id: int) -> tuple[list[str], int, int]:
    rows = conn.execute(select(VideoFrame.index, VideoFrame.storage_key, VideoFrame.width, VideoFrame.height)
                        .where(VideoFrame.video_id == video_id).order_by(VideoFrame.index)).all()
    if [r[0] for r in rows] != list(range(len(rows))):
        raise ExportError(f"video {video_id}: its sampled frames are not numbered 0..n-1; export again")
    if not rows:
        raise ExportError(f"video {video_id} has no sampled frame")
    return [r[1] for r in rows], rows[0][2], rows[0][3]


def videos(conn: Connection, filters: ExportFilters) -> Iterator[VideoRows]:
    """Every video with an exported pair, in id order, with its pairs and sampled frames."""
    video_stmt = select(Video.id, Video.sha256).where(*video_conditions(filters)).order_by(Video.id)
    shas = stream(conn, video_stmt)
    current = next(shas, None)
    batch: list[Any] = []
    for row in stream(conn, _label_rows(filters)):
        if batch and batch[0][0] != row[0]:
            current = _find(shas, current, batch[0][0])
            yield _video(conn, current, batch)
            batch = []
        batch.append(row)
    if batch:
        yield _video(conn, _find(shas, current, batch[0][0]), batch)


def _find(shas: Iterator[Any], current: Any, video_id: int) -> Any:
    """The video row of ``video_id`` from the id-ordered video rows (at ``current`` or after it)."""
    while current is not None and current[0] < video_id:
        current = next(shas, None)
    if current is None or current[0] != video_id:
        raise ExportError(f"video {video_id} changed during the export; export again")  # the reads disagree
    return current


def _video(conn: Connection, video: Any, batch: list[Any]) -> VideoRows:
    names, width, height = sampled_frames(conn, video[0])
    return VideoRows(video[0], video[1], width, height, names, _pairs(batch))


def tracks(conn: Connection, masks: Sequence[MaskRow], frame_count: int) -> dict[int, Track]:
    """Each masklet's per-frame lists over the video's ``frame_count`` sampled frames."""
    by_id = {m.id: m for m in masks}
    frames: dict[int, list[FrameMask]] = {m.id: [] for m in masks}
    ids = sorted(by_id)
    for start in range(0, len(ids), CHUNK):
        stmt = (select(MaskletFrame.mask_id, MaskletFrame.frame_index, MaskletFrame.rle_counts, MaskletFrame.bbox_x,
                       MaskletFrame.bbox_y, MaskletFrame.bbox_w, MaskletFrame.bbox_h, MaskletFrame.area)
                .where(MaskletFrame.mask_id.in_(ids[start:start + CHUNK]))
                .order_by(MaskletFrame.mask_id, MaskletFrame.frame_index))
        for r in conn.execute(stmt):
            frames[r[0]].append(FrameMask(r[1], r[2], (r[3], r[4], r[5], r[6]), r[7]))
    return {i: track(frame_count, by_id[i].height, by_id[i].width, frames[i]) for i in ids}


def prediction_versions(conn: Connection) -> dict[int, str]:
    """Model version id → ``name:version`` of the versions whose masklets are predictions."""
    rows = conn.execute(select(ModelVersion.id, ModelVersion.name, ModelVersion.version)
                        .where(ModelVersion.kind.in_(PREDICTION_KINDS)).order_by(ModelVersion.id))
    return {r[0]: f"{r[1]}:{r[2]}" for r in rows}


def predicted_masks(conn: Connection, pair_ids: Sequence[int], versions: Sequence[int]) -> list[MaskRow]:
    """The masklets the given versions left on the given pairs (any state: what the model said),
    in id order."""
    if not pair_ids or not versions:
        return []
    stmt = (select(Mask.id, Mask.is_crowd, Mask.height, Mask.width, Mask.score, Mask.model_version_id, Mask.pair_id)
            .where(Mask.pair_id.in_(list(pair_ids)), Mask.model_version_id.in_(list(versions)))
            .order_by(Mask.id))
    return [MaskRow(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in conn.execute(stmt)]
