"""routing: mask state, decisions, calibrations

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calibrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('task_kind', sa.Enum('verify_mask', 'check_exhaustivity', 'correct', name='task_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('scope', sa.String(length=16), server_default='all', nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('calibrator', sa.JSON(), nullable=True),
    sa.Column('target_precision', sa.Float(), nullable=False),
    sa.Column('accept_threshold', sa.Float(), nullable=True),
    sa.Column('reject_threshold', sa.Float(), nullable=True),
    sa.Column('n_verdicts', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_calibrations_model_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibrations'))
    )
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.create_index('ix_calibrations_model_version_id_task_kind', ['model_version_id', 'task_kind'], unique=False)

    op.create_table('route_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('mask_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.Enum('auto_accept', 'auto_reject', 'human', 'keep_human', name='route_action', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('task_kind', sa.Enum('verify_mask', 'check_exhaustivity', 'correct', name='task_kind', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('audit', sa.Boolean(), nullable=False),
    sa.Column('verifier_version_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_route_decisions_mask_id_masks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pair_id'], ['image_concepts.id'], name=op.f('fk_route_decisions_pair_id_image_concepts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_route_decisions_task_id_human_tasks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['verifier_version_id'], ['model_versions.id'], name=op.f('fk_route_decisions_verifier_version_id_model_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_decisions'))
    )
    with op.batch_alter_table('route_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_route_decisions_pair_id_mask_id', ['pair_id', 'mask_id'], unique=False)

    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decided_by', sa.Enum('ai', 'human', name='decider', native_enum=False, create_constraint=True, length=32), nullable=True))

    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.Enum('candidate', 'accepted', 'rejected', name='mask_state', native_enum=False, create_constraint=True, length=32), nullable=False, server_default='candidate'))
        batch_op.add_column(sa.Column('decided_by', sa.Enum('ai', 'human', name='decider', native_enum=False, create_constraint=True, length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.drop_constraint('decider', type_='check')
        batch_op.drop_constraint('mask_state', type_='check')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('state')

    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.drop_constraint('decider', type_='check')
        batch_op.drop_column('decided_by')

    with op.batch_alter_table('route_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_route_decisions_pair_id_mask_id')

    op.drop_table('route_decisions')
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.drop_index('ix_calibrations_model_version_id_task_kind')

    op.drop_table('calibrations')
