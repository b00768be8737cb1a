"""video: mined videos and their sampled frames, video pairs (image_concepts.video_id; exactly one
medium per pair and per caption), masklets (masks with a frame range and per-frame masklet_frames),
the video page's tracker requests and their propagated frames

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('videos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('phash', sa.BigInteger(), nullable=False),
    sa.Column('phash_b0', sa.Integer(), nullable=False),
    sa.Column('phash_b1', sa.Integer(), nullable=False),
    sa.Column('phash_b2', sa.Integer(), nullable=False),
    sa.Column('phash_b3', sa.Integer(), nullable=False),
    sa.Column('keyframe_phashes', sa.JSON(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('fps', sa.Float(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('source_frames', sa.Integer(), nullable=False),
    sa.Column('sample_fps', sa.Float(), nullable=False),
    sa.Column('frame_count', sa.Integer(), nullable=False),
    sa.Column('container', sa.String(length=32), nullable=False),
    sa.Column('codec', sa.String(length=32), nullable=True),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('first_job_id', sa.Integer(), nullable=True),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['videos.id'], name=op.f('fk_videos_duplicate_of_id_videos'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['first_job_id'], ['mining_jobs.id'], name=op.f('fk_videos_first_job_id_mining_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_videos')),
    sa.UniqueConstraint('sha256', name=op.f('uq_videos_sha256'))
    )
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_videos_duplicate_of_id'), ['duplicate_of_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_phash_b0'), ['phash_b0'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_phash_b1'), ['phash_b1'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_phash_b2'), ['phash_b2'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_phash_b3'), ['phash_b3'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_storage_key'), ['storage_key'], unique=False)

    op.create_table('video_frames',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('timestamp_s', sa.Float(), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], name=op.f('fk_video_frames_video_id_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_frames')),
    sa.UniqueConstraint('video_id', 'index', name=op.f('uq_video_frames_video_id_index'))
    )
    with op.batch_alter_table('video_frames', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_frames_storage_key'), ['storage_key'], unique=False)
    op.create_table('masklet_frames',
    sa.Column('mask_id', sa.Integer(), nullable=False),
    sa.Column('frame_index', sa.Integer(), nullable=False),
    sa.Column('rle_counts', sa.Text(), nullable=False),
    sa.Column('bbox_x', sa.Float(), nullable=False),
    sa.Column('bbox_y', sa.Float(), nullable=False),
    sa.Column('bbox_w', sa.Float(), nullable=False),
    sa.Column('bbox_h', sa.Float(), nullable=False),
    sa.Column('area', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_masklet_frames_mask_id_masks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mask_id', 'frame_index', name=op.f('pk_masklet_frames'))
    )
    op.create_table('track_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('frame_index', sa.Integer(), nullable=False),
    sa.Column('points', sa.JSON(), nullable=False),
    sa.Column('mask_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('queued', 'running', 'done', 'failed', name='track_state', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('window_start', sa.Integer(), nullable=True),
    sa.Column('window_end', sa.Integer(), nullable=True),
    sa.Column('frames_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['mask_id'], ['masks.id'], name=op.f('fk_track_requests_mask_id_masks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_track_requests_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['task_id'], ['human_tasks.id'], name=op.f('fk_track_requests_task_id_human_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_track_requests_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], name=op.f('fk_track_requests_video_id_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_track_requests'))
    )
    with op.batch_alter_table('track_requests', schema=None) as batch_op:
        batch_op.create_index('ix_track_requests_task_id', ['task_id'], unique=False)

    op.create_table('track_frames',
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('frame_index', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('rle_counts', sa.Text(), nullable=True),
    sa.Column('bbox_x', sa.Float(), nullable=True),
    sa.Column('bbox_y', sa.Float(), nullable=True),
    sa.Column('bbox_w', sa.Float(), nullable=True),
    sa.Column('bbox_h', sa.Float(), nullable=True),
    sa.Column('area', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['track_requests.id'], name=op.f('fk_track_frames_request_id_track_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'frame_index', name=op.f('pk_track_frames'))
    )
    with op.batch_alter_table('captions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_id', sa.Integer(), nullable=True))
        batch_op.alter_column('image_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_captions_video_id'), ['video_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_captions_video_id_model_version_id_text_sha256'), ['video_id', 'model_version_id', 'text_sha256'])
        batch_op.create_foreign_key(batch_op.f('fk_captions_video_id_videos'), 'videos', ['video_id'], ['id'], ondelete='CASCADE')
        batch_op.create_check_constraint('one_medium', sa.text('(image_id IS NULL) <> (video_id IS NULL)'))

    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_id', sa.Integer(), nullable=True))
        batch_op.alter_column('image_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_image_concepts_video_id_concept_id'), ['video_id', 'concept_id'])
        batch_op.create_foreign_key(batch_op.f('fk_image_concepts_video_id_videos'), 'videos', ['video_id'], ['id'], ondelete='CASCADE')
        batch_op.create_check_constraint('one_medium', sa.text('(image_id IS NULL) <> (video_id IS NULL)'))

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_job_items_video_id_videos'), 'videos', ['video_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_frame', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_frame', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('masks', schema=None) as batch_op:
        batch_op.drop_column('last_frame')
        batch_op.drop_column('first_frame')

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_job_items_video_id_videos'), type_='foreignkey')
        batch_op.drop_column('video_id')

    with op.batch_alter_table('image_concepts', schema=None) as batch_op:
        batch_op.drop_constraint('one_medium', type_='check')
        batch_op.drop_constraint(batch_op.f('fk_image_concepts_video_id_videos'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_image_concepts_video_id_concept_id'), type_='unique')
        batch_op.alter_column('image_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('video_id')

    with op.batch_alter_table('captions', schema=None) as batch_op:
        batch_op.drop_constraint('one_medium', type_='check')
        batch_op.drop_constraint(batch_op.f('fk_captions_video_id_videos'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_captions_video_id_model_version_id_text_sha256'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_captions_video_id'))
        batch_op.alter_column('image_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('video_id')

    op.drop_table('track_frames')
    with op.batch_alter_table('track_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_track_requests_task_id')

    op.drop_table('track_requests')
    op.drop_table('masklet_frames')
    with op.batch_alter_table('video_frames', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_video_frames_storage_key'))
    op.drop_table('video_frames')
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_videos_storage_key'))
        batch_op.drop_index(batch_op.f('ix_videos_phash_b3'))
        batch_op.drop_index(batch_op.f('ix_videos_phash_b2'))
        batch_op.drop_index(batch_op.f('ix_videos_phash_b1'))
        batch_op.drop_index(batch_op.f('ix_videos_phash_b0'))
        batch_op.drop_index(batch_op.f('ix_videos_duplicate_of_id'))

    op.drop_table('videos')
