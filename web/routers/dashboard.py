"""The dashboard's figures (admins, ML engineers): queue depth, throughput, speed, annotator
quality, AI–human agreement per verifier version. Definitions: engine/services/dashboard.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query

from engine.services import dashboard as dashboard_service
from engine.services import quality as quality_service
from web.deps import DashboardViewer, SessionDep, UnitOfWorkRoute

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/dashboard", tags=["dashboard"])


@router.get("")
def get_dashboard(_: DashboardViewer, session: SessionDep,
                  hours: int = Query(24, ge=1, le=dashboard_service.MAX_HOURS,
                                     description="throughput window: the last N hours")) -> dict[str, Any]:
    """{generated_at, hours, queue: [{kind, open, leased, oldest_open_at}], throughput: [{hour, verdicts}],
    timings: [{kind, median_s, n}], annotators: [{user_id, username, role, verdicts, active_s,
    last_verdict_at, gold_answered, gold_correct, gold_accuracy, multi_reviewed, agreed, agreement}],
    verifiers: [{model_version_id, verifier, model_kind, task_kind, scope, n, agreed, agreement,
    ai_accepts, human_accepts, both_accept, precision, recall}]}"""
    return dataclasses.asdict(dashboard_service.dashboard(session, hours=hours))


@router.get("/quality")
def get_quality(_: DashboardViewer, session: SessionDep,
                hours: int = Query(24, ge=1, le=dashboard_service.MAX_HOURS,
                                   description="human throughput window: the last N hours")) -> dict[str, Any]:
    """Quality per model version (definitions: engine/services/quality.py): {generated_at,
    proposers: [{model_version_id, model, kind, promoted, pairs, positive_pairs, cg_f1, pm_f1, il_mcc,
    il_counts}], verifiers: [AI–human agreement rows as in GET /dashboard], acceptance:
    [{model_version_id, model, kind, promoted, outputs, decided, accepted, acceptance, routes}],
    stages: [{stage, model_version_id, model, images, seconds, images_per_s}], human_per_hour: [{hour, verdicts}]}"""
    return dataclasses.asdict(quality_service.quality_report(session, hours=hours))
