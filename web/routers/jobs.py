"""Mining jobs for operators (admins, ML engineers): list, progress per stage (what `dataengine
status` shows), failed items with their reasons, start a job, retry its failures.

Starting a job (POST /jobs) checks its source against the allowed roots (engine/sources/roots.py:
``sources.allowed_roots``, default ``<data_dir>/sources``; refused with 422 before anything about a
path outside is revealed) and hands it to the app's job runner (the :class:`engine.ports.JobRunner`
port, wired in by the composition root dataengine/serve.py), which lists it — so the answer carries
the job id and clear errors — and runs it without the request waiting. Retrying an existing job
re-reads the source it was created with (jobs made with the CLI may lie elsewhere)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from engine.db.models import MiningJob
from engine.domain.stages import STAGE_NAMES, planned_stages
from engine.domain.vocabulary import SourceKind
from engine.ports import JobRequest, JobRunner
from engine.services import job_views
from engine.services import status as status_service
from engine.services.mine import JobPlan
from engine.settings import ModelProfile
from engine.sources.roots import allowed_source
from web.deps import JobReader, JobsDep, JobWriter, MaybeJobsDep, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import MAX_INT32, Id

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/jobs", tags=["jobs"])

MAX_PAGE = 500
MINE = STAGE_NAMES[0]


# ----------------------------------------------------------------------------------- models
class JobIn(BaseModel):
    source: str = Field(min_length=1, max_length=4096,
                        description="a path on the server under an allowed root: folder, URL list, "
                                    "tar shard(s) (also {000..009} or a glob), COCO .json")
    kind: SourceKind | None = Field(None, description="default: detected")
    name: str | None = Field(None, min_length=1, max_length=255, description="default: derived from the source")
    until: str | None = Field(None, description=f"the last stage to run: {', '.join(STAGE_NAMES)}")
    images_dir: str | None = Field(None, max_length=4096, description="COCO: where the images are")
    model_profile: ModelProfile | None = Field(
        None, description="models the job's stages use: tiny (random weights) or sam3; default: the server's")
    prioritise_failures: bool = Field(
        False, description="embed the pool while mining, then run the model stages on the images most like "
                           "recent model failures first (image jobs)")

    @field_validator("until")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGE_NAMES:
            raise ValueError(f"unknown stage; stages: {', '.join(STAGE_NAMES)}")
        return value

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip()
            if not value or not value.isprintable():
                raise ValueError("the name must be printable text")
        return value


class Started(BaseModel):
    job_id: int
    name: str
    source_kind: str
    items: int
    new_items: int
    retried: int
    pending: int
    mode: str = Field(description="in-process (a thread of the server) or celery (workers)")


def _started(plan: JobPlan, jobs: JobRunner) -> JSONResponse:
    return JSONResponse(Started(job_id=plan.job_id, name=plan.name, source_kind=plan.source_kind, items=plan.items,
                                new_items=plan.new_items, retried=plan.retried, pending=len(plan.pending),
                                mode=jobs.mode).model_dump(), status_code=202)


def _runner_state(jobs: JobRunner | None, job_id: int) -> dict[str, Any] | None:
    state = jobs.state(job_id) if jobs is not None else None
    return dataclasses.asdict(state) if state is not None else None


# --------------------------------------------------------------------------------- reading
def _job(session: Session, job_id: int) -> MiningJob:
    job = session.get(MiningJob, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get("")
def list_jobs(_: JobReader, session: SessionDep, settings: SettingsDep, jobs_runner: MaybeJobsDep,
              limit: int = Query(100, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_INT32)) -> dict[str, Any]:
    """{total, mode, jobs: [{id, name, source_kind, source_uri, status, until, item_count,
    counts: {pending, done, duplicate, near_duplicate, failed}, stage_failed, stage_pending,
    created_at, started_at, finished_at, runner}]}, newest first."""
    total, rows = job_views.list_jobs(session, limit=limit, offset=offset)
    return {
        "total": total, "mode": "in-process" if settings.embedded else "celery",
        "jobs": [{
            "id": j.id, "name": j.name, "source_kind": j.source_kind, "source_uri": j.source_uri,
            "status": j.status.value, "until": (j.options or {}).get("until"), "item_count": j.item_count,
            "counts": row.counts, "stage_failed": row.stage_failed, "stage_pending": row.stage_pending,
            "created_at": j.created_at, "started_at": j.started_at, "finished_at": j.finished_at,
            "runner": _runner_state(jobs_runner, j.id),
        } for row in rows for j in (row.job,)],
    }


@router.get("/{job_id}")
def get_job(job_id: Id, _: JobReader, session: SessionDep, settings: SettingsDep,
            jobs_runner: MaybeJobsDep) -> dict[str, Any]:
    """What `dataengine status JOB --json` shows — {id, name, source_kind, source_uri, status,
    created_at, started_at, finished_at, stages: [{stage, counts, total, items_per_s,
    recent_items_per_s}], failures: [{reason, count, example_key}]} — plus until, model_profile,
    prioritise_failures, planned_stages, item_count and runner (embedded mode: this process's thread's
    state)."""
    job = _job(session, job_id)
    report = status_service.job_report(session, job, order=STAGE_NAMES)
    return {**dataclasses.asdict(report), "until": (job.options or {}).get("until"),
            "model_profile": (job.options or {}).get("model_profile") or settings.model_profile,
            "prioritise_failures": bool((job.options or {}).get("prioritise_failures")),
            "planned_stages": planned_stages((job.options or {}).get("until")), "item_count": job.item_count,
            "runner": _runner_state(jobs_runner, job.id)}


@router.get("/{job_id}/failures")
def job_failures(job_id: Id, _: JobReader, session: SessionDep,
                 stage: str | None = Query(None, description=f"one of {', '.join(STAGE_NAMES)}; default all"),
                 limit: int = Query(50, ge=1, le=MAX_PAGE),
                 offset: int = Query(0, ge=0, le=MAX_INT32)) -> dict[str, Any]:
    """{total, limit, offset, items: [{stage, key, image_id, error, attempts, at}]}: failed items
    in stage order, then in the order they were listed. ``key``: the source item (for model
    stages, the first item of the job that gave the image)."""
    _job(session, job_id)
    if stage is not None and stage not in STAGE_NAMES:
        raise HTTPException(422, f"unknown stage; stages: {', '.join(STAGE_NAMES)}")
    total, items = job_views.failed_items(session, job_id, stage, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": [dataclasses.asdict(i) for i in items]}


# --------------------------------------------------------------------------------- writing
@router.post("", status_code=202, response_model=Started)
def start_job(body: JobIn, _: JobWriter, session: SessionDep, settings: SettingsDep, jobs: JobsDep) -> JSONResponse:
    """List the source into a job (created, or reopened when the name exists for the same source)
    and start it; 202 with the job id at once. Follow it with GET /jobs/{job_id}. 422: the source is
    outside ``sources.allowed_roots`` (or missing, or unusable)."""
    session.commit()  # end the request's transaction (SQLite: it may hold the write lock) before planning
    found = allowed_source(settings, body.source, body.kind, body.images_dir)
    plan = jobs.start(JobRequest(source=found.source, kind=found.kind, name=body.name, images_dir=found.images_dir,
                                 until=body.until, model_profile=body.model_profile,
                                 prioritise_failures=body.prioritise_failures))
    return _started(plan, jobs)


@router.post("/{job_id}/retry", status_code=202, response_model=Started)
def retry_job(job_id: Id, _: JobWriter, session: SessionDep, jobs: JobsDep) -> JSONResponse:
    """Put the job's failed items (mining and model stages) back to pending and run it again."""
    job = _job(session, job_id)
    request = JobRequest(source=job.source_uri, kind=job.source_kind, name=job.name,
                         images_dir=(job.options or {}).get("images_dir"), retry_failed=True)
    session.commit()  # end the request's transaction before the plan writes in its own
    return _started(jobs.start(request), jobs)
