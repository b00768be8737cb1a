"""Liveness and readiness for load balancers and docker-compose health checks (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import text

from web.deps import SessionDep, UnitOfWorkRoute

router = APIRouter(route_class=UnitOfWorkRoute, tags=["health"])


class Health(BaseModel):
    status: str
    database: str
    schema_revision: str | None


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    try:
        session.execute(text("SELECT 1"))
        # what Alembic records, read directly (its MigrationContext costs milliseconds per probe)
        revision = session.execute(text("SELECT version_num FROM alembic_version")).scalars().first()
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        raise HTTPException(status_code=503, detail=f"database unreachable: {type(exc).__name__}") from None
    return Health(status="ok", database=session.get_bind().dialect.name, schema_revision=revision)
