"""INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import FromClause, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: FromClause, rows: Sequence[dict[str, Any]],
                  conflict_columns: Sequence[str]) -> int:
    """Insert rows, skipping those that collide on ``conflict_columns``; returns rows inserted."""
    return len(insert_ignore_returning(session, table, rows, conflict_columns))


def insert_ignore_returning(session: Session, table: FromClause, rows: Sequence[dict[str, Any]],
                            conflict_columns: Sequence[str]) -> list[Any]:
    """Like insert_ignore; returns the primary keys of the rows actually inserted.

    The statement has no literal values, so SQLAlchemy compiles it once and caches it; the rows
    go as parameters (one execution, or "insertmanyvalues" batches for many rows). rowcount is
    unreliable for such inserts across drivers; RETURNING is exact."""
    if not isinstance(table, Table):  # a model's __table__ is typed FromClause; it is a Table
        raise TypeError(f"expected a Table, got {type(table).__name__}")
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*table.primary_key.columns)
    )
    params = list(rows)
    result = session.execute(stmt, params[0] if len(params) == 1 else params)
    return [row[0] for row in result.all()]
