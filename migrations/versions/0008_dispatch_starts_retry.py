"""self-healing execution: when stage work was last handed to the broker, how often a batch holding
it started, when a transiently failed item is tried again; the database's identity (task messages
carry it, a worker on another database refuses them)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    identity = op.create_table(
        'database_identity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_database_identity')),
        sa.UniqueConstraint('uuid', name=op.f('uq_database_identity_uuid')),
    )
    op.bulk_insert(identity, [{'id': 1, 'uuid': str(uuid.uuid4()),
                               'created_at': dt.datetime.now(dt.UTC)}])
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('starts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_job_items_retry_at', ['retry_at'], unique=False,
                              postgresql_where=sa.text('retry_at IS NOT NULL'),
                              sqlite_where=sa.text('retry_at IS NOT NULL'))
    with op.batch_alter_table('stage_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('starts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_table('database_identity')
    with op.batch_alter_table('stage_items', schema=None) as batch_op:
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('starts')
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_index('ix_job_items_retry_at', postgresql_where=sa.text('retry_at IS NOT NULL'),
                            sqlite_where=sa.text('retry_at IS NOT NULL'))
        batch_op.drop_column('retry_at')
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('starts')
