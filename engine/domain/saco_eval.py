"""Score COCO results against SA-Co ground truth, as the official evaluator reads the two files.

:func:`match_rles` matches one pair's masks given as COCO RLE (IoU by pycocotools'
``maskUtils.iou``, the function the official evaluator uses, so ties and thresholds compare on the
same floats); :func:`score_saco` / :func:`evaluate_files` score a whole SA-Co ground-truth file and
a results list the way ``CGF1Evaluator(gt).evaluate(results)`` in Meta's ``sam3/eval/cgf1_eval.py``
does (conventions: engine/domain/metrics.py):

- the scored pairs are the ``images`` entries with a truthy ``is_instance_exhaustive``;
- ground truth of a pair: its ``annotations`` in file order, those with a truthy ``iscrowd``
  ignored; predictions of a pair: the results with its ``image_id``, in file order;
- annotations and results whose ``category_id`` is not among the file's categories count nowhere
  (COCOeval keys them by category).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils

from engine.domain.masks import MaskError, validate_rle
from engine.domain.metrics import PairMatch, Quality, match_pair, quality


def _rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    """A COCO RLE for pycocotools, validated first (raises MaskError): native code never sees an
    RLE whose counts do not cover its size exactly (it would read past its buffer or never end)."""
    counts = segmentation["counts"]
    size = segmentation.get("size")
    if not isinstance(size, list | tuple) or len(size) != 2:
        raise MaskError(f"RLE size {size!r} is not [height, width]")
    validate_rle(counts, size[0], size[1])
    if isinstance(counts, list):  # uncompressed RLE, as COCO's annToRLE converts it
        h, w = segmentation["size"]
        converted: dict[str, Any] = mask_utils.frPyObjects(segmentation, h, w)
        return converted
    return {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


def match_rles(pred: Sequence[dict[str, Any]], scores: Sequence[float], gt: Sequence[dict[str, Any]],
               gt_crowd: Sequence[bool]) -> PairMatch:
    """One pair: predictions and ground truth as COCO RLE dicts ({size, counts}), in order."""
    if pred and gt:
        ious = np.asarray(mask_utils.iou([_rle(p) for p in pred], [_rle(g) for g in gt], [0] * len(gt)),
                          dtype=float).reshape(len(pred), len(gt))
    else:
        ious = np.zeros((len(pred), len(gt)))
    return match_pair(ious, scores, gt_crowd)


def score_saco(ground_truth: dict[str, Any], results: Sequence[dict[str, Any]]) -> Quality:
    """pmF1, IL_MCC and cgF1 of ``results`` (a COCO results list) on an SA-Co ground-truth dict."""
    categories = {c["id"] for c in ground_truth.get("categories") or []}
    gt_by_pair: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in ground_truth.get("annotations") or []:
        if ann.get("category_id") in categories:
            gt_by_pair[ann["image_id"]].append(ann)
    pred_by_pair: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in results:
        if row.get("category_id") in categories:
            pred_by_pair[row["image_id"]].append(row)
    matches = []
    for image in ground_truth.get("images") or []:
        if not image.get("is_instance_exhaustive"):
            continue
        gt = gt_by_pair.get(image["id"], [])
        pred = pred_by_pair.get(image["id"], [])
        matches.append(match_rles([p["segmentation"] for p in pred], [p["score"] for p in pred],
                                  [g["segmentation"] for g in gt], [bool(g.get("iscrowd")) for g in gt]))
    return quality(matches)


def evaluate_files(gt_path: Path | str, results_path: Path | str) -> Quality:
    """:func:`score_saco` on an SA-Co ground-truth file and a COCO results file."""
    ground_truth = orjson.loads(Path(gt_path).read_bytes())
    results = orjson.loads(Path(results_path).read_bytes())
    if not isinstance(results, list):
        raise ValueError(f"{results_path}: expected a JSON list of results")
    return score_saco(ground_truth, results)
