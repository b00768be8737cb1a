"""Job running for the web API (the :class:`engine.ports.JobRunner` port): list a job's source
(``plan_mine``: validation, job row, one pending row per item, committed), so the caller has the job
id and clear errors at once; then run it without the caller waiting:

- with a broker (``broker_url``): its batches are enqueued on Celery (``run_planned(wait=False)``)
  and workers do the work;
- embedded (no broker): in a background thread of this process (:class:`LocalRunner`). One thread
  per process runs one job at a time, in the order they were started (a job started while another
  runs waits its turn: its runner state is ``queued``). The thread is a daemon: when the server
  stops, the job's unfinished items stay pending and starting the same source again (or a retry)
  resumes it. With several server processes each runs its own jobs.
"""

from __future__ import annotations

import logging
import queue as queue_lib
import threading

from sqlalchemy.exc import SQLAlchemyError

from engine.db.base import utcnow
from engine.ports import JobNotEnqueued, JobRefused, JobRequest, RunnerState
from engine.services.common import describe
from engine.services.mine import JobConflict, JobPlan
from engine.settings import Settings
from pipelines.runner import plan_mine, run_planned

log = logging.getLogger(__name__)
IN_PROCESS, CELERY = "in-process", "celery"
QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"


def failure_reason(exc: Exception) -> str:
    """What a person sees of a run that failed: the error's kind and first line, never a database's
    own text (SQLAlchemy's carries the statement and its parameters); the whole of it is logged."""
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); the details are in the server log"
    return describe(exc)


class LocalRunner:
    """Embedded mode: runs planned jobs in one daemon thread of this process, one at a time, in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: queue_lib.Queue[JobPlan] = queue_lib.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._states: dict[int, RunnerState] = {}

    def submit(self, plan: JobPlan) -> None:
        with self._lock:
            held = self._states.get(plan.job_id)
            if held is not None and held.state == QUEUED:
                return  # the queued run re-reads the job's pending items when it starts
            self._states[plan.job_id] = RunnerState(QUEUED, None, utcnow())
            self._jobs.put(plan)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="dataengine-jobs", daemon=True)
                self._thread.start()

    def state(self, job_id: int) -> RunnerState | None:
        with self._lock:
            return self._states.get(job_id)

    def _set(self, job_id: int, state: str, error: str | None = None) -> None:
        with self._lock:
            self._states[job_id] = RunnerState(state, error, utcnow())

    def _loop(self) -> None:
        while True:
            try:
                plan = self._jobs.get(timeout=2.0)
            except queue_lib.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            self._set(plan.job_id, RUNNING)
            try:
                run_planned(self.settings, plan, wait=False)
            except Exception as exc:  # noqa: BLE001 - report it on the job, keep the thread
                log.exception("mining job %s failed", plan.job_id)
                self._set(plan.job_id, FAILED, failure_reason(exc))
            else:
                self._set(plan.job_id, FINISHED)


class PipelineJobs:
    """The :class:`engine.ports.JobRunner` of a server process: Celery with a broker, else a
    :class:`LocalRunner` thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = LocalRunner(settings)  # its thread starts with the first job it is given

    @property
    def mode(self) -> str:
        return IN_PROCESS if self.settings.embedded else CELERY

    def start(self, request: JobRequest) -> JobPlan:
        try:
            plan = plan_mine(self.settings, request.source, job_name=request.name, kind=request.kind,
                             options={"images_dir": request.images_dir,
                                      "prioritise_failures": request.prioritise_failures or None},
                             retry_failed=request.retry_failed,
                             until=request.until, model_profile=request.model_profile)
        except JobConflict:
            raise
        except ValueError as exc:  # an unknown stage, a source the plan cannot use
            raise JobRefused(str(exc)) from None
        if self.settings.embedded:
            self._local.submit(plan)
            return plan
        try:
            run_planned(self.settings, plan, wait=False)
        except Exception as exc:  # noqa: BLE001 - the broker is unreachable or refused
            log.exception("could not enqueue job %s", plan.job_id)
            raise JobNotEnqueued(f"job {plan.job_id} is listed but could not be enqueued "
                                 f"({type(exc).__name__}: {exc}); try again") from None
        return plan

    def state(self, job_id: int) -> RunnerState | None:
        return self._local.state(job_id) if self.settings.embedded else None
