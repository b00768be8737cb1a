"""exemplar requests (boxes on an image task, SAM 3 re-proposes on a worker) and masks.prompt (what
prompted a mask a person made with a model)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('exemplar_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('boxes', sa.JSON(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('state', sa.Enum('queued', 'running', 'done', 'failed', name='exemplar_state', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_exemplar_requests_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_exemplar_requests_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_exemplar_requests_task_id_human_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exemplar_requests_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exemplar_requests'))
    )
    with op.batch_alter_table('exemplar_requests', schema=None) as batch_op:
        batch_op.create_index('ix_exemplar_requests_task_id', ['task_id'], unique=False)
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prompt', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.drop_column('prompt')
    with op.batch_alter_table('exemplar_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_exemplar_requests_task_id')
    op.drop_table('exemplar_requests')
