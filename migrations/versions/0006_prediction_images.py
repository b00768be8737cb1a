"""prediction images: the images an imported predictions version ran on

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('prediction_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_prediction_images_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_prediction_images_model_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_images')),
    sa.UniqueConstraint('model_version_id', 'image_id', name=op.f('uq_prediction_images_model_version_id_image_id'))
    )
    with op.batch_alter_table('prediction_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_images_image_id'), ['image_id'], unique=False)
    # imports made before this revision covered at least the images of their rows
    op.execute(
        "INSERT INTO prediction_images (model_version_id, image_id, created_at) "
        "SELECT DISTINCT masks.model_version_id, image_concepts.image_id, CURRENT_TIMESTAMP "
        "FROM masks JOIN image_concepts ON image_concepts.id = masks.pair_id "
        "JOIN model_versions ON model_versions.id = masks.model_version_id "
        "WHERE model_versions.kind = 'external'"
    )


def downgrade() -> None:
    with op.batch_alter_table('prediction_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_images_image_id'))

    op.drop_table('prediction_images')
