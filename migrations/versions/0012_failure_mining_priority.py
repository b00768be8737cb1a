"""failure mining: job_items.failure_score and job_items.priority_rank (the order a prioritised job's model
stages took its pool in)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('priority_rank', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_column('priority_rank')
        batch_op.drop_column('failure_score')
