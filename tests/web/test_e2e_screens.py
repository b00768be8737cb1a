"""The screens of issue 20 in a real browser against the real server on PostgreSQL: where each role
lands after signing in (an admin on the dashboard, never leasing a task), the dashboard's charts at
the page's text size with tick labels that do not repeat, and on the task page a toast after each
verdict and a long mask list that scrolls to the mask just added."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db.models import HumanTask, Role, TaskKind, TaskState, Verdict, VerdictKind, VerdictSource
from engine.db.session import session_scope
from engine.services.users import create_user
from engine.settings import Settings
from tests.conftest import make_settings
from tests.factories import seed_review_items
from tests.web.live import browser_page, live_server, save_screenshot  # noqa: F401 (fixtures)

PASSWORD = "a long enough password"
N_MASKS = 14  # more than the mask list shows without scrolling


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path)
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """root (admin), annie (annotator); one open correction task of a pair with N_MASKS candidates, and
    done verify tasks with quick verdicts (a median of 0.04 s: the axis of active seconds in hundredths)."""
    with session_scope(settings.db_url) as s:
        ids = {name: create_user(s, name, PASSWORD, role).id
               for name, role in (("root", Role.ADMIN), ("annie", Role.ANNOTATOR))}
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("kite",), size=(320, 240),
                                 masks_per_pair=N_MASKS, kinds=("verify_mask", "correct"))
        tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))
        now = dt.datetime.now(dt.UTC)
        for i, task in enumerate(t for t in tasks if t.kind == TaskKind.VERIFY_MASK):
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=task.pair_id, mask_id=task.mask_id,
                          task_id=task.id, user_id=ids["annie"], label="accept", duration_ms=30 + 2 * i,
                          created_at=now - dt.timedelta(minutes=i)))
            task.state = TaskState.DONE
        (correct,) = [t.id for t in tasks if t.kind == TaskKind.CORRECT]
        return {"users": ids, "correct": correct}


def sign_in(page: Any, base: str, username: str) -> None:
    """Sign in from the log-in page as it opens with no ?next= (GET / leads there)."""
    page.goto(f"{base}/")
    page.wait_for_url(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")


def leased_to(settings: Settings, user_id: int) -> list[int]:
    with session_scope(settings.db_url) as s:
        return list(s.scalars(select(HumanTask.id).where(HumanTask.state == TaskState.LEASED,
                                                         HumanTask.lease_owner_id == user_id)))


# every chart's drawn text size and height against the body text, and its y-axis tick labels
CHART_METRICS = """() => [...document.querySelectorAll('.chart svg')].map((svg) => {
  const body = parseFloat(getComputedStyle(document.body).fontSize);
  const box = svg.getBoundingClientRect(), scale = box.width / svg.viewBox.baseVal.width;
  const text = svg.querySelector('text');
  return {id: svg.parentElement.id, font: parseFloat(getComputedStyle(text).fontSize) * scale / body,
          height: box.height / body,
          ticks: [...svg.querySelectorAll('text[text-anchor=end]')].map((t) => t.textContent)};
})"""


def test_an_admin_lands_on_the_dashboard_with_charts_at_text_size(live_server: str, browser_page: Any,  # noqa: F811
                                                                  seeded: dict[str, Any], settings: Settings) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1700, "height": 900})  # the full-width cards are wide
    sign_in(page, live_server, "root")
    page.wait_for_url(f"{live_server}/dashboard")
    page.wait_for_function("() => document.body.dataset.state === 'ready'"
                           " && document.querySelector('#quality-chart svg') !== null")
    assert leased_to(settings, seeded["users"]["root"]) == []  # the queue page was never opened
    charts = {c["id"]: c for c in page.evaluate(CHART_METRICS)}
    assert {"queue-chart", "throughput-chart", "timing-chart", "coverage-chart", "quality-chart"} <= charts.keys()
    for chart in charts.values():
        assert 0.6 <= chart["font"] <= 1.0, chart  # about the page's small print, however wide the card
        assert chart["height"] < 14, chart  # 170 px against 16 px text
        assert len(set(chart["ticks"])) == len(chart["ticks"]) >= 2, chart  # no tick label twice
    assert charts["timing-chart"]["ticks"] == ["0 s", "0.02 s", "0.04 s", "0.06 s", "0.08 s"]  # median 0.04 s
    for counted in ("queue-chart", "throughput-chart", "coverage-chart"):
        assert all(t.isdigit() for t in charts[counted]["ticks"]), charts[counted]
    save_screenshot(page, "dashboard-wide")
    page.set_viewport_size({"width": 900, "height": 900})  # narrower: drawn again at the new width
    page.wait_for_function("() => { const s = document.querySelector('#quality-chart svg');"
                           " return Math.abs(s.getBoundingClientRect().width - s.viewBox.baseVal.width) < 2; }")
    # signed in already: the site's root sends the admin on to the dashboard again
    page.goto(f"{live_server}/")
    page.wait_for_url(f"{live_server}/dashboard")
    assert leased_to(settings, seeded["users"]["root"]) == []


def test_an_annotator_lands_on_the_queue_sees_each_verdict_confirmed_and_the_new_mask(
        live_server: str, browser_page: Any, seeded: dict[str, Any]) -> None:  # noqa: F811
    page = browser_page
    sign_in(page, live_server, "annie")
    page.wait_for_url(f"{live_server}/queue")
    task = seeded["correct"]
    page.locator(f'body[data-state="ready"][data-task-id="{task}"][data-mask-count="{N_MASKS}"]').wait_for()
    assert page.text_content("#reason") == ""  # an annotator is not shown the AI's verdict
    listing = "() => { const l = document.getElementById('mask-list'); return [l.scrollHeight, l.clientHeight]; }"
    full, shown = page.evaluate(listing)
    assert full > shown  # the list scrolls

    # a brushed mask (nothing selected, B, one stroke) is added at the end of the list: scrolled into view
    box = page.locator("#canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.8
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 10, steps=4)
    page.mouse.up()
    page.locator(f'body[data-mask-count="{N_MASKS + 1}"]').wait_for()
    seen = page.evaluate("""() => {
      const list = document.getElementById('mask-list'), row = list.querySelector('li.selected');
      const a = list.getBoundingClientRect(), b = row.getBoundingClientRect();
      return {scrolled: list.scrollTop > 0, inside: b.top >= a.top - 1 && b.bottom <= a.bottom + 1,
              last: row === list.lastElementChild};
    }""")
    assert seen == {"scrolled": True, "inside": True, "last": True}
    save_screenshot(page, "mask-list-scrolled")

    # the verdict (S: corrected): a toast says so, read out to screen readers, and the count moves
    page.keyboard.press("s")
    toast = page.locator('#toasts .verdict-toast[role="status"]')
    toast.wait_for()
    assert f"Task {task}: corrected" in toast.inner_text()
    assert page.get_attribute("#toasts", "aria-live") == "polite"
    assert page.text_content("#session-count") == "1 done this session"
    assert "bumped" in (page.get_attribute("#session-count", "class") or "")
