"""Hard negatives of a video job, checked adversarially as for images: for each positive phrase of
a video (a pair with masklets), nearby concepts — phrase-embedding neighbours among known concepts
and the LLM's visually similar ones — are proposed on the video (all of a video's candidates as the
prompts of one proposer session); a candidate is kept when one of its masklets overlaps a masklet of
the phrase by ``negatives.overlap_iou`` (the mean mask IoU over the frames both are on), at most
``negatives.max_per_phrase`` per phrase (the most overlapping first), and becomes a pair of origin
hard_negative with its masklets, for the verifiers and people to confirm absent.

Candidates' masklets are held as compressed RLE while the session runs (one decoded mask at a
time); a concept the video already has a pair for is never a candidate, and a video this proposer
version found hard negatives in is not searched again (a re-run adds nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Concept, ImageConcept, Mask, StageItem
from engine.domain.mask_scale import encode_at
from engine.domain.masks import RleMask, iou_matrix
from engine.domain.vocabulary import PairOrigin, Polarity, StageStatus
from engine.ports import ConceptSuggester, MaskletProposer, PhraseEmbedder
from engine.repositories import labels
from engine.repositories import masklets as masklets_repo
from engine.repositories import video_labels as labels_repo
from engine.services.common import MAX_SIDE, StageReport, Timer, claim_batch, describe, record
from engine.services.negatives import nearest, suggest
from engine.services.video_stages.masklet_writer import MaskletWriter
from engine.services.video_stages.media import StoredVideo, open_video
from engine.services.video_stages.propose import TRANSIENT
from engine.settings import NegativeSettings
from engine.storage import MediaStore
from engine.video_settings import VideoSettings

STAGE = "negatives"


@dataclass(frozen=True)
class _Search:
    """What looking for hard negatives needs, the same for every video of a batch."""

    session: Session
    proposer: MaskletProposer
    embedder: PhraseEmbedder
    settings: NegativeSettings
    video: VideoSettings
    version: int  # the proposer's
    known: list[str]  # every concept, oldest first
    suggestions: dict[str, list[str]]  # the LLM's concepts per positive phrase


@dataclass
class _Track:
    """One object of a candidate: its frames (compressed) and its IoU with each positive masklet,
    summed over the frames both are on."""

    frames: list[tuple[int, RleMask, float]] = field(default_factory=list)
    iou_sum: dict[int, float] = field(default_factory=dict)
    shared: dict[int, int] = field(default_factory=dict)

    def see(self, mask_id: int, iou: float) -> None:
        """Its IoU with a positive masklet on one frame both are on."""
        self.iou_sum[mask_id] = self.iou_sum.get(mask_id, 0.0) + iou
        self.shared[mask_id] = self.shared.get(mask_id, 0) + 1

    def overlap(self, mask_id: int) -> float:
        return self.iou_sum.get(mask_id, 0.0) / self.shared[mask_id] if self.shared.get(mask_id) else 0.0


@dataclass
class _Video:
    """One video's search: its positives' masklets and frames, and what was found."""

    video_id: int
    frames: StoredVideo
    positives: dict[int, list[Mask]]  # positive pair id → its masklets
    positive_frames: dict[int, dict[int, RleMask]]  # masklet id → its masks by frame
    kept: list[dict[str, object]] = field(default_factory=list)
    tried: int = 0
    errors: list[str] = field(default_factory=list)


def negatives_video_batch(session: Session, store: MediaStore, proposer: MaskletProposer, embedder: PhraseEmbedder,
                          suggester: ConceptSuggester | None, settings: NegativeSettings, video: VideoSettings,
                          job_id: int, video_ids: list[int], *, max_side: int = MAX_SIDE) -> StageReport:
    batch = claim_batch(session, STAGE, job_id, video_ids, proposer.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    if not settings.enabled:
        return batch.skip_all("hard negatives are turned off")
    ids = [i.subject_id for i in items]
    searched = set(session.scalars(select(ImageConcept.video_id).where(
        ImageConcept.video_id.in_(ids), ImageConcept.origin == PairOrigin.HARD_NEGATIVE,
        ImageConcept.model_version_id == batch.version)))
    positives = _positives(session, [i for i in ids if i not in searched])
    texts = {text for own in positives.values() for _, text, _ in own}
    search = _Search(session, proposer, embedder, settings, video, batch.version,
                     list(session.scalars(select(Concept.text).order_by(Concept.id))),
                     suggest(report, suggester, settings, texts))
    taken = _taken(session, ids)
    for item in items:  # one video's frames in memory at a time
        own = positives.get(item.subject_id, [])
        if item.subject_id in searched:  # this version's negatives stand (a re-run would pass the caps)
            record(report, item, StageStatus.DONE, version_id=batch.version, detail={"reused": True})
            continue
        if not own:
            record(report, item, StageStatus.SKIPPED, version_id=batch.version,
                   detail={"reason": "no positive phrase with masklets in this video"})
            continue
        frames = open_video(session, store, item.subject_id, max_side)
        if isinstance(frames, str):
            record(report, item, StageStatus.FAILED, version_id=batch.version, error=frames)
            continue
        masks = {pair_id: masklets for pair_id, _, masklets in own}
        found = _Video(item.subject_id, frames, masks,
                       masklets_repo.frames(session, [m for ms in masks.values() for m in ms]))
        with Timer(report, "model") as timer:
            _video_negatives(search, found, own, taken.get(item.subject_id, set()))
        _record(report, item, found, batch.version, timer.elapsed)
    session.flush()
    return report


def _positives(session: Session, video_ids: list[int]) -> dict[int, list[tuple[int, str, list[Mask]]]]:
    """Per video: (pair id, phrase, masklets) of its positive pairs that have masklets."""
    pairs = labels_repo.phrases_of_videos(session, video_ids, exclude_origin=PairOrigin.HARD_NEGATIVE)
    masks: dict[int, list[Mask]] = {}
    for mask in masklets_repo.of_pairs(session, [p[0] for p in pairs]):
        masks.setdefault(mask.pair_id, []).append(mask)
    out: dict[int, list[tuple[int, str, list[Mask]]]] = {}
    for pair_id, video_id, text in pairs:
        if masks.get(pair_id):
            out.setdefault(video_id, []).append((pair_id, text, masks[pair_id]))
    return out


def _taken(session: Session, video_ids: list[int]) -> dict[int, set[str]]:
    """Per video: the concepts it has a pair for (any origin or polarity): never candidates."""
    out: dict[int, set[str]] = {}
    for video_id, text in session.execute(select(ImageConcept.video_id, Concept.text)
                                          .join(Concept, Concept.id == ImageConcept.concept_id)
                                          .where(ImageConcept.video_id.in_(video_ids))):
        if video_id is not None:
            out.setdefault(video_id, set()).add(text)
    return out


def _video_negatives(search: _Search, found: _Video, own: list[tuple[int, str, list[Mask]]], taken: set[str]) -> None:
    """Propose every candidate of the video's positive phrases, keep the adversarial ones."""
    sources: dict[str, list[int]] = {}  # candidate → the positive pairs it is near
    for pair_id, text, _ in own:
        nearby = nearest(search.embedder, text, search.known, search.settings) + search.suggestions.get(text, [])
        for candidate in dict.fromkeys(nearby):
            if candidate not in taken:
                sources.setdefault(candidate, []).append(pair_id)
    found.tried = len(sources)
    tracks = _propose(search, found, list(sources))
    phrase_of = {pair_id: text for pair_id, text, _ in own}
    scored = []  # (overlap, candidate, positive pair)
    for candidate, pair_ids in sources.items():
        own_tracks = [t for (c, _), t in tracks.items() if c == candidate]
        for pair_id in pair_ids:
            best = max((t.overlap(m.id) for t in own_tracks for m in found.positives[pair_id]), default=0.0)
            scored.append((best, candidate, pair_id))
    per_pair: dict[int, int] = {}
    for overlap, candidate, pair_id in sorted(scored, key=lambda s: -s[0]):
        if overlap < search.settings.overlap_iou or candidate in taken:
            continue
        if per_pair.get(pair_id, 0) >= search.settings.max_per_phrase:
            continue
        per_pair[pair_id] = per_pair.get(pair_id, 0) + 1
        taken.add(candidate)
        found.kept.append({"phrase": candidate, "of": phrase_of[pair_id], "iou": round(overlap, 3)})
        _queue(search, found, candidate, {k[1]: t for k, t in tracks.items() if k[0] == candidate})


