"""The task page's "Similar images" strip in a real browser against the real server on PostgreSQL: an
annotator opens it with L and sees the planted nearest neighbour first, with its thumbnail and similarity;
judging the task closes it without asking the server for neighbours; an image with no embedding says so.
The embeddings are planted vectors (stored through the real service and index), not a model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from engine.db.models import HumanTask, Role, TaskState
from engine.db.session import session_scope
from engine.ports import ModelStamp
from engine.services import embeddings
from engine.services.common import register
from engine.services.users import create_user
from engine.settings import Settings
from tests.conftest import make_settings
from tests.factories import seed_review_items
from tests.web.live import browser_page, live_server, page_errors, save_screenshot  # noqa: F401 (fixtures)

PASSWORD = "a long enough password"
NO_EMBEDDING = "No embedding for this image yet"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path)
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    return s


@pytest.fixture
def planted(settings: Settings) -> dict[str, Any]:
    """Four images; a verify task on image 0 then one on image 3, the others cancelled. Images 0–2 have
    embeddings: image 2 is planted nearest to image 0, image 1 farther; image 3 has none."""
    with session_scope(settings.db_url) as s:
        create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=4, phrases=("red kite",), size=(160, 120),
                                 masks_per_pair=1, kinds=("verify_mask",))
        images = made["images"]
        tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))
        assert len(tasks) == 4
        first, second = tasks[0], tasks[3]
        for task in tasks:
            task.priority = 100 if task is first else 90 if task is second else 0
            if task not in (first, second):
                task.state = TaskState.CANCELLED
        version = register(s, ModelStamp(kind="proposer", name="planted (image embedding)", version="1")).id
        vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.2], [0.95, 0.1, 0.0]], dtype=np.float32)
        embeddings.store_embeddings(s, version, images[:3], vectors, data_dir=settings.data_dir)
        return {"images": images, "first": first.id, "second": second.id}


def _wait_task(page: Any, task_id: int) -> None:
    page.locator(f'body[data-state="ready"][data-task-id="{task_id}"]').wait_for(state="attached")


def test_the_annotator_opens_the_similar_strip_and_sees_the_planted_neighbour(
        live_server: str, browser_page: Any, planted: dict[str, Any]) -> None:  # noqa: F811
    page = browser_page
    images = planted["images"]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/images/" in r.url and "/similar" in r.url else None)
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    _wait_task(page, planted["first"])
    assert page.locator("#similar").is_hidden() and asked == []  # nothing asked before it is opened
    assert "similar images" in page.text_content("#help-keys")

    page.keyboard.press("l")
    items = page.locator("#similar-list li")
    items.first.wait_for()
    assert items.evaluate_all("nodes => nodes.map(n => Number(n.dataset.imageId))") == [images[2], images[1]]
    similarities = [float(t) for t in page.locator("#similar-list .similarity").all_text_contents()]
    assert similarities[0] > 0.9 > similarities[1]
    thumb = items.first.locator("img")
    assert thumb.get_attribute("src") == f"/api/v1/images/{images[2]}"
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert len(asked) == 1 and f"/images/{images[0]}/similar" in asked[0]
    save_screenshot(page, "similar_strip")

    page.keyboard.press("a")  # judged: the next task is shown with the strip closed, nothing asked
    _wait_task(page, planted["second"])
    assert page.locator("#similar").is_hidden() and len(asked) == 1
    page.click("#similar-toggle")  # the button opens it too; this image has no embedding yet
    page.locator("#similar[data-state='empty']").wait_for()
    assert NO_EMBEDDING in page.text_content("#similar-status")
    assert page.locator("#similar-list li").count() == 0
    page.keyboard.press("l")
    assert page.locator("#similar").is_hidden()
    assert page_errors(page) == []
