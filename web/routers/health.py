"""Liveness and readiness for load balancers and docker-compose health checks (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import text

from web.deps import SessionDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    database: str
    schema_revision: str | None


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    from alembic.runtime.migration import MigrationContext

    try:
        session.execute(text("SELECT 1"))
        revision = MigrationContext.configure(session.connection()).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        raise HTTPException(status_code=503, detail=f"database unreachable: {type(exc).__name__}") from None
    return Health(status="ok", database=session.get_bind().dialect.name, schema_revision=revision)
