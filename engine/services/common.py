"""What the stage services share: the one report type, the claim-and-register prologue, status
recording, image loading, split-and-retry."""

from __future__ import annotations

import io
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import Image, ModelVersion, StageItem
from engine.domain.vocabulary import ModelKind, StageStatus
from engine.ports import ModelStamp
from engine.repositories import model_versions
from engine.repositories import stages as stages_repo
from engine.settings import ModelSettings
from engine.storage import MediaStore

log = logging.getLogger(__name__)
MAX_SIDE: int = ModelSettings.model_fields["max_side"].default  # models.max_side when a caller names none
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class StageReport:
    """What one batch of any stage (mining included) did: outcomes and other counts, seconds per
    step, and the ids it finished, which are handed to the next stage."""

    stage: str
    counts: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    image_ids: list[int] = field(default_factory=list)  # finished here: handed to the next stage

    def add_seconds(self, timings: Mapping[str, float]) -> None:
        """Add each step's seconds to those the batch spent on it so far."""
        for step, seconds in timings.items():
            self.seconds[step] += seconds

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (a Celery task's result)."""
        return {"stage": self.stage, "counts": dict(self.counts), "seconds": dict(self.seconds),
                "image_ids": self.image_ids}


@dataclass(frozen=True)
class ClaimedBatch:
    """The rows a stage batch claimed, the report they are recorded in, and the model versions
    registered for the stamps the stage named (in the order named; none when nothing was claimed)."""

    report: StageReport
    items: list[StageItem]
    versions: list[int]

    @property
    def version(self) -> int:
        """The version of the stage's (first) model."""
        return self.versions[0]

    def skip_all(self, reason: str) -> StageReport:
        """Record every claimed row as skipped for ``reason`` (the stage is turned off)."""
        for item in self.items:
            record(self.report, item, StageStatus.SKIPPED, detail={"reason": reason})
        return self.report


def claim_batch(session: Session, stage: str, job_id: int, image_ids: Sequence[int],
                *stamps: ModelStamp) -> ClaimedBatch:
    """The prologue of every model stage: claim the batch's pending rows and, when there are any,
    register the model versions that will work on them."""
    items = stages_repo.claim_pending(session, job_id, stage, image_ids)
    versions = [register(session, stamp).id for stamp in stamps] if items else []
    return ClaimedBatch(StageReport(stage), items, versions)


def register(session: Session, stamp: ModelStamp) -> ModelVersion:
    return model_versions.get_or_create(
        session, ModelKind(stamp.kind), stamp.name, stamp.version, stamp.params,
        uri=stamp.uri, random_weights=stamp.random_weights,
    )


def record(report: StageReport, item: StageItem, status: StageStatus, *, version_id: int | None = None,
           error: str | None = None, detail: dict[str, Any] | None = None,
           seconds: float | None = None) -> None:
    item.status = status
    item.model_version_id = version_id
    item.error = error[:2000] if error else None
    item.detail = detail
    item.seconds = seconds
    item.attempts += 1
    report.counts[status.value] += 1
    report.image_ids.append(item.subject_id)


def load_images(session: Session, store: MediaStore, image_ids: Sequence[int], *,
                max_side: int | None = None) -> dict[int, PILImage.Image | str]:
    """RGB images by id, or the reason one could not be read. With ``max_side``, each is
    downscaled so that its longest side is at most that (aspect kept; JPEGs decoded at a reduced
    scale), so what a model is handed is bounded whatever the stored size."""
    rows = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(image_ids)))}
    out: dict[int, PILImage.Image | str] = {}
    for image_id in image_ids:
        row = rows.get(image_id)
        if row is None:
            out[image_id] = "image row is gone"
            continue
        try:
            with PILImage.open(io.BytesIO(store.open_bytes(row.storage_key))) as handle:
                out[image_id] = _rgb(handle, max_side)
        except (OSError, ValueError) as exc:
            out[image_id] = f"cannot read stored image {row.storage_key}: {exc}"
    return out


def _rgb(handle: PILImage.Image, max_side: int | None) -> PILImage.Image:
    if max_side is None or max(handle.size) <= max_side:
        return handle.convert("RGB")
    handle.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still ≥ max_side
    image = handle.convert("RGB")
    image.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def image_sizes(session: Session, image_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """The stored (height, width) of each image: the size its masks are stored at."""
    rows = session.execute(select(Image.id, Image.height, Image.width).where(Image.id.in_(image_ids)))
    return {image_id: (height, width) for image_id, height, width in rows}


def with_work(report: StageReport, items: Sequence[StageItem], work: dict[int, list[T]],
              images: dict[int, PILImage.Image | str], version_id: int, nothing: str,
              ) -> Iterator[tuple[StageItem, list[T], PILImage.Image]]:
    """The (row, its work, its image) of each claimed image that has work and a readable image;
    the others are recorded here: skipped with ``nothing`` as the reason, or failed."""
    for item in items:
        own = work.get(item.subject_id, [])
        if not own:
            record(report, item, StageStatus.SKIPPED, version_id=version_id, detail={"reason": nothing})
            continue
        image = images.get(item.subject_id, "image not loaded")
        if isinstance(image, str):
            record(report, item, StageStatus.FAILED, version_id=version_id, error=image)
            continue
        yield item, own, image


def call_split(fn: Callable[[list[T]], Sequence[R]], items: list[T]) -> list[R | Exception]:
    """Run ``fn`` on all items; when it raises (out of memory, a bad input), split the batch in
    halves and retry each, down to single items. Returns one result or exception per item."""
    if not items:
        return []
    try:
        results: list[R | Exception] = list(fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"model returned {len(results)} results for {len(items)} inputs")
        return results
    except Exception as exc:  # noqa: BLE001 - model errors become per-item failures
        if len(items) == 1:
            log.warning("model call failed on a single item: %s", exc)
            return [exc]
        _free_accelerator_memory()
        mid = len(items) // 2
        return call_split(fn, items[:mid]) + call_split(fn, items[mid:])


def _free_accelerator_memory() -> None:
    """After an out-of-memory error, give cached blocks back before retrying smaller batches."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():  # pragma: no cover - GPU only
        torch.cuda.empty_cache()


def describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


class Timer:
    def __init__(self, report: StageReport, key: str) -> None:
        self.report, self.key = report, key

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start
        self.report.seconds[self.key] += self.elapsed
