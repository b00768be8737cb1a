"""Mining jobs for operators (admins, ML engineers): list, progress per stage (what `dataengine
status` shows), failed items with their reasons, start a job, retry its failures.

Starting a job (POST /jobs) lists its source in the request (``pipelines.runner.plan_mine``:
validation, job row, one pending row per item, committed), so the answer carries the job id and
clear errors; then the job runs without the request waiting:

- with a broker (``broker_url``): its batches are enqueued on Celery (``run_planned(wait=False)``)
  and workers do the work;
- embedded (no broker): in a background thread of this server process. One thread per process
  runs one job at a time, in the order they were started (a job started while another runs waits
  its turn: its runner state is ``queued``). The thread is a daemon: when the server stops, the
  job's unfinished items stay pending and POST /jobs with the same source (or /retry) resumes it.
  With several server processes each runs its own jobs.

Sources are paths on the server, so operators must not reach everything the server can read
(listing a folder or reading a file as a URL list would show its names and lines). Local sources
— the folder, URL list, tar shards, COCO file and images folder — must lie, after symlinks are
resolved, under an allowed root: ``sources.allowed_roots`` when set, else
``<data_dir>/sources``. A relative path is taken relative to the first root. A path outside the
roots is refused before anything about it (even whether it exists) is revealed. URL lists must
hold http(s) URLs only (checked before the job is created). Retrying an existing job re-reads
the source it was created with (jobs made with the CLI may lie elsewhere).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue as queue_lib
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Integer, case, func, literal, select, union_all
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import ItemStatus, JobItem, MiningJob, StageItem, StageStatus
from engine.services import status as status_service
from engine.services.common import describe
from engine.services.mine import JobConflict, JobPlan
from engine.settings import ModelProfile, Settings
from engine.sources import SOURCE_KINDS, SourceError, detect_kind
from engine.sources.webdataset import expand_shards
from pipelines.stages import STAGE_NAMES
from web.deps import JobReader, JobWriter, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import MAX_INT32, Id

log = logging.getLogger(__name__)
router = APIRouter(route_class=UnitOfWorkRoute, prefix="/jobs", tags=["jobs"])

MAX_PAGE = 500
URL_SCHEMES = ("http://", "https://")


# ----------------------------------------------------------------------------------- models
class JobIn(BaseModel):
    source: str = Field(min_length=1, max_length=4096,
                        description="a path on the server under an allowed root: folder, URL list, "
                                    "tar shard(s) (also {000..009} or a glob), COCO .json")
    kind: Literal["folder", "urls", "webdataset", "coco"] | None = Field(None, description="default: detected")
    name: str | None = Field(None, min_length=1, max_length=255, description="default: derived from the source")
    until: str | None = Field(None, description=f"the last stage to run: {', '.join(STAGE_NAMES)}")
    images_dir: str | None = Field(None, max_length=4096, description="COCO: where the images are")
    model_profile: ModelProfile | None = Field(
        None, description="models the job's stages use: tiny (random weights) or sam3; default: the server's")

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
    mode: Literal["in-process", "celery"]


# ------------------------------------------------------------------------------- the runner
class LocalRunner:
    """Embedded mode: runs planned jobs in one daemon thread of this process, one at a time, in
    order. ``states`` says, per job id, queued / running / finished / failed (with the error)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: queue_lib.Queue[JobPlan] = queue_lib.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.states: dict[int, dict[str, Any]] = {}

    def submit(self, plan: JobPlan) -> None:
        with self._lock:
            if self.states.get(plan.job_id, {}).get("state") == "queued":
                return  # the queued run re-reads the job's pending items when it starts
            self.states[plan.job_id] = {"state": "queued", "error": None, "since": utcnow()}
            self._jobs.put(plan)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="dataengine-jobs", daemon=True)
                self._thread.start()

    def state(self, job_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self.states.get(job_id)
            return dict(found) if found else None

    def _set(self, job_id: int, state: str, error: str | None = None) -> None:
        with self._lock:
            self.states[job_id] = {"state": state, "error": error, "since": utcnow()}

    def _loop(self) -> None:
        from pipelines.runner import run_planned

        while True:
            try:
                plan = self._jobs.get(timeout=2.0)
            except queue_lib.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            self._set(plan.job_id, "running")
            try:
                run_planned(self.settings, plan, wait=False)
            except Exception as exc:  # noqa: BLE001 - report it on the job, keep the thread
                log.exception("mining job %s failed", plan.job_id)
                self._set(plan.job_id, "failed", failure_reason(exc))
            else:
                self._set(plan.job_id, "finished")


_runner_lock = threading.Lock()


def _local_runner(request: Request) -> LocalRunner:
    with _runner_lock:
        runner = getattr(request.app.state, "job_runner", None)
        if runner is None:
            runner = request.app.state.job_runner = LocalRunner(request.app.state.settings)
        return runner


def failure_reason(exc: Exception) -> str:
    """What a person sees of a run that failed: the error's kind and first line, never a database's
    own text (SQLAlchemy's carries the statement and its parameters); the whole of it is logged."""
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); the details are in the server log"
    return describe(exc)


