"""The exemplar tool of the correction page in a real browser (web/static/queue/exemplar.js).

X, a drag around a good instance and a Shift+drag around a wrong one: the page POSTs the round's boxes
to /tasks/{id}/exemplars, polls GET /exemplars/{id} and adds the masks to the correction as candidates
that are kept or deleted as usual; the verdict sends a kept one as {rle, tool "exemplar", exemplar_id}.

Everything is real: the live server in embedded mode runs the request on the tiny random-weight SAM 3
(pipelines/exemplars.py's thread, the vision features cached per image) — its masks are noise, so what
is checked is that they arrive, are kept or deleted, and that the kept ones are stored with their prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from engine.db.models import Mask, Verdict
from engine.db.session import session_scope
from engine.domain.vocabulary import Role
from engine.services.users import create_user
from engine.settings import ModelSettings, Settings
from tests.conftest import make_settings
from tests.factories import seed_review_items
from tests.web.live import browser_page, live_server, page_errors  # noqa: F401 (fixtures)
from tests.web.test_e2e_queue import wait_body, wait_task

PASSWORD = "a long enough password"
H, W = 240, 320
DOC_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "img" / "exemplar.png"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path, models_cache_dir: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path, models=ModelSettings(cache_dir=models_cache_dir, device="cpu"))
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    s.exemplars.score_threshold = 0.0  # random weights score low: keep what the tiny model finds
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """One annotator and one open correct task (two candidate masks)."""
    with session_scope(settings.db_url) as s:
        user = create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("red kite",), size=(W, H),
                                 masks_per_pair=2, kinds=("correct",))
        return {"user_id": user.id, "task": made["tasks"][0]}


def test_exemplar_boxes_add_candidates_that_are_kept_or_deleted(live_server: str, browser_page: Any,  # noqa: F811
                                                                 seeded: dict[str, Any], settings: Settings,
                                                                 tmp_path: Path) -> None:
    page, task = browser_page, seeded["task"]
    posted: list[Any] = []
    page.on("request", lambda r: posted.append(r.post_data_json) if r.url.endswith(f"/tasks/{task}/exemplars")
            and r.method == "POST" else None)
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    wait_task(page, task, "correct")
    wait_body(page, maskCount=2)
    assert page.get_attribute("#tool-exemplar", "aria-label")

    # X, then a Shift+drag (a wrong instance: not sent alone) and a drag (a good instance: sent)
    page.keyboard.press("x")
    assert "active" in (page.get_attribute("#tool-exemplar", "class") or "")
    box = page.locator("#canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.keyboard.down("Shift")
    page.mouse.move(cx + 20, cy + 20)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 50, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert posted == []
    page.mouse.move(cx - 80, cy - 60)
    page.mouse.down()
    page.mouse.move(cx - 20, cy - 10, steps=4)
    page.mouse.up()
    wait_body(page, exemplar="done", timeout=90_000)  # the first request loads the tiny SAM 3
    assert len(posted) == 1 and posted[0]["labels"] == [0, 1]
    for x0, y0, x1, y1 in posted[0]["boxes"]:
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    found = int(page.get_attribute("body", "data-mask-count")) - 2
    assert found >= 2, "the re-proposal's masks are added to the working set (threshold 0: the tiny model's all)"
    assert "new (exemplar)" in page.text_content("#mask-list")
    shot = tmp_path / "exemplar.png"
    page.screenshot(path=str(shot))
    if not DOC_IMAGE.exists():
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as img:  # 128 colours: a tenth of the size (the seeded image is noise)
            img.convert("RGB").quantize(128).save(DOC_IMAGE, optimize=True)

    # the first exemplar mask is wrong: select it (3) and delete it; submit (S)
    page.keyboard.press("3")
    page.keyboard.press("Delete")
    wait_body(page, maskCount=1 + found)
    page.keyboard.press("s")
    wait_body(page, state="empty", pending=0, timeout=20_000)
    with session_scope(settings.db_url) as s:
        verdict = s.scalars(select(Verdict).where(Verdict.task_id == task)).one()
        sent = [m for m in verdict.payload["masks"] if m["tool"] == "exemplar"]
        assert len(verdict.payload["masks"]) == 1 + found and len(sent) == found - 1
        made = s.scalars(select(Mask).where(Mask.prompt.is_not(None))).all()
        assert len(made) == found - 1
        for m in made:
            assert m.prompt["exemplars"]["labels"] == [0, 1] and m.prompt["model_version_id"]
    assert page_errors(page) == []
