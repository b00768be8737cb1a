"""The web app's composition root: the app (web/app.py) with the real job runner and model cache
from pipelines/ wired in. The only place the served app meets pipelines/ (web/ never imports it):
``dataengine serve`` and ``uvicorn dataengine.serve:create_app --factory`` serve this
(``dataengine.serve:serve_app`` also sets up logging: what each process of ``serve --workers N`` runs)."""

from __future__ import annotations

from fastapi import FastAPI

from engine.logs import configure_logging
from engine.ports import ExemplarRunner, JobRunner, ModelProvider, TrackRunner
from engine.settings import Settings
from pipelines.exemplars import PipelineExemplars
from pipelines.jobs import PipelineJobs
from pipelines.models import ModelCache
from pipelines.tracking import PipelineTracking
from pipelines.warmup import warm_up
from web import app as web_app


def ports(settings: Settings) -> tuple[JobRunner, ModelProvider, TrackRunner, ExemplarRunner]:
    """The real ports on ``settings``: jobs run by pipelines/, the click-to-segment model from the
    process's model cache, the video page's tracker requests and the correction page's exemplar requests run
    on the gpu queue (embedded: a thread).
    Declared as the entry point ``dataengine.web: ports`` (pyproject.toml), so
    ``web.app.create_app`` finds them when it is called without them."""
    return PipelineJobs(settings), ModelCache(settings), PipelineTracking(settings), PipelineExemplars(settings)


def warm_up_targets(settings: Settings, models: ModelCache, tracking: PipelineTracking,
                    exemplar_runner: PipelineExemplars) -> list[tuple[str, ModelCache]]:
    """What a server warms up (``observability.warm_up``): the click segmenter it runs itself and, embedded,
    the models of its in-process page runners (with a broker the gpu workers hold those)."""
    served: dict[str, ModelCache] = {"segmenter": models}
    for role, runner in (("exemplar_proposer", exemplar_runner), ("video_tracker", tracking)):
        if runner.local_models is not None:
            served[role] = runner.local_models
    return [(role, served[role]) for role in settings.observability.roles(tuple(served))]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app on ``settings`` (default: read from the environment) with jobs run by pipelines/ and
    the click-to-segment model from the process's model cache; when the server starts (the app's
    lifespan) the models ``observability.warm_up`` names load in a background thread."""
    settings = settings or Settings()
    models, tracking, exemplar_runner = ModelCache(settings), PipelineTracking(settings), PipelineExemplars(settings)
    targets = warm_up_targets(settings, models, tracking, exemplar_runner)
    return web_app.create_app(settings, jobs=PipelineJobs(settings), models=models, tracking=tracking,
                              exemplar_runner=exemplar_runner, startup=[lambda: warm_up(targets)])


def serve_app() -> FastAPI:
    """:func:`create_app` in a server process of its own (``serve --workers N``): logging set up first."""
    settings = Settings()
    configure_logging(settings.observability.log_format, settings.log_level)
    return create_app(settings)
