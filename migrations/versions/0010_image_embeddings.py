"""image embeddings: one float32 vector per (image, embedder model version), the source of truth of the
similarity index (similarity search, failure mining)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('image_embeddings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_embeddings_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_image_embeddings_model_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_embeddings')),
    sa.UniqueConstraint('model_version_id', 'image_id', name=op.f('uq_image_embeddings_model_version_id_image_id'))
    )
    with op.batch_alter_table('image_embeddings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_embeddings_image_id'), ['image_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('image_embeddings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_embeddings_image_id'))

    op.drop_table('image_embeddings')
