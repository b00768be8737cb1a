"""The web layer reaches job running and models only through the ports the app factory takes
(engine/ports.py; the composition root dataengine/serve.py wires the real ones), and domain errors
become the error contract's answers in one place (web/errors.py)."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

import pipelines.stages
from engine.domain.passwords import WeakPassword
from engine.domain.stages import STAGE_NAMES
from engine.ports import JobNotEnqueued, JobRefused, JobRequest, RunnerState
from engine.services.annotation import ClientIdConflict, TaskIncomplete, VerdictError
from engine.services.auth import AuthError, RateLimited
from engine.services.export import ExportError, ExportSpecError
from engine.services.gold import GoldError, GoldNotFound
from engine.services.mine import JobConflict, JobPlan
from engine.services.queue import LeaseLost, TooManyLeases
from engine.services.users import UserError, UserExists
from engine.sources.roots import SourceRefused
from web.app import create_app
from web.errors import DOMAIN_ERRORS

WEB = Path(__file__).resolve().parents[2] / "web"


def test_no_web_module_imports_pipelines():
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "pipelines" or n.startswith("pipelines.") for n in names), path


def test_the_stage_order_is_the_pipelines():
    assert STAGE_NAMES == pipelines.stages.STAGE_NAMES


class FakeJobs:
    """A JobRunner that lists nothing: it records what it was asked."""

    mode = "fake"

    def __init__(self) -> None:
        self.asked: list[JobRequest] = []

    def start(self, request: JobRequest) -> JobPlan:
        self.asked.append(request)
        return JobPlan(job_id=7, name="n", source_kind=request.kind, queue="cpu", items=2, new_items=2, retried=0,
                       pending=[1, 2])

    def state(self, job_id: int) -> RunnerState | None:
        return RunnerState("queued", None, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def signed_in(app, username: str = "mle") -> TestClient:
    from tests.web.conftest import PASSWORD

    client = TestClient(app)
    me = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD}).json()
    client.headers["X-CSRF-Token"] = me["csrf_token"]
    return client


def test_jobs_start_through_the_port_given_to_the_factory(web_settings):
    (web_settings.data_dir / "sources" / "photos").mkdir(parents=True)
    jobs = FakeJobs()
    client = signed_in(create_app(web_settings, jobs=jobs))
    started = client.post("/api/v1/jobs", json={"source": "photos", "until": "mine"})
    assert started.status_code == 202, started.text
    assert started.json()["job_id"] == 7 and started.json()["mode"] == "fake" and started.json()["pending"] == 2
    [asked] = jobs.asked
    assert asked.source == str((web_settings.data_dir / "sources" / "photos").resolve())
    assert asked.kind == "folder" and asked.until == "mine" and not asked.retry_failed
    refused = client.post("/api/v1/jobs", json={"source": "/etc"})
    assert refused.status_code == 422 and len(jobs.asked) == 1  # sandboxing happens before the port


def test_without_a_job_runner_starting_a_job_answers_503(web_settings):
    (web_settings.data_dir / "sources" / "photos").mkdir(parents=True)
    client = signed_in(create_app(web_settings, installed_ports=False))
    assert client.get("/api/v1/jobs").json()["total"] == 0
    response = client.post("/api/v1/jobs", json={"source": "photos"})
    assert response.status_code == 503 and response.json()["code"] == "unavailable"


@pytest.mark.parametrize("error,status,code", [
    (LeaseLost("x"), 409, "lease_lost"), (TooManyLeases("x"), 409, "too_many_leases"),
    (ClientIdConflict("x"), 409, "client_id_conflict"), (VerdictError("x"), 422, "invalid"),
    (JobConflict("x"), 409, "conflict"), (JobRefused("x"), 422, "invalid"), (JobNotEnqueued("x"), 503, "unavailable"),
    (SourceRefused("x"), 422, "invalid"), (ExportSpecError("x"), 422, "invalid"), (ExportError("x"), 409, "conflict"),
    (WeakPassword("x"), 422, "invalid"), (UserExists("user 'a' exists"), 409, "conflict"),
    (UserError("no user 'a'"), 422, "invalid"), (TaskIncomplete("x"), 409, "conflict"),
    (UserError("a username is ..."), 422, "invalid"), (AuthError("x"), 401, "unauthorized"),
    (RateLimited(30), 429, "rate_limited"), (GoldError("x"), 422, "invalid"), (GoldNotFound("x"), 404, "not_found"),
])
def test_domain_errors_become_the_contracts_answers(web_settings, error, status, code):
    app = create_app(web_settings)
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise error

    app.include_router(router)
    response = TestClient(app).get("/boom")
    assert response.status_code == status and response.headers["x-error-code"] == code
    body = response.json()
    assert body["detail"] == str(error) and body["code"] == code
    assert ("errors" in body) == (status == 422)
    if isinstance(error, RateLimited):
        assert response.headers["retry-after"] == "30"


def test_every_mapped_error_is_a_status_of_the_contract():
    assert all(400 <= status < 600 for status, _ in DOMAIN_ERRORS.values())


def test_the_plain_factory_runs_with_the_ports_the_distribution_declares(web_settings):
    """web.app.create_app without ports finds the composition root through the entry point
    dataengine.web:ports (web never imports pipelines/); given ports win over the installed ones."""
    from pipelines.jobs import PipelineJobs
    from pipelines.models import ModelCache

    app = create_app(web_settings)
    assert isinstance(app.state.jobs, PipelineJobs) and isinstance(app.state.models, ModelCache)
    given = FakeJobs()
    assert create_app(web_settings, jobs=given).state.jobs is given
    bare = create_app(web_settings, installed_ports=False)
    assert bare.state.jobs is None and bare.state.models is None
