"""Bring-your-own model: import a COCO results file as candidate masks for existing images.

Each row: ``image_id`` (our image id), ``segmentation`` (COCO RLE or polygons at the image's
size), ``score`` (optional, 0–1) and the phrase as ``phrase`` / ``text_input`` or a
``category_id`` resolved through a categories list. Bad rows are reported one by one with the
reason and imported rows are all-or-nothing per file (one transaction, the caller's)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Image, ImageConcept, Mask, ModelKind, PairOrigin, Polarity
from engine.domain.masks import MaskError, RleMask, from_coco_segmentation
from engine.domain.phrases import clean_phrase
from engine.repositories import labels as labels_repo
from engine.repositories import model_versions


class PredictionFileError(ValueError):
    """The file as a whole is unusable."""


@dataclass
class ImportReport:
    rows: int = 0
    masks: int = 0
    pairs: int = 0
    skipped_existing: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason)
    model_version_id: int | None = None


def load_rows(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PredictionFileError(f"{path}: cannot read a JSON results list ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a COCO file's annotations work as results too
    if not isinstance(data, list):
        raise PredictionFileError(f"{path}: expected a JSON list of results")
    return data


def file_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def import_predictions(session: Session, rows: list[Any], *, model_name: str, version: str,
                       categories: dict[int, str] | None = None, strict: bool = False) -> ImportReport:
    report = ImportReport(rows=len(rows))
    image_ids = {r.get("image_id") for r in rows if isinstance(r, dict)}
    images = {img.id: img for img in session.scalars(
        select(Image).where(Image.id.in_([i for i in image_ids if isinstance(i, int)])))}
    valid: list[tuple[int, str, RleMask, float | None, bool]] = []
    for index, row in enumerate(rows):
        try:
            valid.append(_check(row, images, categories or {}))
        except (MaskError, ValueError) as exc:
            report.errors.append((index, str(exc)))
    if strict and report.errors:
        return report
    version_row = model_versions.get_or_create(session, ModelKind.EXTERNAL, model_name, version,
                                               {"source": "coco-results"})
    report.model_version_id = version_row.id
    if not valid:
        return report
    concept_ids = labels_repo.concept_ids(session, {phrase for _, phrase, _, _, _ in valid})
    done_pairs = set(session.scalars(select(Mask.pair_id).join(ImageConcept, ImageConcept.id == Mask.pair_id)
                                     .where(Mask.model_version_id == version_row.id)))
    touched: set[int] = set()
    for image_id, phrase, mask, score, crowd in valid:
        pair = labels_repo.pair_id(session, image_id, concept_ids[phrase], polarity=Polarity.UNKNOWN,
                                   origin=PairOrigin.EXTERNAL, model_version_id=version_row.id)
        if pair in done_pairs:
            report.skipped_existing += 1
            continue
        labels_repo.add_mask(session, pair, version_row.id, mask, score=score, is_crowd=crowd)
        touched.add(pair)
        report.masks += 1
    report.pairs = len(touched)
    session.flush()
    return report


def _check(row: Any, images: dict[int, Image], categories: dict[int, str]) -> tuple[int, str, RleMask, float | None, bool]:
    if not isinstance(row, dict):
        raise ValueError("not an object")
    image = images.get(row.get("image_id"))  # type: ignore[arg-type]
    if image is None:
        raise ValueError(f"unknown image_id {row.get('image_id')!r}")
    text = row.get("phrase") or row.get("text_input")
    if text is None and "category_id" in row:
        text = categories.get(row["category_id"])
        if text is None:
            raise ValueError(f"category_id {row['category_id']!r} is not in the categories given")
    if not isinstance(text, str):
        raise ValueError("no phrase: give 'phrase', 'text_input' or a category_id with --categories")
    cleaned = clean_phrase(text)
    if cleaned.phrase is None:
        raise ValueError(f"phrase {text!r} dropped: {cleaned.reason}")
    score = row.get("score")
    if score is not None and (not isinstance(score, (int, float)) or not 0 <= score <= 1):
        raise ValueError(f"score {score!r} is not a number in 0..1")
    mask = from_coco_segmentation(row.get("segmentation"), image.height, image.width)
    if mask.area == 0:
        raise ValueError("empty mask")
    return image.id, cleaned.phrase, mask, (float(score) if score is not None else None), bool(row.get("iscrowd"))