def _propose(search: _Search, found: _Video, candidates: list[str]) -> dict[tuple[str, int], _Track]:
    """The candidates' objects over the video, all in one session; when that fails, each alone."""
    tracks: dict[tuple[str, int], _Track] = {}
    groups = [candidates] if candidates else []
    while groups:
        group = groups.pop(0)
        partial: dict[tuple[str, int], _Track] = {}
        try:
            _run(search, found, group, partial)
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - a model error fails its candidates, not the batch
            if len(group) > 1:
                groups += [[candidate] for candidate in group]
            else:
                found.errors.append(f"{group[0]!r}: {describe(exc)}")
            continue
        tracks.update(partial)
    return tracks


def _run(search: _Search, found: _Video, candidates: list[str], tracks: dict[tuple[str, int], _Track]) -> None:
    size = found.frames.stored_size
    for frame in search.proposer.propose_video(found.frames, candidates):
        for obj in frame.objects:
            if not 0 <= obj.phrase_index < len(candidates):
                continue
            rle = encode_at(obj.mask, *size)
            if rle.area == 0:
                continue
            track = tracks.setdefault((candidates[obj.phrase_index], obj.object_id), _Track())
            track.frames.append((frame.frame_index, rle, float(obj.score)))
            for mask_id, by_frame in found.positive_frames.items():
                positive = by_frame.get(frame.frame_index)
                if positive is not None:
                    track.see(mask_id, float(iou_matrix([rle], [positive])[0, 0]))


def _queue(search: _Search, found: _Video, phrase: str, tracks: dict[int, _Track]) -> None:
    """A kept negative becomes a hard_negative pair of the video, with the proposer's masklets."""
    concept = labels.concept_ids(search.session, {phrase})[phrase]
    pair = labels_repo.pair_id(search.session, found.video_id, concept, polarity=Polarity.UNKNOWN,
                               origin=PairOrigin.HARD_NEGATIVE, model_version_id=search.version)
    writer = MaskletWriter(search.session, search.version, found.frames.stored_size)
    for object_id, track in tracks.items():
        for frame_index, rle, score in track.frames:
            writer.add_rle(pair, object_id, frame_index, rle, score)
    writer.finish(search.video.min_masklet_frames, search.video.max_masklets_per_phrase)


def _record(report: StageReport, item: StageItem, found: _Video, version: int, seconds: float) -> None:
    detail = {"candidates": found.tried, "kept": found.kept}
    if found.errors:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=seconds,
               error=f"{len(found.errors)} candidates failed: " + "; ".join(found.errors[:5]), detail=detail)
    else:
        record(report, item, StageStatus.DONE, version_id=version, seconds=seconds, detail=detail)
    report.counts["hard_negatives"] += len(found.kept)
