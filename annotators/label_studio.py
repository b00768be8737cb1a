"""The Label Studio bridge: push our open tasks to a Label Studio project, pull the annotations back
as verdicts (label-studio-sdk 2.x). The database side is engine/services/labelstudio.py; the formats
(brush RLE, polygons, the labeling config) are engine/domain/labelstudio.py.

Every call to Label Studio goes through :class:`LabelStudioClient`, which turns a refused
connection, a time-out, a refused token and any other HTTP error into :class:`LabelStudioError`
with a sentence a person can act on.

Push works in batches of ``labelstudio.batch_size``: lease the batch to the bridge, import it in one
request (Label Studio imports a request whole or not at all), record the links, commit. When the
import fails the transaction rolls back (nothing leased); when the commit fails the imported tasks
are deleted from Label Studio again. Pull pages through the project's annotated tasks and stores each
annotation in its own savepoint (engine/services/labelstudio.py: store_annotation)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.pagination import SyncPager
from label_studio_sdk.types import AllRolesProjectList, RoleBasedTask

from engine.db.session import session_scope
from engine.domain import labelstudio as lsf
from engine.domain.netpolicy import PolicyRefused
from engine.domain.vocabulary import TaskKind
from engine.services import labelstudio as bridge
from engine.settings import FetchSettings, Settings
from engine.sources.base import FetchError
from engine.sources.http import check_url, fetch_policy, policy_client

log = logging.getLogger(__name__)
ANNOTATED = json.dumps({"filters": {"conjunction": "and", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "value": 0, "type": "Number"}]}})
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
WEBHOOK_HEADER = "X-DataEngine-Webhook-Secret"
POLICY_HINT = "to allow it, list its network in fetch.allow_networks and its port in fetch.allow_ports"


class LabelStudioError(RuntimeError):
    """Label Studio could not be used (unreachable, token refused, config mismatch, HTTP error)."""


# ------------------------------------------------------------------------------------- client
class LabelStudioClient:
    """The calls the bridge makes, with clear errors."""

    def __init__(self, url: str, token: str, timeout_s: float = 60.0, fetch: FetchSettings | None = None) -> None:
        """``fetch``: the outbound-fetch policy every call obeys (settings.fetch; default: public
        addresses on ports 80 and 443 only, so a Label Studio on this machine needs
        ``fetch.allow_networks`` and ``fetch.allow_ports``)."""
        try:
            self.server = bridge.normalise_server(url)
        except bridge.BridgeError as exc:
            raise LabelStudioError(str(exc)) from None
        if not token:
            raise LabelStudioError("no Label Studio API token given (--token or DATAENGINE_LABELSTUDIO__TOKEN)")
        fetch = fetch or FetchSettings()
        try:
            check_url(self.server, fetch_policy(fetch))
        except FetchError as exc:
            raise LabelStudioError(f"Label Studio at {self.server}: {exc} ({POLICY_HINT})") from None
        self.http = policy_client(fetch, timeout=timeout_s)
        self.sdk = LabelStudio(base_url=self.server, api_key=token, timeout=timeout_s, httpx_client=self.http)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except PolicyRefused as exc:
            raise LabelStudioError(f"Label Studio at {self.server}: {exc} ({POLICY_HINT})") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.server} ({what}): {exc}") from None
        except httpx.TimeoutException:
            raise LabelStudioError(f"Label Studio at {self.server} did not answer in time ({what})") from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"talking to Label Studio at {self.server} failed ({what}): {exc}") from None
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise LabelStudioError(f"Label Studio at {self.server} refused the API token (HTTP "
                                       f"{exc.status_code}) while {what}; check --token") from None
            detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
            extra = exc.body.get("validation_errors") if isinstance(exc.body, dict) else None
            raise LabelStudioError(f"Label Studio answered HTTP {exc.status_code} while {what}: {detail}"
                                   + (f" {extra}" if extra else "")) from None

    def whoami(self) -> str:
        with self._call("checking the token"):
            return str(self.sdk.users.whoami().email)

    def users(self) -> dict[int, str]:
        with self._call("listing users"):
            return {int(u.id): str(u.email or u.username or u.id) for u in self.sdk.users.list()}

    def find_project(self, title: str) -> tuple[int, str] | None:
        """(id, labeling config) of the project with this title, or None."""
        with self._call("listing projects"):
            projects: SyncPager[AllRolesProjectList, Any] = self.sdk.projects.list()
            for project in projects:
                if project.title == title and project.id is not None:
                    return project.id, str(self.sdk.projects.get(id=project.id).label_config or "")
        return None

    def project_for(self, title: str, kind: TaskKind) -> tuple[int, bool]:
        """The project for ``kind`` (reused when its config matches, created otherwise): (id, created)."""
        labels = bridge.labels_for(kind)
        found = self.find_project(title)
        if found is not None:
            problems = lsf.config_problems(found[1], labels)
            if problems:
                raise LabelStudioError(f"project {title!r} (id {found[0]}) on {self.server} has a labeling config "
                                       f"that does not match --kind {kind.value}: {'; '.join(problems)}. Use "
                                       "another --project name.")
            return found[0], False
        with self._call(f"creating project {title!r}"):
            project = self.sdk.projects.create(
                title=title, label_config=lsf.labeling_config(labels), model_version=bridge.MODEL_VERSION,
                show_collab_predictions=True, maximum_annotations=1,
                description=f"Data Engine {kind.value} tasks (dataengine labelstudio push)")
        if project.id is None:
            raise LabelStudioError(f"{self.server} created project {title!r} without an id")
        return int(project.id), True

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        with self._call(f"importing {len(tasks)} tasks into project {project_id}"):
            # the SDK posts the dicts as they are; its request model would add every field it knows as null
            answer = self.sdk.projects.import_tasks(id=project_id, request=tasks,  # type: ignore[arg-type]
                                                    return_task_ids=True)
        ids = [int(i) for i in ((answer.model_extra or {}).get("task_ids") or [])]  # not in the SDK's model
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio imported {len(ids)} of {len(tasks)} tasks into project {project_id}")
        return ids

    def delete_tasks(self, ids: list[int]) -> None:
        with self._call(f"deleting {len(ids)} tasks"):
            for task_id in ids:
                self.sdk.tasks.delete(id=str(task_id))

    def annotated_tasks(self, project_id: int, page_size: int, *, annotated: bool = True) -> Iterator[dict[str, Any]]:
        """Every task of the project with at least one annotation (every task: ``annotated=False``), page
        by page, as plain dicts."""
        number, seen = 1, 0
        while True:
            with self._call(f"listing annotated tasks of project {project_id} (page {number})"):
                page: SyncPager[RoleBasedTask, Any] = self.sdk.tasks.list(
                    project=project_id, fields="all", query=ANNOTATED if annotated else None, page=number,
                    page_size=page_size)
                items = list(page.items or [])
                total = int(getattr(page.response, "total", 0) or 0)
            for task in items:
                yield task.model_dump(mode="json")
            seen += len(items)
            # Label Studio answers 404 for a page past the end: stop at the total it announced
            if not items or seen >= total:
                return
            number += 1

    def ensure_webhook(self, project_id: int, url: str, secret: str) -> bool:
        """Register our webhook on the project (once per URL); True when it was made now."""
        with self._call(f"registering the webhook of project {project_id}"):
            for hook in self.sdk.webhooks.list(project=str(project_id)):
                if hook.url == url and getattr(hook, "project", project_id) == project_id:
                    return False
            self.sdk.webhooks.create(url=url, project=project_id, send_payload=True, send_for_all_actions=False,
                                     actions=WEBHOOK_ACTIONS, headers={WEBHOOK_HEADER: secret}, is_active=True)
        return True


def connect(settings: Settings, url: str | None = None, token: str | None = None) -> LabelStudioClient:
    """A client for the given or configured server; checks that it answers and takes the token."""
    cfg = settings.labelstudio
    url = url or cfg.url
    token = token or (cfg.token.get_secret_value() if cfg.token else None)
    if not url:
        raise LabelStudioError("no Label Studio URL given (--url or DATAENGINE_LABELSTUDIO__URL)")
    client = LabelStudioClient(url, token or "", cfg.timeout_s, settings.fetch)
    client.whoami()
    return client


# ---------------------------------------------------------------------------------------- push
@dataclass
class PushReport:
    project_id: int
    project: str
    created: bool
    pushed: int = 0
    batches: int = 0
    seconds: float = 0.0
    webhook: bool = False


def push(settings: Settings, client: LabelStudioClient, kind: TaskKind, *, project: str | None = None,
         limit: int | None = None, webhook_url: str | None = None) -> PushReport:
    """Lease open ``kind`` tasks to the bridge and import them into the project (see the module text)."""
    cfg = settings.labelstudio
    if cfg.signing_secret is None:
        raise LabelStudioError("set labelstudio.signing_secret (DATAENGINE_LABELSTUDIO__SIGNING_SECRET): Label "
                               "Studio loads images through signed URLs of our API")
    secret = cfg.signing_secret.get_secret_value()
    title = project or cfg.project or bridge.default_project(kind)
    started = time.perf_counter()
    project_id, created = client.project_for(title, kind)
    report = PushReport(project_id, title, created)
    if webhook_url:
        if cfg.webhook_secret is None:
            raise LabelStudioError("--webhook-url needs labelstudio.webhook_secret (DATAENGINE_LABELSTUDIO__"
                                   "WEBHOOK_SECRET), the secret our webhook checks")
        report.webhook = client.ensure_webhook(project_id, webhook_url, cfg.webhook_secret.get_secret_value())
    remaining = limit
    while remaining is None or remaining > 0:
        size = cfg.batch_size if remaining is None else min(cfg.batch_size, remaining)
        pushed = _push_batch(settings, client, kind, project_id, size, secret)
        if pushed == 0:
            break
        report.pushed += pushed
        report.batches += 1
        remaining = None if remaining is None else remaining - pushed
        if pushed < size:
            break
    report.seconds = time.perf_counter() - started
    return report


def _push_batch(settings: Settings, client: LabelStudioClient, kind: TaskKind, project_id: int, size: int,
                secret: str) -> int:
    cfg = settings.labelstudio
    imported: list[int] = []
    try:
        with session_scope(settings.db_url) as session:
            items = bridge.claim(session, client.server, kind, size, cfg.lease_s)
            if not items:
                return 0
            expires = int(time.time()) + cfg.url_ttl_s
            tasks = [bridge.ls_task(item, cfg.public_url, secret, expires) for item in items]
            imported = client.import_tasks(project_id, tasks)
            bridge.record_links(session, client.server, project_id,
                                [(item.task_id, ls_id) for item, ls_id in zip(items, imported, strict=True)])
        return len(imported)
    except BaseException:
        if imported:  # in Label Studio but not recorded here: take them out again
            try:
                client.delete_tasks(imported)
            except LabelStudioError as exc:
                log.error("could not delete %d tasks from project %d after a failed push: %s", len(imported),
                          project_id, exc)
        raise


# ---------------------------------------------------------------------------------------- pull
@dataclass
class PullSummary:
    projects: list[int] = field(default_factory=list)
    report: bridge.PullReport = field(default_factory=bridge.PullReport)
    tasks: int = 0
    seconds: float = 0.0


def pull(settings: Settings, client: LabelStudioClient, *, project: str | None = None) -> PullSummary:
    """Store the annotations of every project we pushed to on this server (or of one project)."""
    started = time.perf_counter()
    summary = PullSummary()
    if project is not None:
        found = client.find_project(project)
        if found is None:
            raise LabelStudioError(f"no project {project!r} on {client.server}")
        summary.projects = [found[0]]
    else:
        with session_scope(settings.db_url) as session:
            summary.projects = bridge.linked_projects(session, client.server)
    users = client.users()
    for project_id in summary.projects:
        page: list[dict[str, Any]] = []
        for task in client.annotated_tasks(project_id, settings.labelstudio.page_size):
            page.append(task)
            if len(page) >= settings.labelstudio.page_size:
                _store_page(settings, client.server, page, users, summary)
                page = []
        if page:
            _store_page(settings, client.server, page, users, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _store_page(settings: Settings, server: str, tasks: list[dict[str, Any]], users: dict[int, str],
                summary: PullSummary) -> None:
    """One transaction per page; each annotation in its own savepoint inside it."""
    with session_scope(settings.db_url) as session:
        for task in tasks:
            summary.tasks += 1
            for annotation in task.get("annotations") or []:
                author = annotation.get("completed_by")
                email = users.get(int(author)) if isinstance(author, int) else None
                summary.report.outcomes.append(bridge.store_annotation(
                    session, server, int(task["id"]), annotation, settings.queue, user_email=email))
