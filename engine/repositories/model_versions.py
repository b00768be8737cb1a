from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.db.models import ModelVersion
from engine.db.upsert import insert_ignore
from engine.domain.vocabulary import ModelKind


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


def promoted(session: Session, kind: ModelKind) -> ModelVersion | None:
    """The promoted version of a model kind (what new pipeline runs use), if any."""
    return session.scalars(select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.is_promoted.is_(True))
                           .order_by(ModelVersion.id.desc()).limit(1)).one_or_none()


def promoted_uri(session: Session, kind: ModelKind, *, random_weights: bool | None = None) -> str | None:
    """The promoted version's checkpoint; with ``random_weights`` given, only a version whose
    weights are random (or real) alike: a random-weight (tiny) model never serves a real-model
    profile, nor a real checkpoint the tiny profile."""
    row = promoted(session, kind)
    if row is None or (random_weights is not None and row.random_weights != random_weights):
        return None
    return row.uri


def set_promoted(session: Session, row: ModelVersion) -> ModelVersion | None:
    """Make ``row`` the one promoted version of its kind; returns the one it replaces."""
    previous = promoted(session, row.kind)
    session.execute(update(ModelVersion).where(ModelVersion.kind == row.kind, ModelVersion.id != row.id)
                    .values(is_promoted=False))
    row.is_promoted = True
    session.flush()
    return previous if previous is not None and previous.id != row.id else None
