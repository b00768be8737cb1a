from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import ModelKind, ModelVersion
from engine.db.upsert import insert_ignore


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def get_or_create(session: Session, kind: ModelKind, name: str, version: str,
                  params: dict[str, Any] | None = None, *, uri: str | None = None,
                  random_weights: bool = False) -> ModelVersion:
    """The registry row for (kind, name, version, params), created once even under concurrency.
    Looked up first: inserting takes a row lock that would serialise concurrent batches."""
    params = params or {}
    digest = params_hash(params)
    query = select(ModelVersion).where(
        ModelVersion.kind == kind, ModelVersion.name == name,
        ModelVersion.version == version, ModelVersion.params_hash == digest,
    )
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found
    insert_ignore(session, ModelVersion.__table__, [{
        "kind": kind.value, "name": name, "version": version, "params": params,
        "params_hash": digest, "uri": uri, "random_weights": random_weights,
        "is_promoted": False, "metrics": {},
    }], ["kind", "name", "version", "params_hash"])
    return session.scalars(query).one()


def source_version(session: Session, what: str) -> ModelVersion:
    """The pseudo model version for data that came with a source ("alt-text", "coco-annotations")."""
    return get_or_create(session, ModelKind.SOURCE, f"source:{what}", "1")
