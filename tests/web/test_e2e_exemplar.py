"""The exemplar tool of the correction page in a real browser (web/static/queue/exemplar.js).

X, a drag around a good instance and a Shift+drag around a wrong one: the page POSTs the round's boxes
to /tasks/{id}/exemplars, polls GET /exemplars/{id} and adds the masks to the correction as candidates
that are kept or deleted as usual; the verdict sends a kept one as {rle, tool "exemplar", exemplar_id}.

The exemplar backend (I19-A: the request table, the worker, web/routers/exemplars.py) is not in main
yet: until it is, the two exemplar endpoints are answered in the browser (page.route) as the API
contract says, and the verdict is read there (the verdict endpoint does not take tool "exemplar" yet).
Everything else (log-in, the lease, the task, its image and candidates) is the real live server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

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
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """One annotator and one open correct task (two candidate masks)."""
    with session_scope(settings.db_url) as s:
        user = create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("red kite",), size=(W, H),
                                 masks_per_pair=2, kinds=("correct",))
        return {"user_id": user.id, "task": made["tasks"][0]}


def box_rle(x0: int, y0: int, x1: int, y1: int) -> dict[str, Any]:
    bits = np.zeros((H, W), dtype=np.uint8)
    bits[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(bits))
    return {"size": [H, W], "counts": rle["counts"].decode()}


class ExemplarStub:
    """The exemplar endpoints as the API contract has them: POST → 202 {request_id, state}; GET → the
    state, then done with two masks."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.polls = 0
        self.verdicts: list[dict[str, Any]] = []

    def post(self, route: Any) -> None:
        self.posted.append(route.request.post_data_json)
        route.fulfill(status=202, json={"request_id": 40 + len(self.posted), "state": "queued"})

    def get(self, route: Any) -> None:
        self.polls += 1
        request_id = int(route.request.url.rsplit("/", 1)[1].split("?")[0])
        if self.polls < 2:
            route.fulfill(json={"request_id": request_id, "state": "running", "error": None, "masks": []})
            return
        masks = [{"rle": box_rle(20, 30, 90, 100), "bbox": [20, 30, 70, 70], "score": 0.8},
                 {"rle": box_rle(200, 120, 260, 200), "bbox": [200, 120, 60, 80], "score": 0.6}]
        route.fulfill(json={"request_id": request_id, "state": "done", "error": None, "masks": masks})

    def verdict(self, route: Any) -> None:
        self.verdicts.append(route.request.post_data_json)
        route.fulfill(status=503, json={"detail": "read by the test"})


def test_exemplar_boxes_add_candidates_that_are_kept_or_deleted(live_server: str, browser_page: Any,  # noqa: F811
                                                                 seeded: dict[str, Any], tmp_path: Path) -> None:
    page, task = browser_page, seeded["task"]
    stub = ExemplarStub()
    page.route(f"**/api/v1/tasks/{task}/exemplars", stub.post)
    page.route("**/api/v1/exemplars/*", stub.get)
    page.route(f"**/api/v1/tasks/{task}/verdict", stub.verdict)
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
    assert stub.posted == []
    page.mouse.move(cx - 80, cy - 60)
    page.mouse.down()
    page.mouse.move(cx - 20, cy - 10, steps=4)
    page.mouse.up()
    wait_body(page, exemplar="done", maskCount=4)
    assert len(stub.posted) == 1 and stub.posted[0]["labels"] == [0, 1]
    for x0, y0, x1, y1 in stub.posted[0]["boxes"]:
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    assert "new (exemplar)" in page.text_content("#mask-list")
    shot = tmp_path / "exemplar.png"
    page.screenshot(path=str(shot))
    if not DOC_IMAGE.exists():
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as img:  # 128 colours: a tenth of the size (the seeded image is noise)
            img.convert("RGB").quantize(128).save(DOC_IMAGE, optimize=True)

    # the second exemplar mask is wrong: select it (4) and delete it; submit (S)
    page.keyboard.press("4")
    page.keyboard.press("Delete")
    wait_body(page, maskCount=3)
    with page.expect_request(f"**/api/v1/tasks/{task}/verdict"):
        page.keyboard.press("s")
    masks = stub.verdicts[0]["masks"]
    exemplar = [m for m in masks if m["tool"] == "exemplar"]
    assert len(masks) == 3 and len(exemplar) == 1
    assert exemplar[0]["exemplar_id"] == 41 and exemplar[0]["rle"]["size"] == [H, W]
    assert page_errors(page) == []
