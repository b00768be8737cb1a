"""Verify stage of a video job: the AI verifiers judge every masklet and every video–phrase pair.

MV, per masklet: ``video.mv_frames`` of its frames, evenly spaced over those it has a mask on, each
asked as an ordinary mask query (the frame and its mask, rendered by the verifier as for an image);
the masklet's verdict is the mean of the frames' probabilities (its payload names the frames). EV,
per pair: one contact sheet of ``video.ev_keyframes`` keyframes evenly spaced over the video, with
the box of every surviving masklet (a person accepted it, or MV's P(accept) ≥ survive_probability)
on each keyframe it is on; the payload records the masklet ids shown and how many boxes were drawn
(none: the answer also gives the presence score, as for an image).

The verdicts are written exactly as for images (``engine.services.verify``: AI source, every
probability, the verifier's version), so calibration, routing and the audit sample work unchanged;
the same rules hold: a version never judges a masklet twice, nor a pair twice with the same
masklets shown, and what a person decided is not judged again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Mask, StageItem, Verdict
from engine.domain.mask_scale import decode_at
from engine.domain.masks import MaskError
from engine.domain.video_render import contact_sheet, evenly_spaced, mean_probabilities
from engine.domain.vocabulary import MaskState, MaskVerifierAnswer, StageStatus, VerdictKind
from engine.ports import ExhaustivityVerifier, MaskQuery, MaskVerifier, PairQuery
from engine.repositories import masklets as masklets_repo
from engine.repositories import video_labels as labels_repo
from engine.services.common import MAX_SIDE, StageReport, Timer, call_split, claim_batch, describe, record
from engine.services.verify import MASKS_PER_CALL, add_verdict, boxes_seen, human_decided
from engine.services.video_stages.media import StoredVideo, open_video, read_frames
from engine.storage import MediaStore
from engine.video_settings import VideoSettings

STAGE = "verify"


@dataclass(frozen=True)
class Verifiers:
    """The two verifiers and their versions; MV's P(accept) from which a masklet is one of EV's
    boxes; how many frames each is shown."""

    mv: MaskVerifier
    ev: ExhaustivityVerifier
    mv_version: int
    ev_version: int
    survive: float
    mv_frames: int
    ev_keyframes: int


@dataclass
class _Judging:
    """One video's pairs and masklets as the passes see them."""

    video: StoredVideo
    pairs: list[tuple[int, str]]
    masks: Sequence[Mask]
    judged: dict[tuple[int | None, int, VerdictKind], dict[str, float]]
    human_masks: set[int]
    human_pairs: set[int]
    errors: list[str] = field(default_factory=list)


def verify_video_batch(session: Session, store: MediaStore, mv: MaskVerifier, ev: ExhaustivityVerifier,
                       survive_probability: float, settings: VideoSettings, job_id: int, video_ids: list[int], *,
                       max_side: int = MAX_SIDE) -> StageReport:
    batch = claim_batch(session, STAGE, job_id, video_ids, mv.stamp, ev.stamp)
    report, items = batch.report, batch.items
    if not items:
        return report
    mv_version, ev_version = batch.versions
    verifiers = Verifiers(mv, ev, mv_version, ev_version, survive_probability, settings.mv_frames,
                          settings.ev_keyframes)
    by_video: dict[int, list[tuple[int, str]]] = {}
    for pair_id, video_id, text in labels_repo.phrases_of_videos(session, [i.subject_id for i in items]):
        by_video.setdefault(video_id, []).append((pair_id, text))
    for item in items:  # one video's frames in memory at a time
        _verify_item(session, store, report, item, by_video.get(item.subject_id, []), verifiers, max_side)
    session.flush()
    return report


def _verify_item(session: Session, store: MediaStore, report: StageReport, item: StageItem,
                 pairs: list[tuple[int, str]], verifiers: Verifiers, max_side: int) -> None:
    version = verifiers.ev_version
    if not pairs:
        record(report, item, StageStatus.SKIPPED, version_id=version, detail={"reason": "no phrase to verify"})
        return
    with Timer(report, "load"):
        video = open_video(session, store, item.subject_id, max_side)
    if isinstance(video, str):
        record(report, item, StageStatus.FAILED, version_id=version, error=video)
        return
    with Timer(report, "model") as timer:
        state = _judging(session, video, pairs, verifiers)
        masklets = _masklets_pass(session, verifiers, state)
        detail = {"masklets": masklets, "pairs": _pairs_pass(session, verifiers, state)}
    if state.errors:
        record(report, item, StageStatus.FAILED, version_id=version, seconds=timer.elapsed, detail=detail,
               error=f"{len(state.errors)} verifier calls failed: " + "; ".join(state.errors[:5]))
    else:
        record(report, item, StageStatus.DONE, version_id=version, seconds=timer.elapsed, detail=detail)


def _judging(session: Session, video: StoredVideo, pairs: list[tuple[int, str]], verifiers: Verifiers) -> _Judging:
    pair_ids = [pid for pid, _ in pairs]
    masks = masklets_repo.of_pairs(session, pair_ids)
    judged = {
        (v.mask_id, v.pair_id, v.kind): v.probabilities or {}
        for v in session.scalars(select(Verdict).where(
            Verdict.pair_id.in_(pair_ids), Verdict.model_version_id.in_([verifiers.mv_version, verifiers.ev_version])))
    }
    return _Judging(video, pairs, masks, judged, *human_decided(session, pair_ids, masks))


