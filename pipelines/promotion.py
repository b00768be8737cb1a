"""Promote a model version and send the backlog it re-scores through the verify and route stages."""

from __future__ import annotations

from engine.ports import TaskQueue
from engine.repositories import work
from engine.services.promote import Promotion, promote
from engine.settings import Settings
from pipelines.context import TaskContext
from pipelines.dispatch import CeleryQueue, InProcessQueue
from pipelines.execution import hand_off


def promote_version(settings: Settings, version_id: int, *, rescore: bool = True,
                    queue: TaskQueue | None = None) -> Promotion:
    """Commit the promotion, then enqueue its backlog into the verify stage (in this process when
    embedded, else to the workers): verify judges with the promoted version, route re-routes."""
    ctx = TaskContext.from_settings(settings)
    with ctx.session() as session:
        promotion = promote(session, version_id, rescore=rescore)
    if promotion.backlog:
        if queue is None:
            queue = InProcessQueue(ctx) if settings.embedded else CeleryQueue.for_settings(settings)
        with ctx.session() as session:
            for job_id, ids in promotion.backlog.items():
                work.mark_dispatched(session, "verify", job_id, ids)
        for job_id, ids in promotion.backlog.items():  # a broker that refuses: the healer sends it later
            hand_off(ctx, queue, "verify", job_id, ids)
    return promotion
