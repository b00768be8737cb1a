"""SAM 3 masklet proposals on video through transformers' Sam3VideoModel / Sam3VideoProcessor.

Every phrase of a video is a text prompt of one inference session (the detector's vision features of a
frame are computed once and shared by all prompts; ``postprocess_outputs`` says which prompt found which
object). ``propagate_in_video_iterator`` runs detection and tracking frame by frame.

Memory: a session holds the pre-processed frames it was given and per-frame tracker state, so it must
not be given the whole video. (transformers 5.25 can also stream — ``model(inference_session=…, frame=…)``
adds one frame per call — but its session still keeps every processed frame and every frame's per-object
outputs, never trimmed, and streaming turns the hot-start heuristics off; so streaming alone does not keep
memory flat.) The video is proposed window by window (``window_frames`` frames, two
consecutive windows sharing ``window_overlap``), one session per window, frames read from the
:class:`~engine.ports.FrameSource` only for the window being run; object ids are kept across windows by
mask IoU on the shared frames (:class:`engine.domain.masklets.IdStitcher`). On shared frames, the earlier
window's objects are kept and the later window's objects that matched none of them are added. Frames come
out in order, each once, as soon as no later window can change them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotators.loading import load_pretrained, stamp_for
from engine.domain.masklets import IdStitcher, tracks, windows
from engine.domain.masks import encode_mask
from engine.domain.vocabulary import ModelKind
from engine.ports import FrameObjects, FrameSource, ModelStamp, TrackedObject


def video_stamp(stamp: ModelStamp) -> ModelStamp:
    """A video model's stamp: its name says it is the video model (the image model of the same checkpoint
    is another version)."""
    if "video" in stamp.name.lower():
        return stamp
    return dataclasses.replace(stamp, name=f"{stamp.name} (video)")


@dataclass(frozen=True)
class _Found:
    """One object on one frame as a window's session names it."""

    window_id: int
    phrase_index: int
    mask: np.ndarray[Any, np.dtype[np.bool_]]
    score: float


_WindowFrame = tuple[int, list[_Found]]


