"""The operators' pages in a real browser against the real server on PostgreSQL: the dashboard's
charts and tables, starting a mining job and following it to its failures and a retry, and the
admin page (people, API tokens shown once, gold items; reviewers see only gold). Text from the
data (job names, file names, model names) with markup must show as text and never run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db.models import (
    HumanTask,
    ModelKind,
    Role,
    TaskKind,
    TaskState,
    User,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.repositories.model_versions import get_or_create
from engine.services.users import create_user
from engine.settings import Settings
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo, seed_review_items
from tests.web.live import browser_page, live_server, save_screenshot  # noqa: F401 (fixtures)

PASSWORD = "a long enough password"
READY = "document.body.dataset.state === 'ready'"


def wait_until(page: Any, condition: str, timeout: float = 15_000) -> None:
    """Wait for a JavaScript condition; passed as a function (the page's CSP forbids eval of a string)."""
    page.wait_for_function(f"() => {condition}", timeout=timeout)
XSS_FILE = "<img src=x onerror=window.__xss=1>.jpg"
XSS_JOB = "<b>web</b> photos"
XSS_MODEL = "<i>mv</i>"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path)
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """root (admin), rev (reviewer), annie (annotator) with a few verdicts, one AI verifier."""
    with session_scope(settings.db_url) as s:
        ids = {name: create_user(s, name, PASSWORD, role).id
               for name, role in (("root", Role.ADMIN), ("rev", Role.REVIEWER), ("annie", Role.ANNOTATOR))}
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",))
        tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))
        masks = [t for t in tasks if t.kind == TaskKind.VERIFY_MASK]
        mv = get_or_create(s, ModelKind.MASK_VERIFIER, XSS_MODEL, "1")
        now = dt.datetime.now(dt.UTC)
        for i, task in enumerate(masks):
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=task.pair_id, mask_id=task.mask_id,
                          task_id=task.id, user_id=ids["annie"], label="accept", duration_ms=2000 + 1000 * i,
                          created_at=now - dt.timedelta(hours=i)))
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=task.pair_id, mask_id=task.mask_id,
                          model_version_id=mv.id, label="accept", probabilities={"accept": 0.8}))
            task.state = TaskState.DONE
        return {"done_task": masks[0].id, "users": ids}


def sign_in(page: Any, base: str, username: str, path: str) -> None:
    page.goto(f"{base}/login?next={path}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base}{path}")
    wait_until(page, READY)


def test_dashboard_page(live_server: str, browser_page: Any, seeded: dict[str, Any]) -> None:  # noqa: F811
    page = browser_page
    sign_in(page, live_server, "root", "/dashboard")
    assert page.locator("#nav a.active").inner_text() == "Dashboard"
    assert page.locator("#queue-chart svg rect.bar").count() == 6  # 3 kinds × open, leased
    assert page.locator("#throughput-chart svg rect.bar").count() == 24
    assert page.locator("#timing-chart svg rect.bar").count() == 3
    assert "2 human verdicts in the last 24 hours" in page.inner_text("#throughput-total")
    annotators = page.inner_text("#annotators")
    assert "annie" in annotators and "annotator" in annotators
    verifiers = page.inner_text("#verifiers")
    assert f"{XSS_MODEL}:1" in verifiers and "100.0%" in verifiers
    assert page.locator("#verifiers i").count() == 0
    acceptance = page.inner_text("#acceptance")  # quality per model version (GET /dashboard/quality)
    assert f"{XSS_MODEL}:1" in acceptance and page.locator("#acceptance i").count() == 0
    assert "No human-verified exhaustive pair" in page.inner_text("#proposers")
    assert "dog" in page.inner_text("#coverage")  # concept coverage: one concept, a bar per series
    assert page.locator("#coverage-chart svg rect.bar").count() == 2 and page.locator("#coverage i").count() == 0
    save_screenshot(page, "dashboard")
    page.select_option("#hours", "6")
    wait_until(page, "document.querySelectorAll('#throughput-chart rect.bar').length === 6")
    assert "in the last 6 hours" in page.inner_text("#throughput-total")


