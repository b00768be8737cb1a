"""INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]],
                  conflict_columns: Sequence[str]) -> int:
    """Insert rows, skipping those that collide on ``conflict_columns``; returns rows inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table).values(list(rows))
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*table.primary_key.columns)
    )
    # rowcount is unreliable for multi-row inserts across drivers; RETURNING is exact.
    return len(session.execute(stmt).all())
