"""Fakes of the video model ports (deterministic, no mocks), with failure knobs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from engine.ports import FrameObjects, FrameSource, ModelStamp, TrackedObject


class FakeMaskletProposer:
    """Per phrase ``objects`` objects, each a box drifting right by a pixel per frame, on every frame.
    A phrase holding 'explode' raises after ``explode_after`` frames; 'nothing' finds nothing; 'short'
    is seen on the first frame only; 'decoy' gets the very masks of ``decoy_of``."""

    def __init__(self, version: str = "1", objects: int = 2, explode_after: int = 3, decoy_of: str = "red circle"):
        self.stamp = ModelStamp(kind="proposer", name="fake-proposer/sam3-video", version=version,
                                params={"video": True, "objects": objects})
        self.objects, self.explode_after, self.decoy_of = objects, explode_after, decoy_of
        self.calls: list[list[str]] = []
        self.frames_read = 0

    def propose_video(self, frames: FrameSource, phrases: Sequence[str]) -> Iterator[FrameObjects]:
        self.calls.append(list(phrases))
        width, height = frames.size
        for index in range(frames.frame_count):
            frames.frame(index)
            self.frames_read += 1
            if index >= self.explode_after and any("explode" in p for p in phrases):
                raise RuntimeError("proposer failed (fake)")
            objects = []
            for p, phrase in enumerate(phrases):
                if "nothing" in phrase or ("short" in phrase and index > 0):
                    continue
                seed = self.decoy_of if "decoy" in phrase else phrase
                for k in range(self.objects):
                    objects.append(TrackedObject(object_id=100 * p + k + 1, mask=_box(seed, k, index, width, height),
                                                 score=0.9 - 0.1 * k, phrase_index=p))
            yield FrameObjects(index, objects)


def _box(seed: str, k: int, index: int, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    y0 = (sum(map(ord, seed)) * 7 + 11 * k) % max(height - 10, 1)
    x0 = (3 + 12 * k + index) % max(width - 10, 1)
    mask[y0:y0 + 8, x0:x0 + 10] = True
    return mask
