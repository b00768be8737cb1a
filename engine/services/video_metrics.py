"""Video metrics per proposer version: the SA-Co/VEval evaluation's demo F1 family and phrase HOTA.

What is computed, and how (the reference is Meta's ``sam3/eval/saco_veval_eval.py``, 0.1.4):

- **cgF1, pmF1, IL_MCC** (``video_mask_demo_cgf1_micro_50_95``, ``…_positive_micro_f1_50_95``,
  ``…_ilmcc_50_95`` of ``VideoCGF1Evaluator``) are reimplemented here: a masklet's IoU is the official
  ``iou_masklets`` (intersections summed over the frames divided by unions summed over the frames,
  pycocotools' RLE merge and area; 1 when both are empty everywhere), and the matching and counting
  are the image metric's (engine/domain/metrics.py: ``CGF1Eval.evaluateImg`` / ``accumulate``, which
  the video evaluator runs on masklets unchanged). tests/engine/test_video_metrics.py checks the
  numbers equal the official evaluator's on the same files.
- **pHOTA** (``video_mask_all_phrase_HOTA`` of ``VideoPhraseHotaEvaluator``, TrackEval's HOTA per
  video–phrase pair) is not reimplemented: it comes from the official evaluator itself, run as a
  subprocess in its own venv (scripts/setup-oracle-video.sh) when that venv exists
  (:func:`official_python`); ``dataengine report`` runs it, the dashboard shows the native metrics.

Scored set, as for images (engine/services/quality.py): the instance-exhaustive video pairs under a
label source (negatives, and exhaustive pairs without a crowd masklet: engine/domain/ground_truth.py),
of the videos the version's propose stage finished, plus every such pair it left masklets on. A pair's
ground truth is its accepted masklets; the version's masklets (any state) are its predictions, kept
when their score is ≥ 0.5 (no score: 1). cgF1 is reported × 100, pmF1 and IL_MCC as fractions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from pycocotools import mask as mask_utils
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Concept, ImageConcept, Mask, MiningJob, ModelVersion, StageItem, Video
from engine.domain import veval
from engine.domain.ground_truth import GroundTruth
from engine.domain.metrics import Quality, match_pair, quality
from engine.domain.vocabulary import LabelSource, MaskState, MediaKind, StageStatus
from engine.services import propose
from engine.services.export_video_rows import PREDICTION_KINDS, MaskRow, sampled_frames, tracks

#: the official evaluator's keys (segm) reported beside ours
OFFICIAL_KEYS = {"cgF1": "video_mask_demo_cgf1_micro_50_95", "pmF1": "video_mask_demo_positive_micro_f1_50_95",
                 "IL_MCC": "video_mask_demo_ilmcc_50_95", "pHOTA": "video_mask_all_phrase_HOTA",
                 "DetA": "video_mask_all_phrase_DetA", "AssA": "video_mask_all_phrase_AssA"}
OFFICIAL_TIMEOUT_S = 600
_RUN = """
import contextlib, io, json, sys
with contextlib.redirect_stdout(io.StringIO()):
    from sam3.eval.saco_veval_eval import VEvalEvaluator
    results = [VEvalEvaluator(gt, out).run_eval(pred)["dataset_results"]
               for gt, pred, out in zip(*[iter(sys.argv[1:])] * 3)]
print(json.dumps(results))
"""


@dataclass(frozen=True)
class VideoProposerQuality:
    model_version_id: int
    model: str  # name:version
    kind: str
    promoted: bool
    pairs: int  # video–phrase pairs it was scored on
    positive_pairs: int
    masklets: int  # its masklets on those pairs
    cg_f1: float  # × 100 (the official evaluator's value is this / 100)
    pm_f1: float
    il_mcc: float
    il_counts: dict[str, int]
    p_hota: float | None = None  # the official evaluator's phrase HOTA (None: it was not run)
    official: dict[str, float] | None = None  # the official evaluator's figures (OFFICIAL_KEYS)


@dataclass
class VersionFiles:
    """What a version is scored on, as the official evaluator's two documents."""

    ground_truth: dict[str, Any]
    predictions: list[dict[str, Any]]


# ------------------------------------------------------------------------------ masklet IoU
def masklet_iou(pred: veval.Track, gt: veval.Track) -> float:
    """The official ``iou_masklets``: per-frame intersections and unions summed over the video."""
    inter = union = 0.0
    for p, g in zip(pred.segmentations, gt.segmentations, strict=True):
        if p and g:
            rles = [_coco(p), _coco(g)]
            inter += float(mask_utils.area(mask_utils.merge(rles, intersect=True)))
            union += float(mask_utils.area(mask_utils.merge(rles, intersect=False)))
        elif g or p:
            union += float(mask_utils.area(_coco(g or p)))  # type: ignore[arg-type]
    return inter / union if union > 0 else 1.0