class Sam3VideoProposer:
    """The engine's MaskletProposer on a SAM 3 (video) checkpoint.

    ``max_session_frames``: the most frames one inference session has held (the memory bound, observable).
    """

    def __init__(self, ref: str, *, score_threshold: float, window_frames: int = 64, window_overlap: int = 8,
                 stitch_iou: float = 0.5, device: str = "auto") -> None:
        import torch
        from transformers import Sam3VideoModel, Sam3VideoProcessor

        if window_frames < 2:
            raise ValueError(f"window_frames must be at least 2, got {window_frames}")
        loaded = load_pretrained(ref, Sam3VideoProcessor, Sam3VideoModel, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        self.score_threshold = score_threshold
        self.window_frames = window_frames
        self.window_overlap = max(0, min(window_overlap, window_frames // 2))  # as windows() clamps it
        self.stitch_iou = stitch_iou
        self.max_session_frames = 0
        self.stamp = video_stamp(stamp_for(ModelKind.PROPOSER, ref, loaded, {
            "video": True, "score_threshold": score_threshold, "window_frames": window_frames,
            "window_overlap": self.window_overlap, "stitch_iou": stitch_iou}))

    # -- the engine's port
    def propose_video(self, frames: FrameSource, phrases: Sequence[str]) -> Iterator[FrameObjects]:
        count = frames.frame_count
        if not phrases:
            yield from (FrameObjects(i, []) for i in range(count))
            return
        stitcher = IdStitcher(self.stitch_iou)
        held: list[FrameObjects] = []  # the previous window's frames that the next window shares
        spans = windows(count, self.window_frames, self.window_overlap)
        for k, (start, end) in enumerate(spans):
            next_start = spans[k + 1][0] if k + 1 < len(spans) else end
            found = self._run_window(frames, start, end, phrases)
            held = yield from self._stitched(found, held, next_start, stitcher)

    def _stitched(self, found: Iterator[_WindowFrame], held: list[FrameObjects], next_start: int,
                  stitcher: IdStitcher) -> Generator[FrameObjects, None, list[FrameObjects]]:
        """One window's frames with stable ids: the shared frames at its start merged with ``held``, those
        before ``next_start`` yielded, the rest returned (the next window shares them)."""
        shared: list[_WindowFrame] = []
        keep: list[FrameObjects] = []
        matched: dict[int, int] | None = None if held else stitcher.start_window({}, {})
        for frame_index, objects in found:
            if matched is None and len(shared) < len(held):
                shared.append((frame_index, objects))
                continue
            if matched is None:
                matched = stitcher.start_window(*self._tracks(held, shared))
                yield from self._merge(held, shared, matched, stitcher)
            out = FrameObjects(frame_index, [self._tracked(stitcher.stable_id(o.window_id), o) for o in objects])
            if frame_index >= next_start:
                keep.append(out)
            else:
                yield out
        if matched is None:  # a window no longer than the frames it shares (not produced by windows())
            matched = stitcher.start_window(*self._tracks(held, shared))
            yield from self._merge(held, shared, matched, stitcher)
        return keep

    @staticmethod
    def _tracks(held: list[FrameObjects], shared: list[_WindowFrame]) -> tuple[dict[Any, Any], dict[Any, Any]]:
        previous = tracks((f.frame_index, [(o.object_id, o.phrase_index, encode_mask(o.mask)) for o in f.objects])
                          for f in held)
        current = tracks((i, [(o.window_id, o.phrase_index, encode_mask(o.mask)) for o in objects])
                         for i, objects in shared)
        return previous, current

    def _merge(self, held: list[FrameObjects], shared: list[_WindowFrame], matched: dict[int, int],
               stitcher: IdStitcher) -> Iterator[FrameObjects]:
        """The shared frames: the earlier window's objects, plus the later window's that matched none."""
        for before, (_, objects) in zip(held, shared, strict=False):
            extra = [self._tracked(stitcher.stable_id(o.window_id), o) for o in objects if o.window_id not in matched]
            yield FrameObjects(before.frame_index, list(before.objects) + extra)
        for before in held[len(shared):]:
            yield before

    @staticmethod
    def _tracked(object_id: int, found: _Found) -> TrackedObject:
        return TrackedObject(object_id=object_id, mask=found.mask, score=found.score,
                             phrase_index=found.phrase_index)

    def _run_window(self, frames: FrameSource, start: int, end: int,
                    phrases: Sequence[str]) -> Iterator[_WindowFrame]:
        """One session over frames [start, end) with every phrase as a prompt: per frame, in order, the
        objects scoring at least the threshold (window ids, global frame indices)."""
        images = [frames.frame(i) for i in range(start, end)]
        session = self.processor.init_video_session(video=images, inference_device=self.device)
        del images
        self.max_session_frames = max(self.max_session_frames, session.num_frames or 0)
        texts = list(dict.fromkeys(phrases))
        self.processor.add_text_prompt(session, texts)
        first_index = {text: phrases.index(text) for text in texts}
        with self.torch.inference_mode():
            for out in self.model.propagate_in_video_iterator(session, start_frame_idx=0,
                                                              max_frame_num_to_track=end - start):
                yield start + int(out.frame_idx), self._found(session, out, first_index)

    def _found(self, session: Any, out: Any, first_index: dict[str, int]) -> list[_Found]:
        post = self.processor.postprocess_outputs(session, out)
        found = []
        for object_id, score, mask in zip(post["object_ids"].tolist(), post["scores"].tolist(), post["masks"],
                                          strict=True):
            if score < self.score_threshold or not bool(mask.any()):
                continue  # under the threshold, or emptied by the non-overlap constraint: not on this frame
            text = session.prompts[session.obj_id_to_prompt_id[object_id]]
            found.append(_Found(int(object_id), first_index[text], mask.to("cpu").numpy().astype(bool, copy=False),
                                float(score)))
        return found
