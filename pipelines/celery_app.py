"""The Celery app. ``celery -A pipelines.celery_app`` and ``dataengine worker`` both use it.

Queues: ``io`` (network-bound: URL downloads), ``cpu`` (decode, hash, parse), ``gpu`` (models).
Tasks are acknowledged late and rejected back to the queue when a worker process dies, so every
task must be idempotent (they are: each works on ids and skips what is already done). What a broker
loses anyway (a Redis restart, a worker killed with messages reserved) is sent again by the healer
(pipelines/healing.py, the beat task ``heal``); docs/architecture.md gives the broker settings.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init, worker_ready
from kombu import Queue

from engine.db.session import dispose_engines
from engine.logs import bind, configure_logging, unbind
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
    """A forked pool process must not reuse the parent's database connections; it warms up its models."""
    dispose_engines()
    _warm_up()


@worker_ready.connect
def _warm_up_in_process(sender: object = None, **_kwargs: object) -> None:
    """A solo or threads pool runs tasks in this process: warm up here (a prefork pool's children do)."""
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        _warm_up()


def _warm_up() -> None:
    """A worker consuming the gpu queue loads the page runners' models in the background
    (``observability.warm_up``), so a person's first exemplar box or tracker click does not wait for them."""
    if "gpu" not in (app.amqp.queues.consume_from or {}):
        return
    from pipelines.context import worker_context
    from pipelines.warmup import WORKER_ROLES, warm_up

    ctx = worker_context()
    warm_up([(role, ctx.models) for role in ctx.settings.observability.roles(WORKER_ROLES)])


@setup_logging.connect
def _logging(loglevel: str | int | None = None, **_kwargs: object) -> None:
    """Celery's processes log through engine/logs.py (text or JSON lines) instead of Celery's own setup."""
    settings = Settings()
    configure_logging(settings.observability.log_format, loglevel or settings.log_level)


_task_context: dict[str, dict[str, object]] = {}


@task_prerun.connect
def _bind_task(task_id: str | None = None, **_kwargs: object) -> None:
    """Records logged while a task runs carry its id (and, for a stage batch, the job and stage:
    pipelines/execution.py)."""
    if task_id:
        _task_context[task_id] = bind(task_id=task_id)  # type: ignore[assignment]


@task_postrun.connect
def _unbind_task(task_id: str | None = None, **_kwargs: object) -> None:
    tokens = _task_context.pop(task_id or "", None)
    if tokens is not None:
        unbind(tokens)  # type: ignore[arg-type]


app = create_celery(Settings())
