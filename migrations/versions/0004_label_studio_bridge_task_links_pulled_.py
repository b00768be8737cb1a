"""label studio bridge: task links, pulled annotations

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('label_studio_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('pushed', 'done', 'failed', name='bridge_state', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_label_studio_tasks_task_id_human_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_studio_tasks')),
    sa.UniqueConstraint('server', 'ls_task_id', name=op.f('uq_label_studio_tasks_server_ls_task_id'))
    )
    with op.batch_alter_table('label_studio_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_studio_tasks_task_id'), ['task_id'], unique=False)

    op.create_table('label_studio_annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('annotation_id', sa.Integer(), nullable=False),
    sa.Column('ls_updated_at', sa.String(length=64), nullable=False),
    sa.Column('ls_user', sa.String(length=255), nullable=True),
    sa.Column('verdict_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['label_studio_tasks.id'], name=op.f('fk_label_studio_annotations_link_id_label_studio_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verdict_id'], ['verdicts.id'], name=op.f('fk_label_studio_annotations_verdict_id_verdicts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_studio_annotations')),
    sa.UniqueConstraint('link_id', 'annotation_id', 'ls_updated_at', name=op.f('uq_label_studio_annotations_link_id_annotation_id_ls_updated_at'))
    )


def downgrade() -> None:
    op.drop_table('label_studio_annotations')
    with op.batch_alter_table('label_studio_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_studio_tasks_task_id'))

    op.drop_table('label_studio_tasks')
