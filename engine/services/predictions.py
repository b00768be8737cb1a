"""Bring-your-own model: import a COCO results file as candidate masks for existing images.

Each row: ``image_id`` (our image id), ``segmentation`` (COCO RLE or polygons at the image's
size), ``score`` (optional, 0–1) and the phrase as ``phrase`` / ``text_input`` or a
``category_id`` resolved through a categories list. Bad rows are reported one by one with the
reason and imported rows are all-or-nothing per file (one transaction, the caller's).

The import also records which images the version ran on (``prediction_images``): the images of its
rows plus those named by the caller (``--images FILE``, ``--job NAME``: images where it found
nothing). The report scores the version on every instance-exhaustive ground-truth pair of these
images, so its misses and its true negatives count (engine/services/quality.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Image, ImageConcept, JobItem, Mask, PredictionImage
from engine.db.upsert import insert_ignore
from engine.domain.masks import MaskError, RleMask, from_coco_segmentation
from engine.domain.phrases import clean_phrase
from engine.domain.vocabulary import ModelKind, PairOrigin, Polarity
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
    images: int = 0  # images the version is recorded as having run on (rows' and named ones)


def load_rows(path: Path) -> list[object]:
    """The results of a JSON file: a list of rows (or a COCO file's annotations), each checked on import."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PredictionFileError(f"{path}: cannot read a JSON results list ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a COCO file's annotations work as results too
    if not isinstance(data, list):
        raise PredictionFileError(f"{path}: expected a JSON list of results")
    return data


def load_image_ids(path: Path) -> list[int]:
    """Image ids from a file: a JSON list of ids, or one id per line (blank lines and lines
    starting with ``#`` skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictionFileError(f"{path}: cannot read image ids ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise PredictionFileError(f"{path}: not a JSON list of image ids ({exc})") from None
    else:
        values = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    out = []
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(value)
        elif isinstance(value, str) and value.isdigit():
            out.append(int(value))
        else:
            raise PredictionFileError(f"{path}: {value!r} is not an image id")
    return out


def job_image_ids(session: Session, job_ids: Iterable[int]) -> list[int]:
    """The images a mining job's items point to (as ``export --job`` selects them)."""
    ids = list(job_ids)
    if not ids:
        return []
    return sorted(set(session.scalars(select(JobItem.image_id).where(JobItem.job_id.in_(ids),
                                                                      JobItem.image_id.is_not(None)))))


def file_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


#: a valid row: (image id, phrase, mask, score, crowd)
_Valid = tuple[int, str, RleMask, float | None, bool]
#: ``prediction_images`` rows inserted per statement
_COVERAGE_BATCH = 1000


def import_predictions(session: Session, rows: Sequence[object], *, model_name: str, version: str,
                       categories: dict[int, str] | None = None, strict: bool = False,
                       ran_on: Iterable[int] = ()) -> ImportReport:
    """Import the rows as masks of an ``external`` model version; ``ran_on``: more images the
    model ran on (it found nothing there), all of which must exist."""
    report = ImportReport(rows=len(rows))
    named = set(ran_on)
    image_ids = {r.get("image_id") for r in rows if isinstance(r, dict)}
    images = _images(session, image_ids, named)
    valid = _valid_rows(rows, images, categories or {}, report)
    if strict and report.errors:
        return report
    version_row = model_versions.get_or_create(session, ModelKind.EXTERNAL, model_name, version,
                                               {"source": "coco-results"})
    report.model_version_id = version_row.id
    report.images = _record_coverage(session, version_row.id, named | {i for i in image_ids if i in images})
    if not valid:
        return report
    _add_masks(session, version_row.id, valid, report)
    session.flush()
    return report


def _images(session: Session, image_ids: set[object], named: set[int]) -> dict[int, Image]:
    """The images the rows and the caller name, by id; PredictionFileError when one the caller
    named is not here."""
    wanted = [i for i in image_ids | named if isinstance(i, int) and not isinstance(i, bool)]
    images = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(wanted)))} if wanted else {}
    unknown = sorted(named - images.keys())
    if unknown:
        raise PredictionFileError(f"{len(unknown)} of the images named are not here (first: "
                                  f"{', '.join(map(str, unknown[:5]))}): nothing imported")
    return images


def _valid_rows(rows: Sequence[object], images: dict[int, Image], categories: dict[int, str],
                report: ImportReport) -> list[_Valid]:
    """The valid rows, checked; each bad row's index and reason goes to ``report.errors``."""
    valid: list[_Valid] = []
    for index, row in enumerate(rows):
        try:
            valid.append(_check(row, images, categories))
        except (MaskError, ValueError) as exc:
            report.errors.append((index, str(exc)))
    return valid


def _record_coverage(session: Session, model_version_id: int, image_ids: set[int]) -> int:
    """Record that the version ran on these images (``prediction_images``); how many there are."""
    covered = sorted(image_ids)
    for start in range(0, len(covered), _COVERAGE_BATCH):
        insert_ignore(session, PredictionImage.__table__,
                      [{"model_version_id": model_version_id, "image_id": i, "created_at": utcnow()}
                       for i in covered[start:start + _COVERAGE_BATCH]], ["model_version_id", "image_id"])
    return len(covered)


def _add_masks(session: Session, model_version_id: int, valid: list[_Valid], report: ImportReport) -> None:
    """Add the valid rows' masks to their pairs (made as needed), skipping pairs that already hold a
    mask of this version; counts them in the report."""
    concept_ids = labels_repo.concept_ids(session, {phrase for _, phrase, _, _, _ in valid})
    done_pairs = set(session.scalars(select(Mask.pair_id).join(ImageConcept, ImageConcept.id == Mask.pair_id)
                                     .where(Mask.model_version_id == model_version_id)))
    touched: set[int] = set()
    for image_id, phrase, mask, score, crowd in valid:
        pair = labels_repo.pair_id(session, image_id, concept_ids[phrase], polarity=Polarity.UNKNOWN,
                                   origin=PairOrigin.EXTERNAL, model_version_id=model_version_id)
        if pair in done_pairs:
            report.skipped_existing += 1
            continue
        labels_repo.add_mask(session, pair, model_version_id, mask, score=score, is_crowd=crowd)
        touched.add(pair)
        report.masks += 1
    report.pairs = len(touched)


def _check(row: object, images: dict[int, Image], categories: dict[int, str]) -> _Valid:
    """(image id, phrase, mask, score, crowd) of a valid row; ValueError (or MaskError) says why a row is not."""
    if not isinstance(row, dict):
        raise ValueError("not an object")
    image_id = row.get("image_id")
    image = images.get(image_id) if isinstance(image_id, int) else None
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