def test_jobs_page_starts_follows_and_retries_a_job(live_server: str, browser_page: Any,  # noqa: F811
                                                     seeded: dict[str, Any], settings: Settings) -> None:
    folder = settings.data_dir / "sources" / "web"
    folder.mkdir(parents=True)
    for seed in range(2):
        (folder / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed)))
    good = jpeg_bytes(photo(9))
    (folder / XSS_FILE).write_bytes(good[: len(good) // 3])  # truncated: fails

    page = browser_page
    sign_in(page, live_server, "root", "/jobs")
    assert page.inner_text("#jobs") == "No jobs yet: start one above."
    page.fill("#source", "web")
    page.fill("#job-name", XSS_JOB)
    page.select_option("#until", "mine")
    page.click("#start")
    wait_until(page, "document.getElementById('detail-status').textContent === 'done'"
                           " && document.querySelectorAll('#failures tbody tr').length === 1"
                           " && document.querySelector('#jobs .badge').textContent === 'done'", timeout=30_000)
    assert "3 items listed" in page.inner_text("#start-notice")
    assert page.inner_text("#detail-title").startswith(XSS_JOB)
    assert "done 2" in page.inner_text("#stages") and "failed 1" in page.inner_text("#stages")
    assert XSS_FILE in page.inner_text("#failures") and "truncated" in page.inner_text("#failures")
    assert XSS_FILE in page.inner_text("#failure-groups")
    assert XSS_JOB in page.inner_text("#jobs")
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("#failures img, #detail b, #jobs b").count() == 0
    save_screenshot(page, "jobs-failed")

    (folder / XSS_FILE).write_bytes(good)  # the file is whole now
    page.click("#retry")
    wait_until(page, "document.getElementById('detail-status').textContent === 'done'"
                           " && document.getElementById('failures').textContent === 'No failed items.'"
                           " && document.getElementById('stages').textContent.includes('done 3')", timeout=30_000)
    assert "1 failed item back to pending" in page.inner_text("#detail-notice")
    save_screenshot(page, "jobs-retried")

    # the detail view is addressable: a reload opens it again
    page.reload()
    wait_until(page, f"{READY} && !document.getElementById('detail').hidden"
                           " && document.getElementById('detail-status').textContent === 'done'")
    assert page.url.endswith("#job-1")


def test_admin_page_people_tokens_gold_and_the_reviewers_view(live_server: str, browser_page: Any,  # noqa: F811
                                                              seeded: dict[str, Any], settings: Settings) -> None:
    page = browser_page
    sign_in(page, live_server, "root", "/admin")
    assert all(page.locator(f"#{card}").is_visible() for card in ("users-card", "tokens-card", "gold-card"))
    assert {"annie", "rev", "root"} <= set(page.locator("#users tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.username)"))

    # add a person, then disable them
    page.fill("#new-username", "newbie")
    page.fill("#new-password", "another long password")
    page.select_option("#new-role", "reviewer")
    page.locator("#new-kinds input[value=verify_mask]").check()
    page.click("#user-form button[type=submit]")
    wait_until(page, "document.querySelector('#users tr[data-username=newbie]') !== null"
                     " || document.getElementById('error').textContent !== ''")
    assert page.inner_text("#error") == ""
    assert "Added newbie (reviewer)" in page.inner_text("#notice")
    page.click("#users tr[data-username=newbie] button.danger")
    wait_until(page, "document.querySelector('#users tr[data-username=newbie]').textContent.includes('disabled')")
    with session_scope(settings.db_url) as s:
        newbie = s.scalars(select(User).where(User.username == "newbie")).one()
        assert (newbie.role, newbie.is_active, newbie.task_kinds) == (Role.REVIEWER, False, ["verify_mask"])

    # an API token is shown once
    page.fill("#token-name", "nightly export")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#new-token:not([hidden])")
    token = page.inner_text("#new-token-value")
    assert token.startswith(page.locator("#tokens tbody td").nth(1).inner_text().rstrip("…"))
    save_screenshot(page, "admin")
    page.reload()
    wait_until(page, READY)
    assert page.locator("#new-token").is_hidden() and token not in page.content()
    assert "nightly export" in page.inner_text("#tokens")

    # gold: a done task becomes gold with its decided label
    page.fill("#gold-task", str(seeded["done_task"]))
    page.click("#gold-form button[type=submit]")
    wait_until(page, "document.querySelector('#gold tbody tr') !== null"
                     " || document.getElementById('error').textContent !== ''")
    assert page.inner_text("#error") == ""
    assert "accept" in page.inner_text("#gold") and "active" in page.inner_text("#gold")

    # a reviewer sees only the gold items
    page.click("#logout")
    page.wait_for_url("**/login")
    sign_in(page, live_server, "rev", "/admin")
    assert page.locator("#gold-card").is_visible()
    assert page.locator("#users-card").is_hidden() and page.locator("#tokens-card").is_hidden()
    assert page.inner_text("#title") == "Gold items" and "accept" in page.inner_text("#gold")
    save_screenshot(page, "admin-reviewer")