def _runner_state(request: Request, settings: Settings, job_id: int) -> dict[str, Any] | None:
    if not settings.embedded:
        return None
    runner = getattr(request.app.state, "job_runner", None)
    return runner.state(job_id) if runner is not None else None


def _start(request: Request, settings: Settings, plan: JobPlan) -> Started:
    from pipelines.runner import run_planned

    if settings.embedded:
        _local_runner(request).submit(plan)
    else:
        try:
            run_planned(settings, plan, wait=False)
        except Exception as exc:  # noqa: BLE001 - the broker is unreachable or refused
            log.exception("could not enqueue job %s", plan.job_id)
            raise HTTPException(503, f"job {plan.job_id} is listed but could not be enqueued "
                                     f"({type(exc).__name__}: {exc}); try again") from None
    return Started(job_id=plan.job_id, name=plan.name, source_kind=plan.source_kind, items=plan.items,
                   new_items=plan.new_items, retried=plan.retried, pending=len(plan.pending),
                   mode="in-process" if settings.embedded else "celery")


# --------------------------------------------------------------------------- source checks
def source_roots(settings: Settings) -> list[Path]:
    """Folders under which operators may name local sources (resolved)."""
    configured = settings.sources.allowed_roots
    roots = [Path(p) for p in configured] if configured else [settings.data_dir / "sources"]
    return [r.expanduser().resolve() for r in roots]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _local(raw: str, roots: list[Path], what: str) -> str:
    """The absolute path of ``raw`` (relative: to the first root), refused outside the roots."""
    if raw.lower().startswith(URL_SCHEMES) or "://" in raw:
        raise HTTPException(422, f"{what} must be a path on the server, not a URL (a URL list is a "
                                 ".txt/.csv file of http(s) URLs under an allowed folder)")
    if "\x00" in raw:
        raise HTTPException(422, f"{what}: invalid path")
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # ~nosuchuser: no such home directory
        raise HTTPException(422, f"{what}: invalid path (no such home directory)") from None
    if not path.is_absolute():
        path = roots[0] / path
    if not _inside(path.resolve(), roots):
        raise HTTPException(422, f"{what} must lie under an allowed source folder: "
                                 + ", ".join(str(r) for r in roots))
    return str(path)


def _check_url_list(path: str) -> None:
    """Every URL of the list is http(s); the first other one is refused with its line."""
    from engine.settings import FetchSettings
    from engine.sources.urls import UrlListSource

    try:
        source = UrlListSource(path, FetchSettings())
        try:
            for item in source.iter_items():
                url = str(item.locator.get("url", ""))
                if not url.lower().startswith(URL_SCHEMES):  # the reason, not the line's text
                    raise HTTPException(422, f"URL list line {item.meta.get('line')}: only http(s) URLs can be "
                                             "mined")
        finally:
            source.close()
    except SourceError as exc:
        raise HTTPException(422, str(exc)) from None


