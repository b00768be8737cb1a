"""The stage order, in one place: which service runs each stage, on which queue, in what batches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from annotators.registry import model_refs
from engine.db.models import MiningJob
from engine.domain.vocabulary import MediaKind
from engine.services import caption, failures, mine, negatives, parse, propose, route, verify
from engine.services.common import StageReport, Timer
from engine.services.mine_items import job_media
from engine.services.video_stages import caption as video_caption
from engine.services.video_stages import negatives as video_negatives
from engine.services.video_stages import parse as video_parse
from engine.services.video_stages import propose as video_propose
from engine.services.video_stages import verify as video_verify
from engine.settings import Settings
from engine.sources.coco import CocoSource
from engine.sources.folder import FolderSource
from engine.sources.urls import UrlListSource
from engine.sources.webdataset import WebDatasetSource
from pipelines.context import TaskContext
from pipelines.models import ModelCache

log = logging.getLogger(__name__)
TRANSIENT_DB = (sa_exc.OperationalError, sa_exc.InterfaceError)

#: a stage's service on one batch: (context, session, job id, the batch's ids) → what it did
Service = Callable[[TaskContext, Session, int, list[int]], StageReport]


@dataclass(frozen=True)
class Stage:
    name: str
    task: str  # the Celery task name
    queue: str | None  # None: per job (io for URL sources, cpu for local files)
    service: Service

    def batch_size(self, ctx: TaskContext) -> int:
        return int(getattr(ctx.settings.batch_sizes, self.name))


def _mine(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    report = mine.mine_batch(s, ctx.settings, ctx.store, job_id, ids)
    if report.image_ids and failures.is_prioritised(s.get(MiningJob, job_id)):
        _embed_pool(ctx, s, job_id, report)
    return report


def _embed_pool(ctx: TaskContext, s: Session, job_id: int, report: StageReport) -> None:
    """A prioritised job's mined images (and the recent failure images) embedded for its ranking. The
    embedder failing leaves the images unembedded — ranked after the embedded ones — not failed."""
    try:
        with Timer(report, "embed"):
            failures.embed_for_ranking(
                s, ctx.store, job_models(ctx, s, job_id).image_embedder(), job_id, report.image_ids,
                ctx.settings.failure_mining, data_dir=ctx.settings.data_dir,
                max_side=ctx.settings.similarity.max_side)
    except TRANSIENT_DB:
        raise
    except Exception as exc:  # noqa: BLE001 - the items are mined; only their place in the order suffers
        log.warning("job %s: embedding %d mined image(s) for failure ranking failed (%s: %s); they are ranked "
                    "after the embedded ones", job_id, len(report.image_ids), type(exc).__name__, exc)


def job_models(ctx: TaskContext, s: Session, job_id: int) -> ModelCache:
    """The models of the job's profile (``mine --profile``; default: the settings' profile)."""
    job = s.get(MiningJob, job_id)
    return ctx.models_for((job.options or {}).get("model_profile") if job is not None else None)


def is_video(s: Session, job_id: int) -> bool:
    """A video job: its stages' subjects are videos, each stage runs its video service."""
    job = s.get(MiningJob, job_id)
    return job_media(job.options if job is not None else None) is MediaKind.VIDEO


def _caption(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    captioner, max_side = job_models(ctx, s, job_id).captioner(), ctx.settings.models.max_side
    if is_video(s, job_id):
        return video_caption.caption_video_batch(s, ctx.store, captioner, job_id, ids,
                                                 keyframes=ctx.settings.video.keyframes, max_side=max_side)
    return caption.caption_batch(s, ctx.store, captioner, job_id, ids, max_side=max_side)


def _parse(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    if is_video(s, job_id):
        return video_parse.parse_video_batch(s, job_models(ctx, s, job_id).parser(), job_id, ids)
    return parse.parse_batch(s, job_models(ctx, s, job_id).parser(), job_id, ids)


def _propose(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    m, models = ctx.settings.models, job_models(ctx, s, job_id)
    if is_video(s, job_id):
        return video_propose.propose_video_batch(s, ctx.store, models.masklet_proposer(), ctx.settings.video,
                                                 job_id, ids, max_side=m.max_side, balancing=ctx.settings.balancing)
    proposer = models.proposer()
    pools = ctx.settings.similarity.pools_from_propose(proposer.stamp.uri, model_refs(ctx.settings)["proposer"])
    return propose.propose_batch(s, ctx.store, proposer, m.propose, job_id, ids, max_side=m.max_side,
                                 balancing=ctx.settings.balancing, embed_to=ctx.settings.data_dir if pools else None)


def _negatives(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    m, models = ctx.settings.models, job_models(ctx, s, job_id)
    if is_video(s, job_id):
        return video_negatives.negatives_video_batch(s, ctx.store, models.masklet_proposer(), models.embedder(),
                                                     models.suggester(), m.negatives, ctx.settings.video, job_id,
                                                     ids, max_side=m.max_side)
    return negatives.negatives_batch(s, ctx.store, models.proposer(), models.embedder(),
                                     models.suggester(), m.negatives, m.propose, job_id, ids, max_side=m.max_side)


def _verify(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    m, models = ctx.settings.models, job_models(ctx, s, job_id)
    if is_video(s, job_id):
        return video_verify.verify_video_batch(s, ctx.store, models.mask_verifier(), models.exhaustivity_verifier(),
                                               m.verify.survive_probability, ctx.settings.video, job_id, ids,
                                               max_side=m.max_side)
    return verify.verify_batch(s, ctx.store, models.mask_verifier(), models.exhaustivity_verifier(),
                               m.verify.survive_probability, job_id, ids, max_side=m.max_side)


def _route(ctx: TaskContext, s: Session, job_id: int, ids: list[int]) -> StageReport:
    media = MediaKind.VIDEO if is_video(s, job_id) else MediaKind.IMAGE
    return route.route_batch(s, ctx.settings.routing, job_id, ids, media=media)


STAGES: tuple[Stage, ...] = (
    Stage("mine", "dataengine.mine.batch", None, _mine),
    Stage("caption", "dataengine.caption.batch", "gpu", _caption),
    Stage("parse", "dataengine.parse.batch", "cpu", _parse),
    Stage("propose", "dataengine.propose.batch", "gpu", _propose),
    Stage("negatives", "dataengine.negatives.batch", "gpu", _negatives),
    Stage("verify", "dataengine.verify.batch", "gpu", _verify),
    Stage("route", "dataengine.route.batch", "cpu", _route),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
BY_NAME = {stage.name: stage for stage in STAGES}
BY_TASK = {stage.task: stage for stage in STAGES}


SOURCE_QUEUES: dict[str, str] = {
    source.kind: source.queue for source in (FolderSource, UrlListSource, WebDatasetSource, CocoSource)}


def stage_queue(stage: Stage, settings: Settings) -> str:
    """The LLM parser is a GPU model; spaCy is CPU work."""
    if stage.name == "parse" and settings.models.parse.parser == "llm":
        return "gpu"
    return stage.queue or "cpu"


def queue_for(stage: Stage, ctx: TaskContext) -> str:
    return stage_queue(stage, ctx.settings)


def queue_of(job: MiningJob, stage_name: str, settings: Settings) -> str:
    """The queue a job's stage runs on: mining follows the source (io for URL lists)."""
    if stage_name == "mine":
        return SOURCE_QUEUES.get(job.source_kind, "cpu")
    return stage_queue(BY_NAME[stage_name], settings)
