"""Mining stage: list a source into a job, then ingest batches of its items.

plan_job   source → job + one pending row per item (re-listing is idempotent)
mine_batch pending items → fetch → validate/normalise → store → dedup → image rows

Each item ends as done, duplicate, near_duplicate or failed-with-reason; its writes happen in one
savepoint so a failure leaves nothing of it behind, and the job goes on. The caller commits.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import ImageConcept, JobItem, Mask, MiningJob
from engine.domain.images import ImageRejected, PreparedImage, prepare_image
from engine.domain.masks import MaskError, RleMask, from_coco_segmentation
from engine.domain.phrases import normalise_phrase
from engine.domain.vocabulary import ItemStatus, JobStatus, MediaKind, PairOrigin, Polarity, SourceKind, StageStatus
from engine.repositories import images as images_repo
from engine.repositories import jobs as jobs_repo
from engine.repositories import labels as labels_repo
from engine.repositories import model_versions
from engine.repositories import stages as stages_repo
from engine.services import mine_video
from engine.services.common import StageReport
from engine.services.failures import OPTION as PRIORITISE
from engine.services.mine_items import (
    TRANSIENT_DB_ERRORS,
    discard_unreferenced,
    item_uri,
    job_media,
    open_job_source,
    open_media_source,
    store_failure,
)
from engine.services.mine_items import fail_item as _fail
from engine.settings import Settings
from engine.sources import Source, SourceError
from engine.sources.base import capped_errors
from engine.storage import MediaStore, Stored

log = logging.getLogger(__name__)
STAGE = "mine"


class JobConflict(ValueError):
    """A job of that name exists for another source."""


@dataclass(frozen=True)
class JobPlan:
    job_id: int
    name: str
    source_kind: str
    queue: str
    items: int
    new_items: int
    retried: int
    pending: list[int]


def default_job_name(source: Source) -> str:
    digest = hashlib.sha256(source.uri.encode()).hexdigest()[:8]
    return f"{source.kind}-{PurePath(source.uri).name or 'root'}-{digest}"


def plan_job(session: Session, settings: Settings, source_uri: str, *, job_name: str | None = None,
             kind: str | None = None, options: dict[str, Any] | None = None,
             retry_failed: bool = False, until: str | None = None,
             model_profile: str | None = None) -> JobPlan:
    """Create or reopen a job and list its source. Raises SourceError / JobConflict.
    ``until``: the last stage this job runs; ``model_profile``: the models its stages use
    (``tiny`` / ``sam3``; both kept on the job, None keeps the job's own or, for a new job, means
    the settings' profile). ``options["media"] = "video"`` (implied by ``kind`` frames): a video job."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if kind == SourceKind.FRAMES:
        options["media"] = MediaKind.VIDEO.value
    if options.get(PRIORITISE) and job_media(options) is MediaKind.VIDEO:
        raise ValueError("--prioritise-failures ranks images by their similarity to the model's failures; "
                         "video jobs are not ranked (mine the videos without it)")
    source = open_media_source(settings, source_uri, kind, options)
    try:
        name = job_name or default_job_name(source)
        job = jobs_repo.by_name(session, name)
        if job is None:
            job = MiningJob(name=name, source_uri=source.uri, source_kind=source.kind,
                            status=JobStatus.LISTING, options=options, item_count=0)
            session.add(job)
            session.flush()
        elif (job.source_uri, job.source_kind) != (source.uri, source.kind):
            raise JobConflict(
                f"job {name!r} already mines {job.source_kind} source {job.source_uri}; "
                f"choose another --job name for {source.uri}"
            )
        new_items = jobs_repo.add_items(session, job.id, source.iter_items())
    finally:
        source.close()
    if options.get(PRIORITISE) and not job.options.get(PRIORITISE):  # a job reopened with the option
        job.options = {**job.options, PRIORITISE: True}
    for key, value in (("until", until), ("model_profile", model_profile)):
        if value is not None and job.options.get(key) != value:
            job.options = {**job.options, key: value}
    retried = jobs_repo.reset_failed(session, job.id) if retry_failed else 0
    if retry_failed:
        retried += stages_repo.reset_failed(session, job.id)
    job.item_count = jobs_repo.count_items(session, job.id)
    pending = jobs_repo.pending_ids(session, job.id)
    job.status = JobStatus.RUNNING
    job.started_at = job.started_at or utcnow()
    session.flush()
    return JobPlan(job.id, job.name, job.source_kind, source.queue, job.item_count, new_items,
                   retried, pending)


def mine_batch(session: Session, settings: Settings, store: MediaStore, job_id: int,
               item_ids: list[int]) -> StageReport:
    """Ingest the still-pending items among ``item_ids``. Safe to run twice (idempotent)."""
    job = session.get(MiningJob, job_id)
    if job is None:
        raise LookupError(f"no mining job {job_id}")
    if job_media(job.options) is MediaKind.VIDEO:
        return mine_video.mine_video_batch(session, settings, store, job_id, item_ids)
    report = StageReport(STAGE)
    items = {item.id: item for item in jobs_repo.pending_items(session, job_id, item_ids)}
    report.counts[StageStatus.SKIPPED.value] = len(set(item_ids)) - len(items)
    if items and settings.dedup.near_duplicates:
        images_repo.refresh_statistics(session)
    if items:
        try:
            source = open_job_source(job, settings)
        except SourceError as exc:
            for item in items.values():
                _fail(item, f"source unavailable: {exc}", report)
            source = None
        if source is not None:
            try:
                _ingest_all(session, settings, store, job, source, items, report)
            finally:
                source.close()
    report.image_ids = [item.image_id for item in items.values()
                        if item.status in (ItemStatus.DONE, ItemStatus.DUPLICATE) and item.image_id]
    session.flush()
    return report


def _ingest_all(session: Session, settings: Settings, store: MediaStore, job: MiningJob,
                source: Source, items: dict[int, JobItem], report: StageReport) -> None:
    alt_text_version = model_versions.source_version(session, "alt-text").id
    created: list[str] = []  # files this batch wrote (not there before): removed if the batch fails
    try:
        _ingest_items(session, settings, store, job, source, items, report, alt_text_version, created)
        started = time.perf_counter()
        session.flush()
        report.seconds["db"] += time.perf_counter() - started
    except BaseException:
        # the caller rolls the batch back: its image rows go, so must the files only they named
        discard_unreferenced(session, store, created)
        raise


def _ingest_items(session: Session, settings: Settings, store: MediaStore, job: MiningJob, source: Source,
                  items: dict[int, JobItem], report: StageReport, alt_text_version: int,
                  created: list[str]) -> None:
    # Item rows are written back in one flush at the end of the batch; queries in between need
    # not see them (image rows are inserted directly and are visible at once).
    with session.no_autoflush:
        for result in source.read_many((item.id, item.locator) for item in items.values()):
            item = items[result.item_id]
            report.seconds["fetch"] += result.seconds
            if result.error is not None or result.data is None:
                _fail(item, result.error or "no data", report)
                continue
            try:
                prepared = prepare_image(result.data, max_pixels=settings.limits.max_pixels,
                                         min_side=settings.limits.min_side)
                annotations = _prepare_annotations(prepared, item)
            except (ImageRejected, MaskError) as exc:
                _fail(item, str(exc), report)
                continue
            report.add_seconds(prepared.timings)
            stored = _store_item(store, item, prepared, report)
            if stored is None:
                continue
            if stored.created:
                created.append(stored.key)
            _record_item(session, settings, store, job, item, prepared, stored, alt_text_version, annotations,
                         report, created)


def _store_item(store: MediaStore, item: JobItem, prepared: PreparedImage, report: StageReport) -> Stored | None:
    """Write the item's image file; None (the item failed, retried later when the error may pass)
    when the store cannot write it. The time counts as ``store`` either way."""
    started = time.perf_counter()
    try:
        stored = store.store(prepared.sha256, prepared.extension, prepared.data)
    except OSError as exc:  # disk full, quota, read-only, I/O error: this item fails, the rest goes on
        reason, transient = store_failure(exc)
        _fail(item, reason, report)
        item.retry_at = utcnow() if transient else None
        report.seconds["store"] += time.perf_counter() - started
        return None
    report.seconds["store"] += time.perf_counter() - started
    return stored


def _record_item(session: Session, settings: Settings, store: MediaStore, job: MiningJob, item: JobItem,
                 prepared: PreparedImage, stored: Stored, alt_text_version: int,
                 annotations: list[tuple[str, RleMask, bool]], report: StageReport, created: list[str]) -> None:
    """Write the item's rows (:func:`_record`) and count its status; a bug fails this item only (and
    removes the file it alone wrote), a transient database error stops the batch. The time counts as
    ``db``."""
    key = stored.key
    started = time.perf_counter()
    try:
        if annotations:  # several dependent writes: all or nothing
            with session.begin_nested():
                status = _record(session, settings, job, item, prepared, key,
                                 alt_text_version, annotations)
        else:  # single-statement writes that cannot half-happen
            status = _record(session, settings, job, item, prepared, key, alt_text_version, [])
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug on one item must not stop the job
        log.exception("item %s of job %s failed unexpectedly", item.key, job.name)
        _fail(item, f"internal error: {type(exc).__name__}: {exc}", report)
        if stored.created:  # its image row was not written: the file is nobody's
            created.remove(key)
            discard_unreferenced(session, store, [key])
    else:
        report.counts[status.value] += 1
    report.seconds["db"] += time.perf_counter() - started


def _record(session: Session, settings: Settings, job: MiningJob, item: JobItem,
            prepared: PreparedImage, storage_key: str, alt_text_version: int,
            annotations: list[tuple[str, RleMask, bool]]) -> ItemStatus:
    image_id = images_repo.id_by_sha256(session, prepared.sha256)
    near = None
    if image_id is None and settings.dedup.near_duplicates:
        near = images_repo.find_near_duplicate(session, prepared.phash, settings.dedup.phash_distance)
    if image_id is None:
        image_id, created = images_repo.insert_if_new(
            session, sha256=prepared.sha256, phash=prepared.phash, width=prepared.width,
            height=prepared.height, fmt=prepared.format, byte_size=len(prepared.data),
            storage_key=storage_key, duplicate_of_id=near.image_id if near else None,
            job_id=job.id, source_uri=item_uri(job, item),
        )
        status = (ItemStatus.NEAR_DUPLICATE if near else ItemStatus.DONE) if created else ItemStatus.DUPLICATE
    else:
        status = ItemStatus.DUPLICATE
    captions = [c for c in item.source_meta.get("captions", []) if isinstance(c, str) and c.strip()]
    if captions:
        labels_repo.add_captions(session, image_id, alt_text_version, captions)
    if annotations:
        _import_annotations(session, image_id, annotations)
    item.status = status
    item.image_id = image_id
    item.duplicate_distance = near.distance if near and status is ItemStatus.NEAR_DUPLICATE else None
    item.error = None
    item.attempts += 1
    item.processed_at = utcnow()
    return status


def _prepare_annotations(prepared: PreparedImage, item: JobItem) -> list[tuple[str, RleMask, bool]]:
    """Dataset annotations as (phrase, mask, crowd), checked before anything is written. A bad
    annotation (no category name, a segmentation that is malformed, outside the image or empty) is
    left out and its reason added to the item's ``source_meta.annotation_errors`` (beside those
    found at listing); the good ones are kept. Annotations declared for another image size fail the
    item (MaskError): the image is not the one they describe."""
    meta = item.source_meta or {}
    annotations = meta.get("annotations") or []
    if not isinstance(annotations, list) or not annotations:
        return []
    height, width = prepared.height, prepared.width
    declared = meta.get("declared_size")
    if declared and list(declared) != [height, width]:
        raise MaskError(
            f"annotations are for a {declared[0]}x{declared[1]} image but the image is "
            f"{height}x{width} (h x w)"
        )
    out, errors = [], []
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            errors.append(f"annotation at index {index} is not an object")
            continue
        shown = f"annotation {ann['id']}" if ann.get("id") is not None else f"annotation at index {index}"
        phrase = normalise_phrase(str(ann.get("category") or ""))
        if not phrase:
            errors.append(f"{shown}: category {ann.get('category_id')} has no name")
            continue
        try:
            mask = from_coco_segmentation(ann.get("segmentation"), height, width, allow_empty=False)
        except MaskError as exc:
            errors.append(f"{shown}: {exc}")
            continue
        out.append((phrase, mask, bool(ann.get("iscrowd"))))
    listed = [e for e in meta.get("annotation_errors") or [] if isinstance(e, str)]
    new = [e for e in errors if e not in listed]
    if new:  # a new dict: the JSON column sees the change
        item.source_meta = {**meta, "annotation_errors": capped_errors(listed + new)}
    return out


def _import_annotations(session: Session, image_id: int, masks: list[tuple[str, RleMask, bool]]) -> None:
    """Dataset annotations become pairs with candidate masks from the 'source' model version (once: a
    pair that already has masks from it gets no second copy). The pair's polarity is left to the
    decision model (engine/domain/decisions.py): it turns positive when a mask is accepted."""
    version = model_versions.source_version(session, "annotations").id
    ids = labels_repo.concept_ids(session, {phrase for phrase, _, _ in masks})
    pairs_with_masks = set(session.scalars(
        select(Mask.pair_id).join(ImageConcept, ImageConcept.id == Mask.pair_id)
        .where(ImageConcept.image_id == image_id, Mask.model_version_id == version)
    ))
    for phrase, mask, crowd in masks:
        pair = labels_repo.pair_id(session, image_id, ids[phrase], polarity=Polarity.UNKNOWN,
                                   origin=PairOrigin.SOURCE_ANNOTATION, model_version_id=version)
        if pair not in pairs_with_masks:
            labels_repo.add_mask(session, pair, version, mask, is_crowd=crowd)
    session.flush()
