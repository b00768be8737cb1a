"""queue: a person's live leases (the lease cap) and a gold item's copies (made ahead of time)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_human_tasks_leased_owner', ['lease_owner_id'], unique=False,
                              postgresql_where=sa.text("state = 'leased'"), sqlite_where=sa.text("state = 'leased'"))
        batch_op.create_index('ix_human_tasks_gold_item_id_state', ['gold_item_id', 'state'], unique=False,
                              postgresql_where=sa.text('gold_item_id IS NOT NULL'),
                              sqlite_where=sa.text('gold_item_id IS NOT NULL'))
    # gold tasks made at lease time before this revision said "gold item": give live ones the wording of
    # their pair's own task of the kind (gold copies now look like any other task)
    op.execute(
        "UPDATE human_tasks SET reason = COALESCE((SELECT t.reason FROM human_tasks t "
        "WHERE t.pair_id = human_tasks.pair_id AND t.kind = human_tasks.kind AND t.is_gold = false "
        "ORDER BY t.id DESC LIMIT 1), 'needs a person') "
        "WHERE is_gold = true AND state IN ('open', 'leased')"
    )


def downgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_gold_item_id_state',
                            postgresql_where=sa.text('gold_item_id IS NOT NULL'),
                            sqlite_where=sa.text('gold_item_id IS NOT NULL'))
        batch_op.drop_index('ix_human_tasks_leased_owner', postgresql_where=sa.text("state = 'leased'"),
                            sqlite_where=sa.text("state = 'leased'"))
