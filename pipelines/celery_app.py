"""The Celery app. ``celery -A pipelines.celery_app`` and ``dataengine worker`` both use it.

Queues: ``io`` (network-bound: URL downloads), ``cpu`` (decode, hash, parse), ``gpu`` (models).
Tasks are acknowledged late and rejected back to the queue when a worker process dies, so every
task must be idempotent (they are: each works on ids and skips what is already done). What a broker
loses anyway (a Redis restart, a worker killed with messages reserved) is sent again by the healer
(pipelines/healing.py, the beat task ``heal``); docs/architecture.md gives the broker settings.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

from engine.db.session import dispose_engines
from engine.settings import Settings

QUEUES = ("io", "cpu", "gpu")


def create_celery(settings: Settings) -> Celery:
    app = Celery("dataengine", broker=settings.broker_url or "memory://", include=["pipelines.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="cpu",
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarting broker is waited for, never given up on
        # Redis: a message its worker never acknowledged (the worker died) is delivered again after
        # this. A batch still running when its copy arrives holds its rows' locks: the copy skips them.
        broker_transport_options={"visibility_timeout": settings.pipeline.visibility_timeout_s},
        timezone="UTC",
        beat_schedule={
            "expire-leases": {"task": "dataengine.queue.expire_leases", "schedule": 60.0,
                              "options": {"queue": "cpu", "expires": 55}},
            "heal": {"task": "dataengine.pipeline.heal", "schedule": settings.pipeline.heal_interval_s,
                     "options": {"queue": "cpu", "expires": max(1.0, settings.pipeline.heal_interval_s * 0.9)}},
        },
    )
    return app


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    dispose_engines()


app = create_celery(Settings())
