"""Quality per model version (``dataengine report``, the dashboard's quality panel).

- Proposers (and imported external predictions): cgF1, pmF1 and IL_MCC with the official SA-Co
  evaluator's conventions (engine/domain/metrics.py, pinned to Meta's ``sam3/eval/cgf1_eval.py`` by
  tests/engine/services/test_saco_oracle.py) on the instance-exhaustive ground-truth pairs under a
  label source (``ground_truth_pairs``; engine/domain/ground_truth.py defines them): negatives, and
  exhaustive pairs without a crowd mask, whose accepted masks are the ground truth. A version is
  scored on every such pair of the images it ran on (:func:`scored_pairs`): for a proposer the
  images its propose stage finished, for imported predictions the images the import named
  (``prediction_images``), plus any pair it left masks on — so finding nothing counts. Ground
  truth and predictions are matched in mask-id order, the order the files of
  :class:`PredictionFiles` list them in. cgF1 is reported × 100 (pmF1 and IL_MCC as fractions).
- Verifiers: AI–human agreement per version (engine/services/dashboard.py defines it).
- Acceptance per version: of a proposer's masks, how many were decided and how many accepted;
  of a verifier's verdicts, how many said accept and where the router sent its items.
- Throughput: human verdicts per hour, and per model stage and version the images done and the
  seconds they took.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import (
    Concept,
    Image,
    ImageConcept,
    Mask,
    ModelVersion,
    PredictionImage,
    RouteRecord,
    StageItem,
    Verdict,
)
from engine.domain.exports import ACCEPT_ANSWER, saco_area, saco_box
from engine.domain.ground_truth import GroundTruth
from engine.domain.masks import valid_rle
from engine.domain.metrics import PairMatch, Quality, quality
from engine.domain.saco_eval import match_rles
from engine.domain.vocabulary import LabelSource, MaskState, ModelKind, StageStatus, VerdictSource
from engine.services import dashboard, propose, video_metrics

EVALUATED_KINDS = (ModelKind.PROPOSER, ModelKind.EXTERNAL)
CHUNK = 1000  # pairs per query
VERIFIER_KINDS = (ModelKind.MASK_VERIFIER, ModelKind.EXHAUSTIVITY_VERIFIER)


@dataclass(frozen=True)
class ProposerQuality:
    model_version_id: int
    model: str  # name:version
    kind: str
    promoted: bool
    pairs: int  # ground-truth pairs it was scored on
    positive_pairs: int
    cg_f1: float  # × 100, as the SAM 3 paper prints it (the official evaluator's value is this / 100)
    pm_f1: float  # a fraction, as the official evaluator gives it
    il_mcc: float
    il_counts: dict[str, int]
    files: str | None = None  # the folder --predictions-out wrote for it


@dataclass(frozen=True)
class Acceptance:
    model_version_id: int
    model: str
    kind: str
    promoted: bool
    outputs: int  # masks (proposers) or AI verdicts (verifiers)
    decided: int  # masks decided (proposers) or items routed (verifiers)
    accepted: int  # masks accepted (proposers) or verdicts saying accept (verifiers)
    acceptance: float | None  # accepted / decided (proposers) or accepted / outputs (verifiers)
    routes: dict[str, int] = field(default_factory=dict)  # verifiers: route action → items


@dataclass(frozen=True)
class StageThroughput:
    stage: str
    model_version_id: int | None
    model: str
    images: int
    seconds: float
    images_per_s: float | None


@dataclass(frozen=True)
class QualityReport:
    generated_at: dt.datetime
    proposers: list[ProposerQuality]
    verifiers: list[dashboard.VerifierAgreement]
    acceptance: list[Acceptance]
    stages: list[StageThroughput]
    human_per_hour: list[dashboard.HourCount]


def quality_report(session: Session, *, hours: int = 24, now: dt.datetime | None = None,
                   label_source: str = LabelSource.HUMAN, predictions_out: Path | None = None) -> QualityReport:
    now = now or utcnow()
    return QualityReport(now, proposer_quality(session, label_source, predictions_out),
                         dashboard.verifier_agreement(session),
                         proposer_acceptance(session) + verifier_acceptance(session), stage_throughput(session),
                         dashboard.throughput(session, hours=hours, now=now))


def _label(v: ModelVersion) -> str:
    return f"{v.name}:{v.version}"


# ------------------------------------------------------------------------------ proposers
def ground_truth_pairs(session: Session, label_source: str = LabelSource.HUMAN) -> dict[int, int]:
    """Pair id → image id of every instance-exhaustive ground-truth pair under ``label_source``
    (the deciders allowed: human | ai | both), as engine/domain/ground_truth.py defines it for the
    exports too: a negative, or an exhaustive pair without a crowd mask (a group of instances
    cannot be matched one to one). Its accepted masks are its ground-truth masks."""
    rows = session.execute(select(ImageConcept.id, ImageConcept.image_id).where(
        ImageConcept.image_id.is_not(None), GroundTruth(label_source).instance_exhaustive_pair()))
    return {pair_id: image_id for pair_id, image_id in rows if image_id is not None}


def scored_pairs(session: Session, version: ModelVersion, truth: dict[int, int]) -> list[int]:
    """The ground-truth pairs a version is scored on: pairs it left masks on, and every pair of the
    images it ran on — for a proposer the images its propose stage finished, for imported
    predictions the images the import named (``prediction_images``) — so that finding nothing
    counts (a miss, or a true negative)."""
    with_masks = set(session.scalars(select(Mask.pair_id).where(Mask.model_version_id == version.id).distinct()))
    if version.kind == ModelKind.EXTERNAL:
        images = set(session.scalars(select(PredictionImage.image_id)
                                     .where(PredictionImage.model_version_id == version.id)))
    else:
        rows = session.execute(select(StageItem.job_id, StageItem.subject_id).where(
            StageItem.stage == propose.STAGE, StageItem.model_version_id == version.id,
            StageItem.status == StageStatus.DONE)).all()
        videos = video_metrics.video_jobs(session, {job for job, _ in rows})  # their subjects are video ids
        images = {subject for job, subject in rows if job not in videos}
    return sorted(p for p, image in truth.items() if p in with_masks or image in images)


def _mask_rows(session: Session, version_id: int, pair_ids: list[int]) -> Iterator[tuple[int, list[Any], list[Any]]]:
    """Per pair, in ``pair_ids`` order: its accepted masks (the ground truth) and the version's
    masks (its predictions), each ordered by mask id — the order the files of
    :class:`PredictionFiles` list them in, which the official evaluator's matching follows."""
    columns = (Mask.id, Mask.pair_id, Mask.rle_counts, Mask.height, Mask.width, Mask.bbox_x, Mask.bbox_y,
               Mask.bbox_w, Mask.bbox_h, Mask.area, Mask.score, Mask.is_crowd, Mask.state, Mask.model_version_id,
               Mask.decided_by)
    for start in range(0, len(pair_ids), CHUNK):
        chunk = pair_ids[start:start + CHUNK]
        by_pair: dict[int, tuple[list[Any], list[Any]]] = {p: ([], []) for p in chunk}
        for row in session.execute(select(*columns).where(Mask.pair_id.in_(chunk), or_(
                Mask.state == MaskState.ACCEPTED, Mask.model_version_id == version_id)).order_by(Mask.id)):
            gt, pred = by_pair[row.pair_id]
            if row.state == MaskState.ACCEPTED:
                gt.append(row)
            if row.model_version_id == version_id:
                pred.append(row)
        for pair_id in chunk:
            yield pair_id, *by_pair[pair_id]


