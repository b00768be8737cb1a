"""A video pair as the router leaves it for people: a synthetic video's sampled frames in the media
store, a phrase, one masklet per moving shape (per-frame masks from the shapes' boxes) and open tasks."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.db.models import (
    Concept,
    HumanTask,
    ImageConcept,
    MaskletFrame,
    ModelKind,
    PairOrigin,
    Polarity,
    TaskKind,
    TaskState,
    Video,
    VideoFrame,
)
from engine.domain.masks import encode_mask
from engine.repositories.labels import add_mask
from engine.repositories.model_versions import get_or_create
from engine.storage import LocalMediaStore
from tests.video_synth import frames as synth_frames
from tests.video_synth import shape_boxes

WIDTH, HEIGHT, FRAMES = 96, 64, 8


@dataclass(frozen=True)
class SeededVideo:
    video_id: int
    pair_id: int
    masklets: list[int]  # one per shape, each on every frame
    tasks: dict[str, list[int]]  # task kind → ids (verify_mask: one per masklet, in masklet order)


def seed_video_review(session, media_root: Path, frames: int = FRAMES, phrase: str = "moving shape",
                      kinds: tuple[str, ...] = ("verify_mask", "check_exhaustivity", "correct")) -> SeededVideo:
    store = LocalMediaStore(media_root)
    keys = []
    for image in synth_frames(frames, WIDTH, HEIGHT):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        keys.append(store.put(hashlib.sha256(data).hexdigest(), "jpg", data))
    video = Video(sha256=hashlib.sha256(b"".join(k.encode() for k in keys)).hexdigest(), phash=1, phash_b0=0,
                  phash_b1=0, phash_b2=0, phash_b3=1, keyframe_phashes=[1], width=WIDTH, height=HEIGHT, fps=12.0,
                  duration_s=frames / 6, source_frames=frames * 2, sample_fps=6.0, frame_count=frames,
                  container="mp4", codec="h264", byte_size=1000, storage_key=None)
    session.add(video)
    session.flush()
    session.add_all(VideoFrame(video_id=video.id, index=i, timestamp_s=i / 6, storage_key=key, width=WIDTH,
                               height=HEIGHT) for i, key in enumerate(keys))
    concept = session.query(Concept).filter_by(text=phrase).one_or_none() or Concept(text=phrase)
    session.add(concept)
    session.flush()
    pair = ImageConcept(video_id=video.id, concept_id=concept.id, polarity=Polarity.UNKNOWN, origin=PairOrigin.CAPTION)
    session.add(pair)
    session.flush()
    proposer = get_or_create(session, ModelKind.PROPOSER, "test-video-proposer", "1", {"video": True})
    masklets = [_masklet(session, pair.id, proposer.id, shape, frames) for shape in range(2)]
    tasks: dict[str, list[int]] = {kind: [] for kind in kinds}
    for kind in kinds:
        for mask_id in masklets if kind == "verify_mask" else [None]:
            task = HumanTask(kind=TaskKind(kind), pair_id=pair.id, mask_id=mask_id, state=TaskState.OPEN,
                             priority=0, reason="test")
            session.add(task)
            session.flush()
            tasks[kind].append(task.id)
    return SeededVideo(video.id, pair.id, masklets, tasks)


def box_mask(frame: int, shape: int) -> np.ndarray:
    x0, y0, x1, y1 = shape_boxes(frame, WIDTH, HEIGHT)[shape]
    grid = np.zeros((HEIGHT, WIDTH), dtype=bool)
    grid[int(y0):int(y1), int(x0):int(x1)] = True
    return grid


def _masklet(session, pair_id: int, version_id: int, shape: int, frames: int) -> int:
    rles = [encode_mask(box_mask(i, shape)) for i in range(frames)]
    largest = max(rles, key=lambda r: r.area)
    mask = add_mask(session, pair_id, version_id, largest, score=0.8 - 0.1 * shape)
    mask.first_frame, mask.last_frame = 0, frames - 1
    session.flush()
    for i, rle in enumerate(rles):
        x, y, w, h = rle.bbox
        session.add(MaskletFrame(mask_id=mask.id, frame_index=i, rle_counts=rle.counts, bbox_x=x, bbox_y=y,
                                 bbox_w=w, bbox_h=h, area=rle.area, score=0.8 - 0.1 * shape))
    session.flush()
    return mask.id


class ShapeTracker:
    """A test double of the VideoTracker port (engine/ports.py) for the services' bookkeeping: the
    first shape's box on each frame of the window, in the port's order (the clicked frame, forward,
    backward); ``absent`` frames come without the object, ``fail_after`` frames raise."""

    def __init__(self, absent: tuple[int, ...] = (), fail_after: int | None = None,
                 size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
        from engine.ports import ModelStamp

        self.stamp = ModelStamp(kind=ModelKind.TRACKER.value, name="test-shape-tracker", version="1")
        self.absent, self.fail_after, self.size = absent, fail_after, size
        self.calls: list[tuple[int, tuple[int, int]]] = []

    def track(self, frames, frame_index, points, *, window):
        from engine.ports import FrameObjects, TrackedObject

        self.calls.append((frame_index, window))
        order = [frame_index, *range(frame_index + 1, window[1] + 1), *range(frame_index - 1, window[0] - 1, -1)]
        for n, index in enumerate(order):
            if self.fail_after is not None and n >= self.fail_after:
                raise RuntimeError("the tracker ran out of memory")
            frames.frame(index)  # read like a model would
            if index in self.absent:
                yield FrameObjects(index, [])
                continue
            mask = box_mask(index, 0)
            if self.size != (WIDTH, HEIGHT):
                mask = np.zeros((self.size[1], self.size[0]), dtype=bool)
            yield FrameObjects(index, [TrackedObject(1, mask, 0.9)])
