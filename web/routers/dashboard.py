"""The dashboard's figures (admins, ML engineers): queue depth, throughput, speed, annotator
quality, AI–human agreement per verifier version. Definitions: engine/services/dashboard.py."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from engine.services import dashboard as dashboard_service
from engine.services import quality as quality_service
from web.deps import DashboardViewer, SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/dashboard", tags=["dashboard"])


@router.get("")
def get_dashboard(_: DashboardViewer, session: SessionDep, settings: SettingsDep,
                  hours: int = Query(24, ge=1, le=dashboard_service.MAX_HOURS,
                                     description="throughput window: the last N hours")) -> dict[str, Any]:
    """{generated_at, hours, queue: [{kind, open, leased, oldest_open_at}], throughput: [{hour, verdicts}],
    timings: [{kind, median_s, n}], annotators: [{user_id, username, role, verdicts, active_s,
    last_verdict_at, gold_answered, gold_correct, gold_accuracy, multi_reviewed, agreed, agreement}],
    verifiers: [{model_version_id, verifier, model_kind, task_kind, scope, n, agreed, agreement,
    ai_accepts, human_accepts, both_accept, precision, recall}]}"""
    return dataclasses.asdict(dashboard_service.dashboard(session, hours=hours, balancing=settings.balancing))


class QualityCache:
    """The quality report per ``hours``, kept ``ttl_s`` seconds (its ``generated_at`` says when it was
    computed), computed by one request at a time: the others wait at most ``wait_s`` for it, then get
    503 with Retry-After. So however slow the report, one worker computes it and no request holds
    one longer than the report takes once (the masks reaching pycocotools are validated first:
    engine/domain/masks.py, so the computation itself ends)."""

    def __init__(self, ttl_s: float = 30.0, wait_s: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.wait_s, self.clock = ttl_s, wait_s, clock
        self._entries: dict[int, tuple[float, dict[str, Any]]] = {}
        self._computing = threading.Lock()

    def _fresh(self, hours: int) -> dict[str, Any] | None:
        entry = self._entries.get(hours)
        return entry[1] if entry is not None and self.clock() - entry[0] < self.ttl_s else None

    def get(self, hours: int, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        value = self._fresh(hours)
        if value is not None:
            return value
        if not self._computing.acquire(timeout=self.wait_s):
            raise HTTPException(503, "the quality report is being computed; retry shortly",
                                headers={"Retry-After": str(int(self.ttl_s))})
        try:
            value = self._fresh(hours)  # computed while this request waited
            if value is None:
                value = compute()
                self._entries[hours] = (self.clock(), value)
            return value
        finally:
            self._computing.release()


_cache_lock = threading.Lock()


def _quality_cache(request: Request) -> QualityCache:
    with _cache_lock:  # one per app (and so per database)
        cache = getattr(request.app.state, "quality_cache", None)
        if cache is None:
            cache = request.app.state.quality_cache = QualityCache()
        return cache


@router.get("/quality")
def get_quality(_: DashboardViewer, session: SessionDep, request: Request,
                hours: int = Query(24, ge=1, le=dashboard_service.MAX_HOURS,
                                   description="human throughput window: the last N hours")) -> dict[str, Any]:
    """Quality per model version (definitions: engine/services/quality.py): {generated_at,
    proposers: [{model_version_id, model, kind, promoted, pairs, positive_pairs, cg_f1, pm_f1, il_mcc,
    il_counts}], verifiers: [AI–human agreement rows as in GET /dashboard], acceptance:
    [{model_version_id, model, kind, promoted, outputs, decided, accepted, acceptance, routes}],
    stages: [{stage, model_version_id, model, images, seconds, images_per_s}], human_per_hour: [{hour, verdicts}]}
    Kept 30 s per ``hours`` and computed by one request at a time (:class:`QualityCache`); a stored
    mask whose RLE is malformed counts nowhere (``dataengine check`` reports it as M2)."""
    return _quality_cache(request).get(
        hours, lambda: dataclasses.asdict(quality_service.quality_report(session, hours=hours)))
