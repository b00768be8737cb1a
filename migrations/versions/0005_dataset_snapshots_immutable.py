"""dataset snapshots are immutable: the database refuses changes to what a snapshot recorded

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: what a snapshot recorded; created_by_id may still be set to NULL when its user is deleted
FROZEN = "id, name, format, filters, manifest, manifest_sha256, created_at"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION dataset_snapshots_immutable() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'dataset snapshots are immutable (UPDATE of a recorded field refused)';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            f"CREATE TRIGGER dataset_snapshots_immutable BEFORE UPDATE OF {FROZEN} ON dataset_snapshots "
            "FOR EACH ROW EXECUTE FUNCTION dataset_snapshots_immutable()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER dataset_snapshots_immutable BEFORE UPDATE OF {FROZEN} ON dataset_snapshots "
            "BEGIN SELECT RAISE(ABORT, 'dataset snapshots are immutable (UPDATE of a recorded field refused)'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS dataset_snapshots_immutable" + (
        " ON dataset_snapshots" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dataset_snapshots_immutable()")