def validate_source(body: JobIn, settings: Settings) -> tuple[str, str, str | None]:
    """(absolute source, kind, absolute images_dir) or a 422 that says what is wrong."""
    roots = source_roots(settings)
    source = _local(body.source.strip(), roots, "source")
    images_dir = _local(body.images_dir.strip(), roots, "images_dir") if body.images_dir else None
    try:
        kind = body.kind or detect_kind(source)
    except SourceError as exc:
        raise HTTPException(422, str(exc)) from None
    if kind not in SOURCE_KINDS:
        raise HTTPException(422, f"unknown source kind {kind!r}")
    if kind == "webdataset":
        try:
            shards = expand_shards(source, settings.sources.max_shard_names)
        except SourceError as exc:
            raise HTTPException(422, str(exc)) from None
        if any(not _inside(s.resolve(), roots) for s in shards):
            raise HTTPException(422, "every shard must lie under an allowed source folder")
    elif kind == "folder" and not Path(source).is_dir():
        raise HTTPException(422, f"folder not found: {body.source}")
    elif kind in ("urls", "coco") and not Path(source).is_file():
        raise HTTPException(422, f"file not found: {body.source}")
    if kind == "urls":
        _check_url_list(source)
    if images_dir is not None and not Path(images_dir).is_dir():
        raise HTTPException(422, f"images_dir not found: {body.images_dir}")
    return source, kind, images_dir