def _masklets_pass(session: Session, verifiers: Verifiers, state: _Judging) -> int:
    """MV judges each masklet this version has not judged and no person decided, a few masklets'
    frames per call; returns how many masklets it was asked about."""
    pending = [m for m in state.masks
               if (m.id, m.pair_id, VerdictKind.MASK) not in state.judged and m.id not in state.human_masks]
    per_call = max(1, MASKS_PER_CALL // verifiers.mv_frames)
    asked = 0
    for start in range(0, len(pending), per_call):
        chunk: list[tuple[Mask, list[int]]] = []  # a masklet and the frames it is shown on
        queries: list[MaskQuery] = []
        for mask in pending[start:start + per_call]:
            shown = _mask_queries(session, state, mask, verifiers.mv_frames)
            if isinstance(shown, str):
                state.errors.append(f"masklet {mask.id}: {shown}")
                continue
            chunk.append((mask, [index for index, _ in shown]))
            queries += [query for _, query in shown]
        asked += len(chunk)
        results = iter(call_split(lambda qs: verifiers.mv.verify_masks(qs), queries))
        for mask, frames in chunk:
            answers = [next(results) for _ in frames]
            failed = [a for a in answers if isinstance(a, Exception)]
            if failed:
                state.errors.append(f"masklet {mask.id}: {describe(failed[0])}")
                continue
            probabilities = mean_probabilities([a for a in answers if not isinstance(a, Exception)])
            add_verdict(session, VerdictKind.MASK, mask.pair_id, mask.id, verifiers.mv_version, probabilities,
                        payload={"frames": frames})
            state.judged[(mask.id, mask.pair_id, VerdictKind.MASK)] = probabilities
    return asked


def _mask_queries(session: Session, state: _Judging, mask: Mask, n: int) -> list[tuple[int, MaskQuery]] | str:
    """The masklet on ``n`` of its frames as mask queries (frame index, query), or why it cannot be."""
    indices = evenly_spaced(masklets_repo.frame_indices(session, mask.id), n)
    if not indices:
        return "the masklet has no frame"
    images = read_frames(state.video, indices)
    if isinstance(images, str):
        return images
    rles = masklets_repo.frames(session, [mask], indices)[mask.id]
    phrase = dict(state.pairs)[mask.pair_id]
    width, height = state.video.size
    try:
        return [(index, MaskQuery(image, phrase, decode_at(rles[index], height, width)))
                for index, image in zip(indices, images, strict=True)]
    except MaskError as exc:  # a stored mask written past the validator fails alone
        return str(exc)


def _pairs_pass(session: Session, verifiers: Verifiers, state: _Judging) -> int:
    """EV judges each pair no person decided on the keyframes' contact sheet with the boxes of its
    surviving masklets, unless this version judged it with these very masklets; returns how many."""
    seen = boxes_seen(session, [pid for pid, _ in state.pairs], verifiers.ev_version)
    todo = []
    for pid, text in state.pairs:
        shown = [m for m in state.masks if m.pair_id == pid and _survives(m, state, verifiers.survive)]
        ids = sorted(m.id for m in shown)
        if pid not in state.human_pairs and not (pid in seen and seen[pid] in (None, ids)):
            todo.append((pid, text, shown))
    if not todo:
        return 0
    keyframes = evenly_spaced(range(state.video.frame_count), verifiers.ev_keyframes)
    images = read_frames(state.video, keyframes)
    if isinstance(images, str):
        state.errors.append(images)
        return 0
    queries, payloads = [], []
    for _, text, shown in todo:
        image, boxes = _sheet(session, state.video, images, keyframes, shown)
        queries.append(PairQuery(image, text, boxes))
        payloads.append({"boxes": len(boxes), "mask_ids": sorted(m.id for m in shown), "keyframes": keyframes})
    for (pid, _, _), payload, result in zip(todo, payloads, call_split(verifiers.ev.verify_pairs, queries),
                                            strict=True):
        if isinstance(result, Exception):
            state.errors.append(f"pair {pid}: {describe(result)}")
            continue
        add_verdict(session, VerdictKind.EXHAUSTIVITY, pid, None, verifiers.ev_version, result, payload=payload)
    return len(todo)


def _sheet(session: Session, video: StoredVideo, images: list[PILImage.Image], keyframes: list[int],
           shown: list[Mask]) -> tuple[PILImage.Image, list[tuple[float, float, float, float]]]:
    """The keyframes' contact sheet and, on each keyframe's tile, the boxes of the masklets on it."""
    sheet = contact_sheet(images)
    stored_h, stored_w = video.stored_size
    width, height = video.size
    sx, sy = width / stored_w, height / stored_h  # boxes are stored in the stored frames' pixels
    on_frames = masklets_repo.frames(session, shown, keyframes)
    boxes = []
    for tile, index in enumerate(keyframes):
        frame_boxes = [(x * sx, y * sy, w * sx, h * sy)
                       for m in shown if (rle := on_frames[m.id].get(index)) is not None
                       for x, y, w, h in [rle.bbox]]
        boxes += sheet.boxes(tile, frame_boxes)
    return sheet.image, boxes


def _survives(mask: Mask, state: _Judging, survive: float) -> bool:
    """The masklet is one of EV's boxes: a person accepted it, or (no person decided it) MV thinks it present."""
    if mask.id in state.human_masks:
        return mask.state == MaskState.ACCEPTED
    probabilities = state.judged.get((mask.id, mask.pair_id, VerdictKind.MASK), {})
    return probabilities.get(MaskVerifierAnswer.ACCEPT, 0.0) >= survive
