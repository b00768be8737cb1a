"""The training set of a retraining run: a new export, or an existing export folder that must be a
recorded dataset snapshot whose files are intact."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import DatasetSnapshot
from engine.services.export import MANIFEST, ExportResult, export_dataset, verify_files
from engine.services.export_rows import ExportFilters
from engine.settings import Settings


class TrainingDataError(ValueError):
    """The named export cannot be used as training data."""


@dataclass(frozen=True)
class TrainingData:
    folder: Path
    snapshot_id: int
    created: ExportResult | None  # a new export made for this run (the caller commits it)


def existing_export(session: Session, folder: Path, fmt: str) -> TrainingData:
    """An export folder made earlier: its manifest must be a snapshot of ``fmt`` and its files
    must still have the manifest's hashes."""
    path = folder / MANIFEST
    if not path.is_file():
        raise TrainingDataError(f"{folder} has no {MANIFEST}: not an export folder")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    row = session.scalars(select(DatasetSnapshot).where(DatasetSnapshot.manifest_sha256 == digest)).first()
    if row is None:
        raise TrainingDataError(f"the export in {folder} is not a recorded dataset snapshot")
    if row.format != fmt:
        raise TrainingDataError(f"the export in {folder} is a {row.format} export, not {fmt}")
    changed = verify_files(folder, json.loads(data))
    if changed:
        raise TrainingDataError(f"files of the export in {folder} changed since it was made: {', '.join(changed)}")
    return TrainingData(folder, row.id, None)


def new_export(session: Session, settings: Settings, fmt: str, filters: ExportFilters) -> TrainingData:
    """A fresh export under ``<data_dir>/exports`` (flushed snapshot; the caller commits it with
    engine.services.export.commit_or_discard)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    result = export_dataset(session, settings, fmt, settings.data_dir / "exports" / f"{fmt}-{stamp}", filters)
    return TrainingData(result.out_dir, result.snapshot_id, result)
