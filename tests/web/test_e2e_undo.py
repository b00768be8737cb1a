"""Undo of the last verdict in a real browser against the real server on PostgreSQL: answer a task,
press Shift+Z while the Undo offer shows, the same task is back on screen and is answered
differently; the task that was on screen comes next. The labels and the invariants agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db.models import Decider, HumanTask, Mask, MaskState, Role, TaskState, Verdict
from engine.db.session import session_scope
from engine.domain.decisions import UNDONE
from engine.services import check
from engine.services.users import create_user
from engine.settings import Settings
from tests.conftest import make_settings
from tests.factories import seed_review_items
from tests.web.live import browser_page, live_server, page_errors  # noqa: F401 (fixtures)

PASSWORD = "a long enough password"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path)
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """One annotator; two verify tasks of one pair, the first one first."""
    with session_scope(settings.db_url) as s:
        create_user(s, "ulla", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("kite",), size=(320, 240),
                                 masks_per_pair=2, kinds=("verify_mask",))
        tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))
        for i, task in enumerate(tasks):
            task.priority = 10 - i
        return {"tasks": [t.id for t in tasks], "masks": [t.mask_id for t in tasks]}


def wait_task(page: Any, task_id: int) -> None:
    page.locator(f'body[data-state="ready"][data-task-id="{task_id}"]').wait_for(state="attached")


def test_answer_undo_and_answer_differently(live_server: str, browser_page: Any,  # noqa: F811
                                            seeded: dict[str, Any], settings: Settings) -> None:
    page = browser_page
    first, second = seeded["tasks"]
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "ulla")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}/queue")

    wait_task(page, first)
    page.keyboard.press("a")
    wait_task(page, second)
    page.locator("#undo-verdict").wait_for(state="visible")  # offered once the verdict is stored
    page.keyboard.press("Shift+Z")
    wait_task(page, first)  # the same task is back
    assert "undone" in page.text_content("#toasts")
    with session_scope(settings.db_url) as s:
        assert s.get(Mask, seeded["masks"][0]).state == MaskState.CANDIDATE

    page.keyboard.press("r")  # answered differently
    wait_task(page, second)  # the task that was on screen comes next

    def labels() -> list[str]:
        with session_scope(settings.db_url) as s:
            return list(s.scalars(select(Verdict.label).where(Verdict.task_id == first).order_by(Verdict.id)))

    for _ in range(200):  # the reject is sent in the background
        if len(labels()) == 3:
            break
        page.wait_for_timeout(50)
    assert labels() == ["accept", UNDONE, "reject"]
    with session_scope(settings.db_url) as s:
        mask = s.get(Mask, seeded["masks"][0])
        assert (mask.state, mask.decided_by) == (MaskState.REJECTED, Decider.HUMAN)
        assert s.get(HumanTask, first).state == TaskState.DONE
        report = check.check(s)
        assert report.ok, report.violated()
    assert page_errors(page) == []
