"""Training-set exports for ML engineers (and admins): start one, list the dataset snapshots, read
a snapshot's manifest.

An export runs inside the request (it streams from the database; see engine/services/export.py)
and is written under ``<data_dir>/exports/<snapshot name>``: clients choose the format, filters
and optionally the snapshot name, never a path. Exporting the same filters on unchanged data again
answers with the same snapshot (``reused``: true) and leaves its folder as it is.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select

from engine.db.models import DatasetSnapshot
from engine.domain.vocabulary import LabelSource
from engine.services.export import ExportFilters, exports_root, publish_export, verify_files
from engine.settings import Settings
from web.deps import Exporter, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import MAX_INT32, Finite, FreeText, Id, NameText, SaneDatetime

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/exports", tags=["exports"])
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_PAGE = 200


class FiltersIn(BaseModel):
    jobs: list[NameText | Id] = Field(default_factory=list, max_length=100, description="job names or ids")
    concepts: list[FreeText] = Field(default_factory=list, max_length=1000, description="exact concept texts")
    since: SaneDatetime | None = Field(None, description="images mined at or after (UTC)")
    until: SaneDatetime | None = Field(None, description="images mined before (UTC)")
    label_source: LabelSource = LabelSource.BOTH
    min_agreement: Finite | None = Field(None, ge=0, le=1)
    exhaustive_only: bool = False
    val_percent: int = Field(10, ge=0, le=100)

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value


class ExportIn(BaseModel):
    format: Literal["coco", "saco", "verifier", "saco_veval", "ytvis"]
    filters: FiltersIn = Field(default_factory=FiltersIn)
    name: str | None = Field(None, description="snapshot (and folder) name: letters, digits, . _ -; "
                                               "default: <format>-<manifest hash>")

    @field_validator("name")
    @classmethod
    def _safe(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError("a name is 1–100 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


def _summary(row: DatasetSnapshot, settings: Settings) -> dict[str, Any]:
    folder = exports_root(settings) / row.name
    return {"id": row.id, "name": row.name, "format": row.format, "created_at": row.created_at.isoformat(),
            "created_by_id": row.created_by_id, "manifest_sha256": row.manifest_sha256, "filters": row.filters,
            "counts": row.manifest.get("counts", {}), "folder": f"exports/{row.name}",
            "present": folder.is_dir()}


@router.post("", status_code=201)
def start_export(body: ExportIn, principal: Exporter, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Write the export and record its snapshot: {snapshot: {...}, reused, manifest}. 422: bad
    filters (unknown concept or job); 409: the name is taken by a snapshot with other contents."""
    f = body.filters
    filters = ExportFilters(concepts=tuple(f.concepts), since=f.since, until=f.until, label_source=f.label_source.value,
                            min_agreement=f.min_agreement, exhaustive_only=f.exhaustive_only, val_percent=f.val_percent)
    result = publish_export(session, settings, body.format, filters, jobs=f.jobs, name=body.name,
                            created_by_id=principal.user_id)
    row = session.get_one(DatasetSnapshot, result.snapshot_id)
    return {"snapshot": _summary(row, settings), "reused": result.reused,
            "manifest": result.manifest}


@router.get("")
def list_exports(_: Exporter, session: SessionDep, settings: SettingsDep,
                 limit: int = Query(50, ge=1, le=MAX_PAGE),
                 offset: int = Query(0, ge=0, le=MAX_INT32)) -> dict[str, Any]:
    """Dataset snapshots, newest first: {total, snapshots: [...]}."""
    total = session.scalar(select(func.count()).select_from(DatasetSnapshot)) or 0
    rows = session.scalars(select(DatasetSnapshot).order_by(DatasetSnapshot.id.desc())
                           .limit(limit).offset(offset)).all()
    return {"total": total, "snapshots": [_summary(r, settings) for r in rows]}


@router.get("/{snapshot_id}")
def get_export(snapshot_id: Id, _: Exporter, session: SessionDep, settings: SettingsDep,
               verify: bool = Query(False, description="re-hash the files and list those that differ")
               ) -> dict[str, Any]:
    """One snapshot with its manifest (files and their sha256, counts, model versions, filters)."""
    row = session.get(DatasetSnapshot, snapshot_id)
    if row is None:
        raise HTTPException(404, f"no snapshot {snapshot_id}")
    out = {**_summary(row, settings), "manifest": row.manifest}
    if verify:
        folder = exports_root(settings) / row.name
        out["mismatched_files"] = verify_files(folder, row.manifest) if folder.is_dir() else None
    return out
