"""The web app's composition root: the app (web/app.py) with the real job runner and model cache
from pipelines/ wired in. The only place the served app meets pipelines/ (web/ never imports it):
``dataengine serve`` and ``uvicorn dataengine.serve:create_app --factory`` serve this."""

from __future__ import annotations

from fastapi import FastAPI

from engine.ports import ExemplarRunner, JobRunner, ModelProvider, TrackRunner
from engine.settings import Settings
from pipelines.exemplars import PipelineExemplars
from pipelines.jobs import PipelineJobs
from pipelines.models import ModelCache
from pipelines.tracking import PipelineTracking
from web import app as web_app


def ports(settings: Settings) -> tuple[JobRunner, ModelProvider, TrackRunner, ExemplarRunner]:
    """The real ports on ``settings``: jobs run by pipelines/, the click-to-segment model from the
    process's model cache, the video page's tracker requests and the correction page's exemplar requests run
    on the gpu queue (embedded: a thread).
    Declared as the entry point ``dataengine.web: ports`` (pyproject.toml), so
    ``web.app.create_app`` finds them when it is called without them."""
    return PipelineJobs(settings), ModelCache(settings), PipelineTracking(settings), PipelineExemplars(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app on ``settings`` (default: read from the environment) with jobs run by pipelines/ and
    the click-to-segment model from the process's model cache (loaded on first use)."""
    settings = settings or Settings()
    jobs, models, tracking, exemplar_runner = ports(settings)
    return web_app.create_app(settings, jobs=jobs, models=models, tracking=tracking, exemplar_runner=exemplar_runner)
