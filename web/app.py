"""Application factory."""

from __future__ import annotations

from fastapi import FastAPI

from engine.settings import Settings
from web.routers import health


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Data Engine", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    app.state.settings = settings
    app.include_router(health.router, prefix="/api/v1")
    return app
