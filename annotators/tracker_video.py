"""Click to segment on a video frame, then propagate: transformers' Sam3TrackerVideoModel /
Sam3TrackerVideoProcessor.

One inference session per request, over the request's window of frames only (read from the
:class:`~engine.ports.FrameSource` for that window: memory is bounded by the window, not the video). The
clicks go on the clicked frame as object 1; its mask comes out first, then the frames after it
(``propagate_in_video_iterator``), then the frames before it (``reverse=True``), each as soon as it is
computed. A frame where the object is absent (empty mask) comes out with no object.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from annotators.loading import load_pretrained, stamp_for
from annotators.sam3_video import video_stamp
from engine.domain.vocabulary import ModelKind
from engine.ports import FrameObjects, FrameSource, TrackedObject

OBJECT_ID = 1


def check_request(frame_count: int, frame_index: int, points: Sequence[tuple[float, float, int]],
                  window: tuple[int, int], size: tuple[int, int]) -> None:
    """ValueError unless the window lies in the video, holds the clicked frame, and the points are finite
    pixels of the frame with labels 0 or 1."""
    first, last = window
    if not 0 <= first <= frame_index <= last < frame_count:
        raise ValueError(f"frame {frame_index} and window [{first}, {last}] do not fit a video of {frame_count} frames")
    if not points:
        raise ValueError("at least one point")
    width, height = size
    for x, y, label in points:
        if label not in (0, 1):
            raise ValueError(f"point label {label!r} is neither 1 (positive) nor 0 (negative)")
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"point ({x}, {y}) lies outside the {width}×{height} frame")


class Sam3VideoTracker:
    """The engine's VideoTracker on a SAM 3 (tracker video) checkpoint.

    ``max_session_frames``: the most frames one inference session has held (the window, observable).
    """

    def __init__(self, ref: str, *, mask_threshold: float = 0.0, device: str = "auto") -> None:
        import torch
        from transformers import Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

        loaded = load_pretrained(ref, Sam3TrackerVideoProcessor, Sam3TrackerVideoModel, device)
        self.processor, self.model, self.device = loaded.processor, loaded.model, loaded.device
        self.torch = torch
        self.mask_threshold = mask_threshold
        self.max_session_frames = 0
        self.stamp = video_stamp(stamp_for(ModelKind.TRACKER, ref, loaded,
                                           {"video": True, "mask_threshold": mask_threshold}))

    # -- the engine's port
    def track(self, frames: FrameSource, frame_index: int, points: Sequence[tuple[float, float, int]],
              *, window: tuple[int, int]) -> Iterator[FrameObjects]:
        check_request(frames.frame_count, frame_index, points, window, frames.size)
        first, last = window
        session = self._session(frames, first, last)
        local = frame_index - first
        self.processor.add_inputs_to_inference_session(
            inference_session=session, frame_idx=local, obj_ids=OBJECT_ID,
            input_points=[[[[float(x), float(y)] for x, y, _ in points]]],
            input_labels=[[[int(label) for _, _, label in points]]])
        with self.torch.inference_mode():
            yield self._frame(session, first, self.model(inference_session=session, frame_idx=local))
            for reverse in (False, True):
                for out in self.model.propagate_in_video_iterator(session, start_frame_idx=local, reverse=reverse):
                    if int(out.frame_idx) != local:  # the clicked frame came out first
                        yield self._frame(session, first, out)

    def _session(self, frames: FrameSource, first: int, last: int) -> Any:
        images = [frames.frame(i) for i in range(first, last + 1)]
        session = self.processor.init_video_session(video=images, inference_device=self.device)
        self.max_session_frames = max(self.max_session_frames, session.num_frames or 0)
        return session

    def _frame(self, session: Any, first: int, out: Any) -> FrameObjects:
        masks = self.processor.post_process_masks(
            [out.pred_masks], original_sizes=[[session.video_height, session.video_width]],
            mask_threshold=self.mask_threshold, binarize=True)[0]
        mask = masks[0, 0].to("cpu").numpy().astype(bool, copy=False)
        frame_index = first + int(out.frame_idx)
        if not mask.any():
            return FrameObjects(frame_index, [])
        logits = out.object_score_logits
        score = float(self.torch.sigmoid(logits.float().flatten()[0])) if logits is not None else 1.0
        return FrameObjects(frame_index, [TrackedObject(object_id=OBJECT_ID, mask=mask, score=score)])