# --------------------------------------------------------------------------------- reading
def _job(session: Session, job_id: int) -> MiningJob:
    job = session.get(MiningJob, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def _planned_stages(job: MiningJob) -> list[str]:
    until = (job.options or {}).get("until")
    if until in STAGE_NAMES:
        return list(STAGE_NAMES[: STAGE_NAMES.index(until) + 1])
    return list(STAGE_NAMES)


@router.get("")
def list_jobs(_: JobReader, session: SessionDep, settings: SettingsDep, request: Request,
              limit: int = Query(100, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_INT32)) -> dict[str, Any]:
    """{total, mode, jobs: [{id, name, source_kind, source_uri, status, until, item_count,
    counts: {pending, done, duplicate, near_duplicate, failed}, stage_failed, stage_pending,
    created_at, started_at, finished_at, runner}]}, newest first."""
    total = session.scalar(select(func.count()).select_from(MiningJob)) or 0
    jobs = list(session.scalars(select(MiningJob).order_by(MiningJob.id.desc()).limit(limit).offset(offset)))
    ids = [j.id for j in jobs]
    counts: dict[int, dict[str, int]] = {i: {s.value: 0 for s in ItemStatus} for i in ids}
    stage: dict[int, dict[str, int]] = {i: {"failed": 0, "pending": 0} for i in ids}
    if ids:
        for job_id, status, n in session.execute(
                select(JobItem.job_id, JobItem.status, func.count()).where(JobItem.job_id.in_(ids))
                .group_by(JobItem.job_id, JobItem.status)):
            counts[job_id][ItemStatus(status).value] = int(n)
        for job_id, status, n in session.execute(
                select(StageItem.job_id, StageItem.status, func.count())
                .where(StageItem.job_id.in_(ids),
                       StageItem.status.in_([StageStatus.FAILED, StageStatus.PENDING]))
                .group_by(StageItem.job_id, StageItem.status)):
            stage[job_id][StageStatus(status).value] = int(n)
    return {
        "total": total, "mode": "in-process" if settings.embedded else "celery",
        "jobs": [{
            "id": j.id, "name": j.name, "source_kind": j.source_kind, "source_uri": j.source_uri,
            "status": j.status.value, "until": (j.options or {}).get("until"), "item_count": j.item_count,
            "counts": counts[j.id], "stage_failed": stage[j.id]["failed"], "stage_pending": stage[j.id]["pending"],
            "created_at": j.created_at, "started_at": j.started_at, "finished_at": j.finished_at,
            "runner": _runner_state(request, settings, j.id),
        } for j in jobs],
    }


@router.get("/{job_id}")
def get_job(job_id: Id, _: JobReader, session: SessionDep, settings: SettingsDep,
            request: Request) -> dict[str, Any]:
    """What `dataengine status JOB --json` shows — {id, name, source_kind, source_uri, status,
    created_at, started_at, finished_at, stages: [{stage, counts, total, items_per_s,
    recent_items_per_s}], failures: [{reason, count, example_key}]} — plus until, model_profile,
    planned_stages, item_count and runner (embedded mode: this process's thread's state)."""
    job = _job(session, job_id)
    report = status_service.job_report(session, job, order=STAGE_NAMES)
    return {**dataclasses.asdict(report), "until": (job.options or {}).get("until"),
            "model_profile": (job.options or {}).get("model_profile") or settings.model_profile,
            "planned_stages": _planned_stages(job), "item_count": job.item_count,
            "runner": _runner_state(request, settings, job.id)}


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
    parts = []
    if stage in (None, "mine"):
        parts.append(select(
            literal(0, Integer).label("rank"), literal("mine").label("stage"), JobItem.key.label("key"),
            JobItem.image_id.label("image_id"), JobItem.error.label("error"), JobItem.attempts.label("attempts"),
            JobItem.processed_at.label("at"), JobItem.id.label("row_id"),
        ).where(JobItem.job_id == job_id, JobItem.status == ItemStatus.FAILED))
    if stage != "mine":
        first_key = (select(func.min(JobItem.key)).where(JobItem.job_id == job_id,
                                                         JobItem.image_id == StageItem.subject_id)
                     .scalar_subquery())
        rank = case({name: i for i, name in enumerate(STAGE_NAMES)}, value=StageItem.stage,
                    else_=len(STAGE_NAMES))
        where = [StageItem.job_id == job_id, StageItem.status == StageStatus.FAILED]
        if stage is not None:
            where.append(StageItem.stage == stage)
        parts.append(select(
            rank.label("rank"), StageItem.stage.label("stage"), first_key.label("key"),
            StageItem.subject_id.label("image_id"), StageItem.error.label("error"),
            StageItem.attempts.label("attempts"), StageItem.updated_at.label("at"), StageItem.id.label("row_id"),
        ).where(*where))
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    page = session.execute(select(rows.c.stage, rows.c.key, rows.c.image_id, rows.c.error, rows.c.attempts, rows.c.at)
                           .order_by(rows.c.rank, rows.c.row_id).limit(limit).offset(offset)).all()
    return {"total": total, "limit": limit, "offset": offset, "items": [
        {"stage": s, "key": key, "image_id": image_id, "error": error, "attempts": attempts, "at": _utc(at)}
        for s, key, image_id, error, attempts, at in page]}


def _utc(value: Any) -> Any:
    if isinstance(value, str):  # SQLite through a UNION may hand the text back
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


# --------------------------------------------------------------------------------- writing
def _plan(settings: Settings, source: str, **kwargs: Any) -> JobPlan:
    from pipelines.runner import plan_mine

    try:
        return plan_mine(settings, source, **kwargs)
    except JobConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except (SourceError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("", status_code=202, response_model=Started)
def start_job(body: JobIn, _: JobWriter, session: SessionDep, settings: SettingsDep,
              request: Request) -> JSONResponse:
    """List the source into a job (created, or reopened when the name exists for the same source)
    and start it; 202 with the job id at once. Follow it with GET /jobs/{job_id}."""
    session.commit()  # end the request's transaction (SQLite: it may hold the write lock) before planning
    source, kind, images_dir = validate_source(body, settings)
    plan = _plan(settings, source, job_name=body.name, kind=kind, options={"images_dir": images_dir},
                 until=body.until, model_profile=body.model_profile)
    return JSONResponse(_start(request, settings, plan).model_dump(), status_code=202)


@router.post("/{job_id}/retry", status_code=202, response_model=Started)
def retry_job(job_id: Id, _: JobWriter, session: SessionDep, settings: SettingsDep,
              request: Request) -> JSONResponse:
    """Put the job's failed items (mining and model stages) back to pending and run it again."""
    job = _job(session, job_id)
    name, uri, kind, options = job.name, job.source_uri, job.source_kind, dict(job.options or {})
    session.commit()  # end the request's transaction before the plan writes in its own
    plan = _plan(settings, uri, job_name=name, kind=kind, options={"images_dir": options.get("images_dir")},
                 retry_failed=True)
    return JSONResponse(_start(request, settings, plan).model_dump(), status_code=202)