def _rle(row: Any) -> dict[str, Any]:
    return {"size": [row.height, row.width], "counts": row.rle_counts}


def _valid(row: Any) -> bool:
    """A stored mask whose RLE is malformed (``dataengine check`` reports it as M2) counts nowhere:
    pycocotools' native IoU would read past it or never end."""
    return valid_rle(row.rle_counts, row.height, row.width)


def _score(row: Any) -> float:
    return 1.0 if row.score is None else float(row.score)  # no score: the model was sure


def score_version(session: Session, version: ModelVersion, pair_ids: list[int],
                  files: PredictionFiles | None = None) -> Quality:
    """pmF1, IL_MCC and cgF1 (fractions) of a version on the given ground-truth pairs; with
    ``files``, the results and the ground truth that were scored are written there too."""
    matches: list[PairMatch] = []
    for pair_id, gt, pred in _mask_rows(session, version.id, pair_ids):
        gt, pred = [m for m in gt if _valid(m)], [m for m in pred if _valid(m)]
        matches.append(match_rles([_rle(m) for m in pred], [_score(m) for m in pred], [_rle(m) for m in gt],
                                  [bool(m.is_crowd) for m in gt]))
        if files is not None:
            files.add(pair_id, gt, pred)
    result = quality(matches)
    if files is not None:
        files.finish(session, result)
    return result