def masklet_ious(preds: Sequence[veval.Track], gts: Sequence[veval.Track]) -> npt.NDArray[np.float64]:
    out = np.zeros((len(preds), len(gts)))
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            out[i, j] = masklet_iou(p, g)
    return out


def _coco(segmentation: dict[str, Any]) -> dict[str, Any]:
    counts = segmentation["counts"]
    return {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


# ---------------------------------------------------------------------------- scored pairs
def ground_truth_video_pairs(session: Session, label_source: str = LabelSource.HUMAN) -> dict[int, int]:
    """Pair id → video id of every instance-exhaustive ground-truth video pair under ``label_source``."""
    rows = session.execute(select(ImageConcept.id, ImageConcept.video_id).where(
        ImageConcept.video_id.is_not(None), GroundTruth(label_source).instance_exhaustive_pair()))
    return {pair_id: video_id for pair_id, video_id in rows if video_id is not None}


def video_jobs(session: Session, job_ids: set[int]) -> set[int]:
    """Those of the jobs that mine videos (option ``media`` = video): their stage items' subjects are
    video ids, not image ids."""
    if not job_ids:
        return set()
    return {j.id for j in session.scalars(select(MiningJob).where(MiningJob.id.in_(job_ids)))
            if (j.options or {}).get("media") == MediaKind.VIDEO}


def _videos_proposed(session: Session, version_id: int) -> set[int]:
    """Videos whose propose stage this version finished."""
    rows = session.execute(select(StageItem.job_id, StageItem.subject_id).where(
        StageItem.stage == propose.STAGE, StageItem.model_version_id == version_id,
        StageItem.status == StageStatus.DONE)).all()
    videos = video_jobs(session, {job_id for job_id, _ in rows})
    return {subject for job_id, subject in rows if job_id in videos}


def scored_video_pairs(session: Session, version_id: int, truth: dict[int, int]) -> list[int]:
    with_masks = set(session.scalars(select(Mask.pair_id).where(Mask.model_version_id == version_id).distinct()))
    videos = _videos_proposed(session, version_id)
    return sorted(p for p, video in truth.items() if p in with_masks or video in videos)


# ------------------------------------------------------------------------------- scoring
def _pair_info(session: Session, pair_ids: list[int]) -> list[Any]:
    return list(session.execute(
        select(ImageConcept.id, ImageConcept.video_id, ImageConcept.concept_id, Concept.text, Video.frame_count)
        .join(Concept, Concept.id == ImageConcept.concept_id).join(Video, Video.id == ImageConcept.video_id)
        .where(ImageConcept.id.in_(pair_ids)).order_by(ImageConcept.id)))


def _masks(session: Session, version_id: int, pair_id: int) -> tuple[list[MaskRow], list[MaskRow]]:
    """The pair's accepted masklets (its ground truth) and the version's masklets, each by id."""
    gt: list[MaskRow] = []
    pred: list[MaskRow] = []
    for r in session.execute(select(Mask.id, Mask.is_crowd, Mask.height, Mask.width, Mask.score, Mask.state,
                                    Mask.model_version_id).where(Mask.pair_id == pair_id).order_by(Mask.id)):
        row = MaskRow(r.id, bool(r.is_crowd), r.height, r.width, r.score, r.model_version_id, pair_id)
        if r.state == MaskState.ACCEPTED:
            gt.append(row)
        if r.model_version_id == version_id:
            pred.append(row)
    return gt, pred


def _score(row: MaskRow) -> float:
    return 1.0 if row.score is None else float(row.score)


def score_video_version(session: Session, version_id: int, pair_ids: list[int]) -> tuple[Quality, VersionFiles, int]:
    """cgF1, pmF1, IL_MCC (fractions) of a version on the given pairs, the two documents the official
    evaluator scores the same thing on, and how many masklets the version has there."""
    conn = session.connection()
    matches, annotations, predictions, pairs = [], [], [], []
    concepts: dict[int, str] = {}
    videos: set[int] = set()
    for info in _pair_info(session, pair_ids):
        gt, pred = _masks(session, version_id, info.id)
        by_mask = tracks(conn, gt + pred, info.frame_count)
        ious = masklet_ious([by_mask[m.id] for m in pred], [by_mask[m.id] for m in gt])
        matches.append(match_pair(ious, [_score(m) for m in pred],
                                  [m.crowd for m in gt]))
        concepts[info.concept_id] = info.text
        videos.add(info.video_id)
        pairs.append(veval.np_pair(info.id, info.video_id, info.concept_id, info.text, len(gt)))
        annotations += [veval.annotation(m.id, info.video_id, info.concept_id, info.text, crowd=m.crowd,
                                         height=m.height, width=m.width, masklet=by_mask[m.id]) for m in gt]
        predictions += [veval.prediction(info.video_id, info.concept_id, m.score, by_mask[m.id]) for m in pred]
    doc = veval.document(_video_entries(session, sorted(videos)), annotations, concepts, pairs)
    return quality(matches), VersionFiles(doc, predictions), len(predictions)


def _video_entries(session: Session, video_ids: list[int]) -> list[dict[str, Any]]:
    conn = session.connection()
    out = []
    for video_id in video_ids:
        names, width, height = sampled_frames(conn, video_id)
        out.append(veval.video_entry(video_id, width, height, names))
    return out


# -------------------------------------------------------------------- the official evaluator
def official_python() -> Path | None:
    """The official evaluator's interpreter (``$DATAENGINE_SAM3_VEVAL`` or ``<venv>/sam3-veval``), if
    it is installed."""
    venv = Path(os.environ.get("DATAENGINE_SAM3_VEVAL") or Path(sys.prefix) / "sam3-veval")
    python = venv / "bin" / "python"
    return python if python.is_file() else None


def run_official(python: Path, jobs: Sequence[tuple[VersionFiles, Path]]) -> list[dict[str, float]]:
    """The official ``VEvalEvaluator`` on each version's documents (written into its folder), in one
    process (its imports take seconds, a run on a few pairs about one): each one's ``dataset_results``."""
    args: list[str] = []
    for files, folder in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        gt, pred = folder / "ground_truth.json", folder / "predictions.json"
        gt.write_bytes(orjson.dumps(files.ground_truth))
        pred.write_bytes(orjson.dumps(files.predictions))
        args += [str(gt), str(pred), str(folder / "eval.json")]
    if not args:
        return []
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    done = subprocess.run([str(python), "-c", _RUN, *args], capture_output=True, text=True,
                          timeout=OFFICIAL_TIMEOUT_S, env=env, cwd=jobs[0][1], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the official video evaluator failed ({done.returncode}): {done.stderr[-2000:]}")
    results: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


# ---------------------------------------------------------------------------- per version
def video_quality(session: Session, label_source: str = LabelSource.HUMAN, *, official: Path | None = None,
                  files_out: Path | None = None) -> list[VideoProposerQuality]:
    """Every proposer (or imported predictions) version scored on at least one video pair. With
    ``official`` (the evaluator's interpreter: :func:`official_python`), its figures and pHOTA too,
    for versions with a masklet there (the evaluator cannot read an empty prediction file); their
    files go into ``files_out/<version>/`` (a temporary folder when None)."""
    truth = ground_truth_video_pairs(session, label_source)
    if not truth:
        return []
    out: list[VideoProposerQuality] = []
    files: dict[int, VersionFiles] = {}
    for v in session.scalars(select(ModelVersion).where(ModelVersion.kind.in_(PREDICTION_KINDS))
                             .order_by(ModelVersion.id)):
        pair_ids = scored_video_pairs(session, v.id, truth)
        if not pair_ids:
            continue
        q, version_files, masklets = score_video_version(session, v.id, pair_ids)
        if masklets:
            files[v.id] = version_files
        out.append(VideoProposerQuality(
            v.id, f"{v.name}:{v.version}", v.kind.value, v.is_promoted, q.pairs, q.positive_pairs, masklets,
            100.0 * q.cg_f1, q.pm_f1, q.il_mcc, dict(q.il_counts)))
    if official is None or not files:
        return out
    figures = _official(official, files, {q.model_version_id: q.model for q in out}, files_out)
    return [dataclasses.replace(q, p_hota=figures[q.model_version_id].get("pHOTA"),
                                official=figures[q.model_version_id]) if q.model_version_id in figures else q
            for q in out]


def _official(python: Path, files: dict[int, VersionFiles], labels: dict[int, str],
              files_out: Path | None) -> dict[int, dict[str, float]]:
    def run(root: Path) -> list[dict[str, float]]:
        slugs = {v: "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{v}-{labels[v]}")[:120] for v in files}
        return run_official(python, [(files[v], root / slugs[v]) for v in files])

    if files_out is not None:
        results = run(files_out)
    else:
        with tempfile.TemporaryDirectory(prefix="veval-") as tmp:
            results = run(Path(tmp))
    return {v: {name: float(r[key]) for name, key in OFFICIAL_KEYS.items() if key in r}
            for v, r in zip(files, results, strict=True)}
