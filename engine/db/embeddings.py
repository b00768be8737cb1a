"""Image embeddings per model version (similarity search, failure mining): a float32 vector per
(image, embedder version), the source of truth the approximate nearest-neighbour index is built from."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, utcnow


class ImageEmbedding(Base):
    __tablename__ = "image_embeddings"
    __table_args__ = (UniqueConstraint("model_version_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, L2-normalised
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
