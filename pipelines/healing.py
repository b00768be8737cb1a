"""Runs the healer (engine/services/heal.py) and sends what it found: the beat task
``dataengine.pipeline.heal`` every ``pipeline.heal_interval_s``, ``dataengine mine``'s follow loop
as often, and ``dataengine heal`` once."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from engine.ports import TaskQueue
from engine.services import heal as heal_service
from engine.settings import Settings
from pipelines.celery_app import QUEUES
from pipelines.context import TaskContext
from pipelines.dispatch import CeleryQueue
from pipelines.execution import hand_off
from pipelines.stages import STAGE_NAMES, queue_of

log = logging.getLogger(__name__)


def media_has_room(settings: Settings) -> bool:
    """The media store has ``pipeline.min_free_bytes`` free (a folder that cannot be measured counts as
    having room: the retried item fails again with its reason)."""
    path = Path(settings.media_path).absolute()
    while not path.exists() and path != path.parent:  # not made yet: the disk it will be made on
        path = path.parent
    try:
        return shutil.disk_usage(path).free >= settings.pipeline.min_free_bytes
    except OSError:
        return True


def busy_queues(queue: TaskQueue) -> frozenset[str]:
    """Broker queues holding waiting messages (none known for the in-process queue)."""
    if not isinstance(queue, CeleryQueue):
        return frozenset()
    return frozenset(name for name in QUEUES if (queue.depth(name) or 0) > 0)


def heal_once(ctx: TaskContext, queue: TaskQueue, *, job_id: int | None = None) -> heal_service.HealReport:
    """One healing pass: find lost work (committed), then send it again."""
    settings = ctx.settings
    busy = busy_queues(queue)
    room = media_has_room(settings)
    with ctx.session() as session:
        report = heal_service.heal(
            session, STAGE_NAMES, lambda job, stage: queue_of(job, stage, settings),
            stale_after_s=settings.pipeline.stale_after_s, busy_queues=busy, retry_transient=room,
            job_id=job_id)
    for resend in report.resend:
        log.warning("healer: sending %d %s item(s) of job %s again (pending, not worked on for %.0f s or "
                    "failed for a transient reason)", len(resend.ids), resend.stage, resend.job_id,
                    settings.pipeline.stale_after_s)
        hand_off(ctx, queue, resend.stage, resend.job_id, resend.ids, queue_name=resend.queue)
    return report


def periodic(ctx: TaskContext, queue: TaskQueue, job_id: int | None = None,
             clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """A function for a follow loop: heals (this job) at most once per ``pipeline.heal_interval_s``;
    a healing pass that fails (the database or the broker is restarting) is logged and tried next time."""
    last = clock()

    def tick() -> None:
        nonlocal last
        if clock() - last < ctx.settings.pipeline.heal_interval_s:
            return
        last = clock()
        try:
            heal_once(ctx, queue, job_id=job_id)
        except Exception as exc:  # noqa: BLE001 - the follow loop must go on
            log.warning("healer pass failed (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                        ctx.settings.pipeline.heal_interval_s)

    return tick
