"""queue: sessions, API tokens, log-in attempts, gold items, skips, multi-review

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_ip_created_at', ['ip', 'created_at'], unique=False)
        batch_op.create_index('ix_login_attempts_username_created_at', ['username', 'created_at'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('auth_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_auth_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_auth_sessions_token_hash'))
    )
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('gold_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('verify_mask', 'check_exhaustivity', 'correct', name='task_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('mask_id', sa.Integer(), nullable=True),
    sa.Column('answer', sa.String(length=64), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_gold_items_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_gold_items_mask_id_masks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pair_id'], ['image_concepts.id'], name=op.f('fk_gold_items_pair_id_image_concepts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gold_items'))
    )
    with op.batch_alter_table('gold_items', schema=None) as batch_op:
        batch_op.create_index('ix_gold_items_active_kind', ['is_active', 'kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_gold_items_pair_id'), ['pair_id'], unique=False)

    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gold_item_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reviews_required', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('reviews_done', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_human_tasks_gold_item_id_gold_items'), 'gold_items', ['gold_item_id'], ['id'], ondelete='SET NULL')

    op.create_table('task_skips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_task_skips_task_id_human_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_task_skips_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_skips')),
    sa.UniqueConstraint('user_id', 'task_id', name=op.f('uq_task_skips_user_id_task_id'))
    )
    with op.batch_alter_table('task_skips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_skips_task_id'), ['task_id'], unique=False)

    op.create_index('ix_human_tasks_open_order', 'human_tasks', [sa.text('priority DESC'), 'id'], unique=False,
                    postgresql_where=sa.text("state = 'open'"), sqlite_where=sa.text("state = 'open'"))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_kinds', sa.JSON(), nullable=True))
    # the lease's "not judged by this person" test and the multi-review count read verdicts by
    # author and by task: without these every lease scans all verdicts (~120 ms at 1.2 M rows)
    op.create_index('ix_verdicts_user_id_pair_id', 'verdicts', ['user_id', 'pair_id'], unique=False,
                    postgresql_where=sa.text('user_id IS NOT NULL'), sqlite_where=sa.text('user_id IS NOT NULL'))
    op.create_index('ix_verdicts_task_id', 'verdicts', ['task_id'], unique=False,
                    postgresql_where=sa.text('task_id IS NOT NULL'), sqlite_where=sa.text('task_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_verdicts_task_id', table_name='verdicts')
    op.drop_index('ix_verdicts_user_id_pair_id', table_name='verdicts')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('task_kinds')

    with op.batch_alter_table('task_skips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_skips_task_id'))

    op.drop_table('task_skips')
    op.drop_index('ix_human_tasks_open_order', table_name='human_tasks')
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_human_tasks_gold_item_id_gold_items'), type_='foreignkey')
        batch_op.drop_column('reviews_done')
        batch_op.drop_column('reviews_required')
        batch_op.drop_column('gold_item_id')

    with op.batch_alter_table('gold_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gold_items_pair_id'))
        batch_op.drop_index('ix_gold_items_active_kind')

    op.drop_table('gold_items')
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_sessions_user_id'))

    op.drop_table('auth_sessions')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_username_created_at')
        batch_op.drop_index('ix_login_attempts_ip_created_at')

    op.drop_table('login_attempts')
