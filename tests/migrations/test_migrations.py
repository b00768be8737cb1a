"""Alembic creates the schema on both databases, and it matches the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

import migrations
from engine.db.base import Base
from engine.db.models import ModelKind, ModelVersion, Verdict, VerdictKind, VerdictSource
from engine.db.session import get_engine, session_scope
from engine.repositories import model_versions


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    from tests.conftest import create_pg_database, drop_pg_database

    name = f"de_mig_{tmp_path.name[-20:]}".replace("-", "_").lower()
    url = create_pg_database(name)
    request.addfinalizer(lambda: drop_pg_database(name))
    return url


def test_upgrade_downgrade_upgrade(empty_url):
    assert migrations.current(empty_url) is None
    migrations.upgrade(empty_url)
    assert migrations.current(empty_url) == migrations.head()
    tables = set(inspect(get_engine(empty_url)).get_table_names())
    assert {"images", "job_items", "mining_jobs", "captions", "concepts", "image_concepts", "masks",
            "verdicts", "human_tasks", "users", "model_versions", "dataset_snapshots",
            "stage_items"} <= tables
    migrations.downgrade(empty_url, "base")
    assert set(inspect(get_engine(empty_url)).get_table_names()) <= {"alembic_version"}
    migrations.upgrade(empty_url)
    assert migrations.current(empty_url) == migrations.head()


def test_models_match_the_migrations(database_url):
    """Autogenerate finds nothing to change: the migrations are the whole truth of the schema."""
    with get_engine(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    # SQLite cannot reflect expression indexes, so alembic reports the partial queue index there
    diff = [d for d in diff if not (conn.dialect.name == "sqlite" and "ix_human_tasks_open_" in str(d))]
    assert diff == []


def test_verdicts_are_append_only(database_url):
    with session_scope(database_url) as s:
        from engine.db.models import Concept, Image, ImageConcept, PairOrigin, Polarity

        version = model_versions.get_or_create(s, ModelKind.MASK_VERIFIER, "mv", "1")
        image = Image(sha256="a" * 64, phash=0, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0,
                      width=1, height=1, format="PNG", byte_size=1, storage_key="k")
        concept = Concept(text="dog")
        s.add_all([image, concept])
        s.flush()
        pair = ImageConcept(image_id=image.id, concept_id=concept.id, polarity=Polarity.UNKNOWN,
                            origin=PairOrigin.MANUAL)
        s.add(pair)
        s.flush()
        verdict = Verdict(kind=VerdictKind.EXHAUSTIVITY, source=VerdictSource.AI, pair_id=pair.id,
                          model_version_id=version.id, label="accept", probabilities={"accept": 0.9})
        s.add(verdict)
        s.flush()
        verdict_id = verdict.id
    for statement in ("UPDATE verdicts SET label = 'reject'", "DELETE FROM verdicts"):
        with pytest.raises(DBAPIError, match="append-only"):
            with session_scope(database_url) as s:
                s.execute(text(statement))
    with session_scope(database_url) as s:
        assert s.get(Verdict, verdict_id).label == "accept"


def test_a_verdict_needs_an_author(database_url):
    with pytest.raises(DBAPIError, match="has_author"):
        with session_scope(database_url) as s:
            s.execute(text("INSERT INTO verdicts (kind, source, pair_id, label, created_at) "
                           "VALUES ('exhaustivity', 'human', 1, 'accept', CURRENT_TIMESTAMP)"))


def test_enum_columns_refuse_unknown_values(database_url):
    with pytest.raises(DBAPIError, match="model_kind"):
        with session_scope(database_url) as s:
            s.execute(text("INSERT INTO model_versions (kind, name, version, params, params_hash, "
                           "random_weights, is_promoted, metrics, created_at) VALUES "
                           "('wizard', 'x', '1', '{}', 'h', false, false, '{}', CURRENT_TIMESTAMP)"))


def test_model_versions_are_unique_per_parameters(database_url):
    with session_scope(database_url) as s:
        a = model_versions.get_or_create(s, ModelKind.PROPOSER, "sam3", "abc", {"threshold": 0.5})
        b = model_versions.get_or_create(s, ModelKind.PROPOSER, "sam3", "abc", {"threshold": 0.5})
        c = model_versions.get_or_create(s, ModelKind.PROPOSER, "sam3", "abc", {"threshold": 0.4})
        assert a.id == b.id != c.id
        assert s.query(ModelVersion).count() == 2