def proposer_quality(session: Session, label_source: str = LabelSource.HUMAN,
                     predictions_out: Path | None = None) -> list[ProposerQuality]:
    """Every proposer and imported predictions version with at least one scored pair; with
    ``predictions_out``, per version a folder with the files that were scored (:class:`PredictionFiles`)."""
    truth = ground_truth_pairs(session, label_source)
    out = []
    for v in session.scalars(select(ModelVersion).where(ModelVersion.kind.in_(EVALUATED_KINDS))
                             .order_by(ModelVersion.id)):
        pair_ids = scored_pairs(session, v, truth) if truth else []
        if not pair_ids:
            continue
        files = PredictionFiles(predictions_out, v, label_source) if predictions_out is not None else None
        q = score_version(session, v, pair_ids, files)
        out.append(ProposerQuality(v.id, _label(v), v.kind.value, v.is_promoted, q.pairs, q.positive_pairs,
                                   100.0 * q.cg_f1, q.pm_f1, q.il_mcc, q.il_counts,
                                   str(files.folder) if files is not None else None))
    return out


class PredictionFiles:
    """What a version was scored on, as files the official evaluator reads: in
    ``<out>/<version id>-<name>-<version>/``, ``predictions.json`` (COCO results: ``image_id`` = pair
    id, ``score``, ``segmentation`` RLE, absolute ``bbox``, ``category_id`` 1; every mask of the
    version on the scored pairs, those under 0.5 included), ``ground_truth.json`` (SA-Co: the scored
    pairs only, all ``is_instance_exhaustive``, their accepted masks as annotations, as
    ``dataengine export saco`` writes them) and ``scores.json`` (our numbers). The official
    evaluator on the first two gives the numbers of the third (tests/engine/services/
    test_saco_oracle.py)."""

    def __init__(self, out: Path, version: ModelVersion, label_source: str) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{version.id}-{version.name}-{version.version}")[:120]
        self.folder = Path(out) / slug
        self.version = version
        self.label_source = label_source
        self.pair_ids: list[int] = []
        self.results: list[bytes] = []
        self.gt: list[tuple[int, Any]] = []  # (pair id, mask row)

    def add(self, pair_id: int, gt: list[Any], pred: list[Any]) -> None:
        self.pair_ids.append(pair_id)
        for m in pred:
            self.results.append(orjson.dumps({
                "bbox": [m.bbox_x, m.bbox_y, m.bbox_w, m.bbox_h], "category_id": 1, "image_id": pair_id,
                "score": _score(m), "segmentation": _rle(m)}, option=orjson.OPT_SORT_KEYS))
        self.gt.extend((pair_id, m) for m in gt)

    def finish(self, session: Session, result: Quality) -> None:
        images: list[bytes] = []
        annotations: list[bytes] = []
        sizes: dict[int, tuple[int, int]] = {}
        for start in range(0, len(self.pair_ids), CHUNK):
            chunk = self.pair_ids[start:start + CHUNK]
            for row in session.execute(
                    select(ImageConcept.id, ImageConcept.image_id, ImageConcept.concept_id, Concept.text, Image.width,
                           Image.height, Image.storage_key, Image.sha256)
                    .join(Concept, Concept.id == ImageConcept.concept_id).join(Image, Image.id == ImageConcept.image_id)
                    .where(ImageConcept.id.in_(chunk)).order_by(ImageConcept.id)):
                sizes[row.id] = (row.width, row.height)
                images.append(orjson.dumps({
                    "file_name": row.storage_key, "height": row.height, "id": row.id, "is_instance_exhaustive": 1,
                    "is_pixel_exhaustive": 1, "original_image_id": row.image_id,
                    "queried_category": str(row.concept_id), "sha256": row.sha256, "text_input": row.text,
                    "width": row.width}, option=orjson.OPT_SORT_KEYS))
        for pair_id, m in self.gt:  # as dataengine export saco writes an annotation
            w, h = sizes[pair_id]
            annotations.append(orjson.dumps({
                "area": saco_area(m.area, w, h), "bbox": saco_box((m.bbox_x, m.bbox_y, m.bbox_w, m.bbox_h), w, h),
                "category_id": 1, "id": m.id, "image_id": pair_id, "iscrowd": 1 if m.is_crowd else 0,
                "segmentation": _rle(m), "source": m.decided_by.value if m.decided_by is not None else None},
                option=orjson.OPT_SORT_KEYS))
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_array(self.folder / "predictions.json", self.results)
        with open(self.folder / "ground_truth.json", "wb") as handle:
            handle.write(b'{"info":' + orjson.dumps({
                "description": f"SA-Co ground truth that {_label(self.version)} was scored on",
                "label_source": self.label_source, "format": "saco"}))
            handle.write(b',"images":')
            _write_items(handle, images)
            handle.write(b',"annotations":')
            _write_items(handle, annotations)
            handle.write(b',"categories":[{"id":1,"name":"object"}]}')
        (self.folder / "scores.json").write_bytes(orjson.dumps({
            "model_version_id": self.version.id, "model": _label(self.version), "kind": self.version.kind.value,
            "label_source": self.label_source, "cgF1": result.cg_f1, "cgF1_x100": 100.0 * result.cg_f1,
            "pmF1": result.pm_f1, "IL_MCC": result.il_mcc, "il_counts": result.il_counts, "pairs": result.pairs,
            "positive_pairs": result.positive_pairs,
            "official": "sam3/eval/cgf1_eval.py: CGF1Evaluator('ground_truth.json').evaluate('predictions.json') "
                        "gives cgF1 (cgF1_eval_segm_cgF1), pmF1 (..._positive_micro_F1) and IL_MCC as fractions"},
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _write_items(handle: Any, items: list[bytes]) -> None:
    handle.write(b"[")
    for i, item in enumerate(items):
        if i:
            handle.write(b",\n")
        handle.write(item)
    handle.write(b"]")


def _write_array(path: Path, items: list[bytes]) -> None:
    with open(path, "wb") as handle:
        _write_items(handle, items)
        handle.write(b"\n")


# ----------------------------------------------------------------------------- acceptance
def proposer_acceptance(session: Session) -> list[Acceptance]:
    decided = Mask.state != MaskState.CANDIDATE
    rows = session.execute(
        select(ModelVersion, func.count(Mask.id), func.count(Mask.id).filter(decided),
               func.count(Mask.id).filter(Mask.state == MaskState.ACCEPTED))
        .join(Mask, Mask.model_version_id == ModelVersion.id)
        .where(ModelVersion.kind.in_(EVALUATED_KINDS)).group_by(ModelVersion.id).order_by(ModelVersion.id)).all()
    return [Acceptance(v.id, _label(v), v.kind.value, v.is_promoted, n, d, a, a / d if d else None)
            for v, n, d, a in rows]


def verifier_acceptance(session: Session) -> list[Acceptance]:
    counts = session.execute(
        select(ModelVersion, func.count(Verdict.id), func.count(Verdict.id).filter(Verdict.label == ACCEPT_ANSWER))
        .join(Verdict, and_(Verdict.model_version_id == ModelVersion.id, Verdict.source == VerdictSource.AI))
        .where(ModelVersion.kind.in_(VERIFIER_KINDS)).group_by(ModelVersion.id).order_by(ModelVersion.id)).all()
    routes: dict[int, dict[str, int]] = {}
    for version_id, action, n in session.execute(
            select(RouteRecord.verifier_version_id, RouteRecord.action, func.count())
            .group_by(RouteRecord.verifier_version_id, RouteRecord.action)):
        if version_id is not None:
            routes.setdefault(version_id, {})[action.value] = int(n)
    return [Acceptance(v.id, _label(v), v.kind.value, v.is_promoted, n, sum(routes.get(v.id, {}).values()), a,
                       a / n if n else None, routes.get(v.id, {})) for v, n, a in counts]


# ----------------------------------------------------------------------------- throughput
def stage_throughput(session: Session) -> list[StageThroughput]:
    """Per model stage and version: images done and the seconds the stage spent on them."""
    rows = session.execute(
        select(StageItem.stage, StageItem.model_version_id, func.count(),
               func.coalesce(func.sum(StageItem.seconds), 0.0))
        .where(StageItem.status == StageStatus.DONE)
        .group_by(StageItem.stage, StageItem.model_version_id)).all()
    names = {v.id: _label(v) for v in session.scalars(select(ModelVersion).where(
        ModelVersion.id.in_([r[1] for r in rows if r[1] is not None])))}
    out = [StageThroughput(stage, vid, names.get(vid, "-") if vid else "-", int(n), float(s or 0.0),
                           int(n) / float(s) if s else None) for stage, vid, n, s in rows]
    return sorted(out, key=lambda r: (r.stage, r.model_version_id or 0))
