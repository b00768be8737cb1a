"""SA-Co/VEval and YTVIS documents: the pure builders of the video exports and of the files the
official SA-Co video evaluator reads (engine/services/export_video.py writes them, engine/services/
video_metrics.py scores them).

The format is the one Meta's ``sam3`` package (0.1.4) reads: ``sam3/eval/saco_veval_eval.py``
(``VEvalEvaluator``), its evaluators in ``saco_veval_evaluators.py`` and the YTVIS loader in
``ytvis_coco_wrapper.py``, and the SA-Co/VEval README (scripts/eval/veval/README.md of
facebookresearch/sam3). Keys, checked against that code:

- ``videos``: ``{id, width, height, length, file_names}``; ``id`` an integer (the loader casts it
  with ``int``), ``file_names`` one per sampled frame, in order (the HOTA toolkit takes the number
  of frames from it).
- ``annotations`` (one per masklet): ``{id, video_id, category_id, segmentations, bboxes, areas,
  iscrowd, height, width, noun_phrase}``; the three lists have one entry per sampled frame, ``None``
  where the object is absent; a segmentation is a compressed COCO RLE ``{size: [h, w], counts}``,
  a box absolute ``[x, y, w, h]``, an area a pixel count.
- ``categories``: ``{id, name}``, the name the noun phrase.
- ``video_np_pairs``: ``{id, video_id, category_id, noun_phrase, num_masklets}``: every video–phrase
  pair scored, negatives (no masklet) included; the evaluator's IL_MCC and cgF1 need the key.
- predictions (a JSON list): ``{video_id, category_id, score, segmentations, bboxes, areas}`` with
  the same per-frame lists; the evaluator keeps a prediction with ``score`` ≥ 0.5 (demo F1) or
  > 0.5 (HOTA).

The video evaluator scores *every* pair of the file as exhaustive (it has no ``is_instance_exhaustive``
flag), so an SA-Co/VEval document holds the instance-exhaustive pairs only: negatives, and exhaustive
pairs without a crowd masklet (engine/domain/ground_truth.py). The YTVIS document is an instance
dataset: every ground-truth masklet, one category per phrase, no pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FORMAT_SACO_VEVAL = "saco_veval"
FORMAT_YTVIS = "ytvis"
INFO = {"description": "Data Engine export", "version": "v1"}


@dataclass(frozen=True)
class FrameMask:
    """A masklet on one sampled frame (a ``masklet_frames`` row)."""

    index: int
    counts: str
    bbox: tuple[float, float, float, float]
    area: int


@dataclass(frozen=True)
class Track:
    """A masklet as the per-frame lists of the format (one entry per sampled frame)."""

    segmentations: list[dict[str, Any] | None]
    bboxes: list[list[float] | None]
    areas: list[int | None]

    @property
    def frames(self) -> int:
        """Frames where the object is present."""
        return sum(1 for s in self.segmentations if s is not None)


def track(frame_count: int, height: int, width: int, frames: Iterable[FrameMask]) -> Track:
    """The per-frame lists of a masklet over ``frame_count`` sampled frames; frames outside
    0..frame_count-1 are refused (the evaluator indexes its images by them)."""
    if frame_count < 1:
        raise ValueError(f"a video has at least one sampled frame, not {frame_count}")
    segs: list[dict[str, Any] | None] = [None] * frame_count
    boxes: list[list[float] | None] = [None] * frame_count
    areas: list[int | None] = [None] * frame_count
    for f in frames:
        if not 0 <= f.index < frame_count:
            raise ValueError(f"frame {f.index} lies outside the video's {frame_count} sampled frames")
        if f.area <= 0:
            continue  # an empty mask is an absent object (the HOTA evaluator drops it the same way)
        segs[f.index] = {"counts": f.counts, "size": [height, width]}
        boxes[f.index] = [float(v) for v in f.bbox]
        areas[f.index] = int(f.area)
    return Track(segs, boxes, areas)


def video_entry(video_id: int, width: int, height: int, file_names: Sequence[str]) -> dict[str, Any]:
    if not file_names:
        raise ValueError(f"video {video_id} has no sampled frame")
    return {"file_names": list(file_names), "height": height, "id": video_id, "length": len(file_names),
            "width": width}


def annotation(mask_id: int, video_id: int, category_id: int, phrase: str, *, crowd: bool, height: int,
               width: int, masklet: Track) -> dict[str, Any]:
    """A ground-truth masklet (SA-Co/VEval and YTVIS alike; YTVIS readers ignore ``noun_phrase``)."""
    return {"areas": masklet.areas, "bboxes": masklet.bboxes, "category_id": category_id, "height": height,
            "id": mask_id, "iscrowd": 1 if crowd else 0, "noun_phrase": phrase, "segmentations": masklet.segmentations,
            "video_id": video_id, "width": width}


def np_pair(pair_id: int, video_id: int, category_id: int, phrase: str, num_masklets: int) -> dict[str, Any]:
    """A video–phrase pair; ``num_masklets`` 0 is a negative."""
    return {"category_id": category_id, "id": pair_id, "noun_phrase": phrase, "num_masklets": num_masklets,
            "video_id": video_id}


def prediction(video_id: int, category_id: int, score: float | None, masklet: Track) -> dict[str, Any]:
    """A predicted masklet as the evaluator's prediction file lists it (no score: the model was sure)."""
    return {"areas": masklet.areas, "bboxes": masklet.bboxes, "category_id": category_id,
            "score": 1.0 if score is None else float(score), "segmentations": masklet.segmentations,
            "video_id": video_id}


def category(concept_id: int, phrase: str) -> dict[str, Any]:
    return {"id": concept_id, "name": phrase}


def categories(concepts: dict[int, str]) -> list[dict[str, Any]]:
    return [category(cid, concepts[cid]) for cid in sorted(concepts)]


def document(videos: list[dict[str, Any]], annotations: list[dict[str, Any]], concepts: dict[int, str],
             pairs: list[dict[str, Any]] | None, fmt: str = FORMAT_SACO_VEVAL) -> dict[str, Any]:
    """A whole ground-truth document in memory (the metrics' per-version files; the exports stream
    the same keys). ``pairs`` None: a YTVIS document (no ``video_np_pairs``)."""
    doc: dict[str, Any] = {"annotations": annotations, "categories": categories(concepts),
                           "info": {**INFO, "format": fmt}, "videos": videos}
    if pairs is not None:
        doc["video_np_pairs"] = pairs
    return doc
