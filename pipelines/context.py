"""What a task needs in a process: settings, database sessions, media store, models (built lazily, once)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.orm import Session

from engine.db.session import session_scope
from engine.settings import Settings
from engine.storage import MediaStore
from engine.stores import make_store
from pipelines.models import ModelCache


@dataclass(frozen=True)
class TaskContext:
    settings: Settings
    store: MediaStore
    models: ModelCache = field(compare=False)
    _by_profile: dict[str, ModelCache] = field(default_factory=dict, compare=False, repr=False)

    def models_for(self, profile: str | None) -> ModelCache:
        """The models of a job's own profile (``None`` or the settings' profile: ``models``)."""
        if profile is None or profile == self.settings.model_profile:
            return self.models
        if profile not in self._by_profile:
            self._by_profile[profile] = ModelCache(self.settings.model_copy(update={"model_profile": profile}))
        return self._by_profile[profile]

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """The task wrapper's unit of work: commits when the service returns."""
        with session_scope(self.settings.db_url) as session:
            yield session

    def database_id(self) -> str | None:
        """The identity of this context's database (table ``database_identity``), read once per process."""
        return database_identity(self.settings.db_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> TaskContext:
        return cls(settings=settings, store=make_store(settings), models=ModelCache(settings))


@cache
def database_identity(db_url: str) -> str | None:
    """The random id made with the schema (table ``database_identity``) and, on PostgreSQL, the
    server's system identifier and the database's oid: a copy of the database (a template, a
    restored dump) has the same row but another oid or server, so it is told apart too."""
    from sqlalchemy import select, text

    from engine.db.models import DatabaseIdentity

    with session_scope(db_url) as session:
        row = session.scalar(select(DatabaseIdentity.uuid).where(DatabaseIdentity.id == 1))
        if row is None or session.get_bind().dialect.name != "postgresql":
            return row
        oid = session.scalar(text("SELECT oid FROM pg_database WHERE datname = current_database()"))
        try:
            with session.begin_nested():
                server = session.scalar(text("SELECT system_identifier FROM pg_control_system()"))
        except Exception:  # noqa: BLE001 - a role not allowed to read it: the oid alone
            server = None
        return f"{row}:{server or '-'}:{oid}"


@cache
def worker_context() -> TaskContext:
    """The context of a Celery worker process, from its environment."""
    return TaskContext.from_settings(Settings())
