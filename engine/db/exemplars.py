"""Exemplar requests of the correction page: boxes around instances (positive or negative) on an image
task's image, queued by the web process, run by SAM 3 (text + exemplar boxes) on a worker, the candidate
masks kept on the row until the annotator keeps or deletes them in the working set."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.base import Base, portable_enum, utcnow
from engine.domain.vocabulary import TrackState


class ExemplarRequest(Base):
    __tablename__ = "exemplar_requests"
    __table_args__ = (Index("ix_exemplar_requests_task_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    boxes: Mapped[list[list[float]]] = mapped_column(JSON)  # [[x0, y0, x1, y1], ...] in the image's pixels
    labels: Mapped[list[int]] = mapped_column(JSON)  # 1 positive / 0 negative, one per box
    state: Mapped[TrackState] = mapped_column(portable_enum(TrackState, "exemplar_state"))
    error: Mapped[str | None] = mapped_column(Text)
    # [{"rle": {"size": [h, w], "counts"}, "bbox": [x, y, w, h], "score"}, ...], at most max_masks
    result: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
