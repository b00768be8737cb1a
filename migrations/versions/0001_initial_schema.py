"""initial schema: the whole loop (mining, captions, concepts, pairs, masks, verdicts, tasks)

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('concepts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('text', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_concepts')),
    sa.UniqueConstraint('text', name=op.f('uq_concepts_text'))
    )
    op.create_table('mining_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('source_uri', sa.Text(), nullable=False),
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('listing', 'running', 'done', name='job_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mining_jobs')),
    sa.UniqueConstraint('name', name=op.f('uq_mining_jobs_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('role', sa.Enum('admin', 'annotator', 'reviewer', 'ml_engineer', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('dataset_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_dataset_snapshots_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_snapshots')),
    sa.UniqueConstraint('name', name=op.f('uq_dataset_snapshots_name'))
    )
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('phash', sa.BigInteger(), nullable=False),
    sa.Column('phash_b0', sa.Integer(), nullable=False),
    sa.Column('phash_b1', sa.Integer(), nullable=False),
    sa.Column('phash_b2', sa.Integer(), nullable=False),
    sa.Column('phash_b3', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('first_job_id', sa.Integer(), nullable=True),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['images.id'], name=op.f('fk_images_duplicate_of_id_images'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['first_job_id'], ['mining_jobs.id'], name=op.f('fk_images_first_job_id_mining_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('sha256', name=op.f('uq_images_sha256'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_duplicate_of_id'), ['duplicate_of_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_phash_b0'), ['phash_b0'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_phash_b1'), ['phash_b1'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_phash_b2'), ['phash_b2'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_phash_b3'), ['phash_b3'], unique=False)

    op.create_table('job_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('locator', sa.JSON(), nullable=False),
    sa.Column('source_meta', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'done', 'duplicate', 'near_duplicate', 'failed', name='item_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('duplicate_distance', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_job_items_image_id_images'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['mining_jobs.id'], name=op.f('fk_job_items_job_id_mining_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_items')),
    sa.UniqueConstraint('job_id', 'key', name=op.f('uq_job_items_job_id_key'))
    )
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.create_index('ix_job_items_job_id_status', ['job_id', 'status'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('source', 'captioner', 'parser', 'proposer', 'mask_verifier', 'exhaustivity_verifier', 'tracker', 'external', name='model_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=128), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('params_hash', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.Text(), nullable=True),
    sa.Column('random_weights', sa.Boolean(), nullable=False),
    sa.Column('is_promoted', sa.Boolean(), nullable=False),
    sa.Column('training_snapshot_id', sa.Integer(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['training_snapshot_id'], ['dataset_snapshots.id'], name=op.f('fk_model_versions_training_snapshot_id_dataset_snapshots'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('kind', 'name', 'version', 'params_hash', name=op.f('uq_model_versions_kind_name_version_params_hash'))
    )
    op.create_table('captions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_captions_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_captions_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_captions')),
    sa.UniqueConstraint('image_id', 'model_version_id', 'text_sha256', name=op.f('uq_captions_image_id_model_version_id_text_sha256'))
    )
    op.create_table('stage_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'done', 'failed', 'skipped', name='stage_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['mining_jobs.id'], name=op.f('fk_stage_items_job_id_mining_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_stage_items_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_items')),
    sa.UniqueConstraint('job_id', 'stage', 'subject_id', name=op.f('uq_stage_items_job_id_stage_subject_id'))
    )
    with op.batch_alter_table('stage_items', schema=None) as batch_op:
        batch_op.create_index('ix_stage_items_job_id_stage_status', ['job_id', 'stage', 'status'], unique=False)

    op.create_table('image_concepts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('concept_id', sa.Integer(), nullable=False),
    sa.Column('polarity', sa.Enum('unknown', 'positive', 'negative', name='polarity', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('origin', sa.Enum('caption', 'source_annotation', 'hard_negative', 'external', 'manual', name='pair_origin', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('caption_id', sa.Integer(), nullable=True),
    sa.Column('is_exhaustive', sa.Boolean(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['caption_id'], ['captions.id'], name=op.f('fk_image_concepts_caption_id_captions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['concept_id'], ['concepts.id'], name=op.f('fk_image_concepts_concept_id_concepts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_concepts_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_image_concepts_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_concepts')),
    sa.UniqueConstraint('image_id', 'concept_id', name=op.f('uq_image_concepts_image_id_concept_id'))
    )
    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_concepts_concept_id'), ['concept_id'], unique=False)

    op.create_table('masks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('rle_counts', sa.Text(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('bbox_x', sa.Float(), nullable=False),
    sa.Column('bbox_y', sa.Float(), nullable=False),
    sa.Column('bbox_w', sa.Float(), nullable=False),
    sa.Column('bbox_h', sa.Float(), nullable=False),
    sa.Column('area', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('is_crowd', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_masks_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['pair_id'], ['image_concepts.id'], name=op.f('fk_masks_pair_id_image_concepts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_masks'))
    )
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_masks_pair_id'), ['pair_id'], unique=False)

    op.create_table('human_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('verify_mask', 'check_exhaustivity', 'correct', name='task_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('mask_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('open', 'leased', 'done', 'cancelled', name='task_state', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('lease_owner_id', sa.Integer(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('gold_answer', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lease_owner_id'], ['users.id'], name=op.f('fk_human_tasks_lease_owner_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_human_tasks_mask_id_masks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pair_id'], ['image_concepts.id'], name=op.f('fk_human_tasks_pair_id_image_concepts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_human_tasks'))
    )
    op.create_index(
        "ix_human_tasks_open_queue",
        "human_tasks",
        ["kind", sa.text("priority DESC"), "id"],
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_tasks_pair_id'), ['pair_id'], unique=False)
        batch_op.create_index('ix_human_tasks_state_lease_expires_at', ['state', 'lease_expires_at'], unique=False)

    op.create_table('verdicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.Enum('mask_verification', 'exhaustivity', 'correction', name='verdict_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('source', sa.Enum('ai', 'human', 'label_studio', name='verdict_source', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('mask_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(user_id IS NOT NULL) OR (model_version_id IS NOT NULL)', name=op.f('ck_verdicts_has_author')),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_verdicts_mask_id_masks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_verdicts_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['pair_id'], ['image_concepts.id'], name=op.f('fk_verdicts_pair_id_image_concepts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supersedes_id'], ['verdicts.id'], name=op.f('fk_verdicts_supersedes_id_verdicts'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_verdicts_task_id_human_tasks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_verdicts_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verdicts')),
    sa.UniqueConstraint('client_id', name=op.f('uq_verdicts_client_id'))
    )
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verdicts_mask_id'), ['mask_id'], unique=False)
        batch_op.create_index('ix_verdicts_pair_id_kind', ['pair_id', 'kind'], unique=False)


    _verdicts_append_only()


def _verdicts_append_only() -> None:
    """Verdicts are append-only: the database itself refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION verdicts_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'verdicts are append-only (% refused)', TG_OP;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER verdicts_append_only BEFORE UPDATE OR DELETE ON verdicts "
            "FOR EACH ROW EXECUTE FUNCTION verdicts_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER verdicts_no_{action.lower()} BEFORE {action} ON verdicts "
                f"BEGIN SELECT RAISE(ABORT, 'verdicts are append-only ({action} refused)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS verdicts_append_only ON verdicts")
        op.execute("DROP FUNCTION IF EXISTS verdicts_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS verdicts_no_update")
        op.execute("DROP TRIGGER IF EXISTS verdicts_no_delete")
    op.drop_index("ix_human_tasks_open_queue", table_name="human_tasks")
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.drop_index('ix_verdicts_pair_id_kind')
        batch_op.drop_index(batch_op.f('ix_verdicts_mask_id'))

    op.drop_table('verdicts')
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_state_lease_expires_at')
        batch_op.drop_index(batch_op.f('ix_human_tasks_pair_id'))

    op.drop_table('human_tasks')
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_masks_pair_id'))

    op.drop_table('masks')
    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_concepts_concept_id'))

    op.drop_table('image_concepts')
    with op.batch_alter_table('stage_items', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_items_job_id_stage_status')

    op.drop_table('stage_items')
    op.drop_table('captions')
    op.drop_table('model_versions')
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_index('ix_job_items_job_id_status')

    op.drop_table('job_items')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_phash_b3'))
        batch_op.drop_index(batch_op.f('ix_images_phash_b2'))
        batch_op.drop_index(batch_op.f('ix_images_phash_b1'))
        batch_op.drop_index(batch_op.f('ix_images_phash_b0'))
        batch_op.drop_index(batch_op.f('ix_images_duplicate_of_id'))

    op.drop_table('images')
    op.drop_table('dataset_snapshots')
    op.drop_table('users')
    op.drop_table('mining_jobs')
    op.drop_table('concepts')
