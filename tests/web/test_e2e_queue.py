"""The annotator's pages in a real browser against the real server on PostgreSQL: log in, judge
masks with the keyboard, correct a pair with click-to-segment (the tiny random-weight SAM 3
tracker: its masks are noise, so only their presence is checked), skip, and the empty queue.
Model output (phrases, captions) with markup must show as text and never run."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db.models import (
    Caption,
    Decider,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    ModelKind,
    Role,
    TaskKind,
    TaskSkip,
    TaskState,
    User,
    Verdict,
)
from engine.db.session import session_scope
from engine.repositories.model_versions import get_or_create
from engine.services.users import create_user
from engine.settings import ModelSettings, Settings
from tests.conftest import make_settings
from tests.factories import seed_review_items
from tests.web.live import browser_page, live_server, page_errors, save_screenshot  # noqa: F401 (fixtures)

PASSWORD = "a long enough password"
XSS = "<script>window.__xss=1</script><b>bold</b>"
XSS_PHRASE = f"striped zebra {XSS}"
XSS_CAPTION = 'A zebra <img src=x onerror="window.__xss2=1"> on grass'
PLAIN_PHRASE = "red kite"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path, models_cache_dir: Path) -> Settings:
    """PostgreSQL; the tiny models from the session's shared cache (tests/conftest.py); no gold, no
    multi-review, so the order of the tasks is known."""
    s = make_settings(fresh_pg_url, tmp_path, models=ModelSettings(cache_dir=models_cache_dir, device="cpu"))
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    return s


@pytest.fixture
def seeded(settings: Settings) -> dict[str, Any]:
    """Two annotators and six open tasks in a known order; every other seeded task is cancelled.

    image 1 × "red kite":  verify m1 (→ its lease is lost while shown)
    image 0 × "red kite":  verify m0 (→ accept), verify m1 (→ reject; the first send fails), exhaustivity (→ complete)
    image 0 × XSS phrase:  correct (→ keep m0 as crowd, delete m1, add a tracker mask and a brushed one)
    image 1 × "red kite":  verify m0 (→ skipped)
    """
    with session_scope(settings.db_url) as s:
        user = create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        other = create_user(s, "bob", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=2, phrases=(PLAIN_PHRASE, XSS_PHRASE),
                                 size=(320, 240), masks_per_pair=2,
                                 kinds=("verify_mask", "check_exhaustivity", "correct"))
        captioner = get_or_create(s, ModelKind.CAPTIONER, "test-captioner", "1")
        s.add(Caption(image_id=made["images"][0], model_version_id=captioner.id, text=XSS_CAPTION,
                      text_sha256=hashlib.sha256(XSS_CAPTION.encode()).hexdigest()))
        tasks = list(s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])).order_by(HumanTask.id)))
        pair_of = {p.id: p for p in s.scalars(select(ImageConcept).where(ImageConcept.id.in_(made["pairs"])))}
        # seed order: per image, per phrase: verify m0, verify m1, exhaustivity, correct
        by_pair: dict[int, list[HumanTask]] = {}
        for task in tasks:
            by_pair.setdefault(task.pair_id, []).append(task)
        kite0, zebra0, kite1, _ = made["pairs"]
        plan = [by_pair[kite1][1], by_pair[kite0][0], by_pair[kite0][1], by_pair[kite0][2], by_pair[zebra0][3],
                by_pair[kite1][0]]
        assert [t.kind for t in plan] == [TaskKind.VERIFY_MASK, TaskKind.VERIFY_MASK, TaskKind.VERIFY_MASK,
                                          TaskKind.CHECK_EXHAUSTIVITY, TaskKind.CORRECT, TaskKind.VERIFY_MASK]
        for task in tasks:
            if task in plan:
                task.priority = 100 - plan.index(task)
            else:
                task.state = TaskState.CANCELLED
        out = {"user_id": user.id, "other_id": other.id, "tasks": [t.id for t in plan], "kite0": kite0,
               "zebra0": zebra0,
               "masks": {t.id: t.mask_id for t in plan}, "image0": pair_of[kite0].image_id,
               "zebra0_masks": [m.id for m in s.scalars(select(Mask).where(Mask.pair_id == zebra0).order_by(Mask.id))]}
    return out


def wait_body(page: Any, timeout: float = 15_000, **data: object) -> None:
    """Wait until <body> carries these data attributes (taskId=5 → data-task-id="5"). A selector, not
    wait_for_function: that one evaluates strings, which the page's Content-Security-Policy forbids."""
    attrs = "".join(f'[data-{"".join("-" + c.lower() if c.isupper() else c for c in k)}="{v}"]'
                    for k, v in data.items())
    page.locator(f"body{attrs}").wait_for(state="attached", timeout=timeout)


def wait_task(page: Any, task_id: int, kind: str) -> None:
    wait_body(page, state="ready", taskId=task_id, taskKind=kind)


def leased_to(settings: Settings, user_id: int) -> set[int]:
    with session_scope(settings.db_url) as s:
        return set(s.scalars(select(HumanTask.id).where(HumanTask.state == TaskState.LEASED,
                                                        HumanTask.lease_owner_id == user_id)))


def eventually(check: Any, timeout_s: float = 10) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def test_annotator_reviews_corrects_and_skips_in_the_browser(live_server: str, browser_page: Any,  # noqa: F811
                                                              seeded: dict[str, Any], settings: Settings) -> None:
    page = browser_page
    t_lost, t_verify_a, t_verify_r, t_exh, t_correct, t_skip = seeded["tasks"]
    me = seeded["user_id"]

    # -- not signed in: the queue sends us to the log-in page, which brings us back
    page.goto(f"{live_server}/queue")
    page.wait_for_url("**/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", "wrong password")
    page.press("#password", "Enter")
    page.locator("#login-error:not(:empty)").wait_for()
    assert page.text_content("#login-error") == "Wrong user name or password."
    save_screenshot(page, "login")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}/queue")

    # -- the first task is shown and the next one is already leased (prefetch)
    wait_task(page, t_lost, "verify_mask")
    assert eventually(lambda: leased_to(settings, me) == {t_lost, t_verify_a})
    # the lease on the shown task is lost (expired and taken by someone else): the next heartbeat
    # (sent at once when the page becomes visible again) drops it and shows the next task
    with session_scope(settings.db_url) as s:
        s.get(HumanTask, t_lost).lease_owner_id = seeded["other_id"]
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    wait_task(page, t_verify_a, "verify_mask")
    assert "lease" in page.text_content("#toasts")

    # -- verify_mask: A, then R, whose first send fails with a 503 and is retried with the same client id
    assert page.text_content("#phrase") == PLAIN_PHRASE
    assert page.locator("#help-keys").is_visible() and "accept" in page.text_content("#help-keys")
    save_screenshot(page, "verify_mask")
    # zoom (wheel, Z to the mask, F to fit) and pan (space + drag) leave the task as it is
    fitted = page.text_content("#zoom-level")
    box = page.locator("#canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    page.locator("#zoom-level", has_not_text=fitted).wait_for()
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(cx + 80, cy + 40, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    page.keyboard.press("z")
    page.keyboard.press("f")
    page.locator("#zoom-level", has_text=fitted).wait_for()
    wait_task(page, t_verify_a, "verify_mask")
    page.keyboard.press("a")
    sent: list[str] = []

    def flaky(route: Any) -> None:
        sent.append(route.request.post_data_json["client_id"])
        if len(sent) == 1:
            route.fulfill(status=503, json={"detail": "try again"})
        else:
            route.continue_()

    page.route(f"**/api/v1/tasks/{t_verify_r}/verdict", flaky)
    wait_task(page, t_verify_r, "verify_mask")
    page.keyboard.press("r")

    # -- check_exhaustivity: C (shown at once, while the reject is still being retried)
    wait_task(page, t_exh, "check_exhaustivity")
    save_screenshot(page, "check_exhaustivity")
    page.keyboard.press("c")

    # -- correct: markup in model output stays text
    wait_task(page, t_correct, "correct")
    assert page.text_content("#phrase") == XSS_PHRASE
    assert page.locator("#phrase").is_visible()
    assert page.text_content("#caption") == XSS_CAPTION
    assert page.evaluate("window.__xss === undefined && window.__xss2 === undefined")
    assert page.locator("b, #side img, #side script").count() == 0
    wait_body(page, maskCount=2)

    # two clicks on the image: a positive one, then a negative one (shift+click); Enter keeps the mask
    box = page.locator("#canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(cx, cy)
    wait_body(page, segmented=1, working=1, timeout=60_000)  # the first click loads the tracker
    page.keyboard.down("Shift")
    page.mouse.click(cx + 40, cy + 20)
    page.keyboard.up("Shift")
    wait_body(page, segmented=2, working=1, segmenting=0)
    page.keyboard.press("Control+z")  # undo the negative point …
    wait_body(page, segmented=1, working=1, segmenting=0)
    page.keyboard.down("Shift")
    page.mouse.click(cx + 40, cy + 20)  # … and put it back
    page.keyboard.up("Shift")
    wait_body(page, segmented=2, working=1, segmenting=0)
    page.keyboard.press("Enter")
    wait_body(page, maskCount=3, working=0)
    # a brushed mask: nothing selected (Esc), brush (B), one stroke
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.mouse.move(cx - 200, cy - 100)
    page.mouse.down()
    page.mouse.move(cx - 120, cy - 60, steps=5)
    page.mouse.up()
    wait_body(page, maskCount=4)
    page.keyboard.press("e")  # the eraser takes a bite out of it
    page.mouse.move(cx - 200, cy - 100)
    page.mouse.down()
    page.mouse.move(cx - 180, cy - 90, steps=2)
    page.mouse.up()
    page.keyboard.press("p")
    page.keyboard.press("2")  # select candidate 2 …
    page.keyboard.press("Delete")  # … and delete it
    wait_body(page, maskCount=3)
    page.keyboard.press("1")
    page.keyboard.press("c")  # candidate 1 is a crowd
    assert "crowd ✓" in page.text_content("#mask-list")
    save_screenshot(page, "correct")
    page.keyboard.press("s")

    # -- skip: the last task goes back to the queue (not for this annotator) and the page says there is
    #    nothing left
    wait_task(page, t_skip, "verify_mask")
    page.click("#skip")
    wait_body(page, state="empty")
    assert "No task for you right now" in page.text_content("#stage-message")
    wait_body(page, pending=0)
    save_screenshot(page, "empty")

    def released() -> bool:  # sent once the page knows there is no other task
        with session_scope(settings.db_url) as s:
            task = s.get(HumanTask, t_skip)
            return task.state == TaskState.OPEN and task.lease_owner_id is None
    assert eventually(released)

    # -- the database has what the annotator did
    assert len(sent) == 2 and sent[0] == sent[1]  # the retry reused the client id
    with session_scope(settings.db_url) as s:
        verdicts = {v.task_id: v for v in s.scalars(select(Verdict).where(Verdict.task_id.in_(seeded["tasks"])))}
        assert {t: verdicts[t].label for t in verdicts} == {
            t_verify_a: "accept", t_verify_r: "reject", t_exh: "complete", t_correct: "corrected"}
        assert verdicts[t_verify_r].client_id == sent[0]
        for v in verdicts.values():
            assert v.user_id == me and v.duration_ms > 0 and v.started_at is not None, v
        assert s.get(Mask, seeded["masks"][t_verify_a]).state == MaskState.ACCEPTED
        assert s.get(Mask, seeded["masks"][t_verify_r]).state == MaskState.REJECTED
        assert s.get(ImageConcept, seeded["kite0"]).is_exhaustive is True
        # the correction: candidate 1 kept (as a crowd), candidate 2 deleted, a tracker mask and a brushed one added
        payload = verdicts[t_correct].payload
        kept, deleted = seeded["zebra0_masks"]
        assert payload["masks"] == [{"mask_id": kept, "tool": "existing", "is_crowd": True},
                                    {"mask_id": None, "tool": "tracker", "is_crowd": False},
                                    {"mask_id": None, "tool": "brush", "is_crowd": False}]
        assert len(payload["new_mask_ids"]) == 2
        for new in (s.get(Mask, i) for i in payload["new_mask_ids"]):
            assert new.pair_id == seeded["zebra0"] and new.state == MaskState.ACCEPTED and new.area > 0
            assert new.decided_by == Decider.HUMAN
        assert s.get(Mask, kept).state == MaskState.ACCEPTED and s.get(Mask, kept).is_crowd is True
        assert s.get(Mask, deleted).state == MaskState.REJECTED
        assert s.get(HumanTask, t_correct).state == TaskState.DONE
        assert t_skip not in verdicts and t_lost not in verdicts

    # -- the skip is remembered: the task stays open for everyone else but never comes back to this
    #    annotator; the empty page polls and shows new work as soon as there is some
    with session_scope(settings.db_url) as s:
        assert s.scalars(select(TaskSkip).where(TaskSkip.task_id == t_skip, TaskSkip.user_id == me)).one()
        fresh = s.scalars(select(HumanTask).where(
            HumanTask.state == TaskState.CANCELLED, HumanTask.kind == TaskKind.VERIFY_MASK,
            HumanTask.pair_id.not_in([seeded["kite0"], seeded["zebra0"], s.get(HumanTask, t_skip).pair_id]))
            .order_by(HumanTask.id)).first()
        fresh.state = TaskState.OPEN
        fresh_id = fresh.id
    wait_task(page, fresh_id, "verify_mask")
    assert page_errors(page) == []


def test_the_annotator_chooses_task_kinds_and_the_empty_queue_says_why(
        live_server: str, browser_page: Any, settings: Settings) -> None:  # noqa: F811
    """The kinds control lists what the annotator may take and is remembered; an empty queue names the
    open tasks that are not for them (here: ``queue.independent_review = pair``) and the kinds with
    work waiting, one of which they ask for with a click."""
    settings.queue.independent_review = "pair"
    with session_scope(settings.db_url) as s:
        create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=(PLAIN_PHRASE, "dog"), size=(320, 240),
                                 masks_per_pair=1, kinds=("verify_mask", "check_exhaustivity"))
        kite, dog = made["pairs"]
        tasks = {(t.pair_id, t.kind): t for t in s.scalars(select(HumanTask).where(HumanTask.id.in_(made["tasks"])))}
        tasks[(dog, TaskKind.VERIFY_MASK)].state = TaskState.CANCELLED  # only the kite's mask is to verify
        verify_kite = tasks[(kite, TaskKind.VERIFY_MASK)].id
        exh_kite, exh_dog = tasks[(kite, TaskKind.CHECK_EXHAUSTIVITY)].id, tasks[(dog, TaskKind.CHECK_EXHAUSTIVITY)].id
    page = browser_page
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}/queue")
    # every kind she may take is offered and chosen; she keeps mask verification only
    page.locator("#kind-choices input").nth(2).wait_for(state="attached")  # drawn after /auth/me (no eval: CSP)
    assert page.locator("#kind-choices input").evaluate_all("nodes => nodes.map(n => [n.value, n.checked])") == [
        ["verify_mask", True], ["check_exhaustivity", True], ["correct", True]]
    assert page.locator("#kind-choices label").all_text_contents() == [
        "Verify mask", "Check every instance", "Correct masks"]
    wait_task(page, verify_kite, "verify_mask")  # the first in the queue (the next one is leased in reserve)
    page.uncheck("#kind-check_exhaustivity")
    page.uncheck("#kind-correct")
    wait_body(page, kinds="verify_mask")
    page.click("#kind-verify_mask")  # the last one stays: something must be asked for
    assert page.is_checked("#kind-verify_mask") and "at least one" in page.text_content("#toasts")
    assert eventually(lambda: leased_to(settings, made_user(settings)) == {verify_kite})  # the reserve went back
    page.keyboard.press("a")
    # nothing left to verify: the exhaustivity task of the dog is waiting, the kite's is not hers
    wait_body(page, state="empty", pending=0)  # once the verdict is stored the page asks again
    waiting = page.locator('#waiting-list li[data-kind="check_exhaustivity"]')
    waiting.locator(".count", has_text="1 Check every instance").wait_for()
    assert "No task for you right now (verify mask)." in page.text_content("#stage-message")
    assert page.locator("#blocked-box").is_hidden()
    save_screenshot(page, "empty_other_kinds_waiting")
    waiting.locator("button", has_text="Add this kind").click()
    wait_task(page, exh_dog, "check_exhaustivity")
    wait_body(page, kinds="verify_mask,check_exhaustivity")
    page.keyboard.press("c")
    # now only the kite's exhaustivity task is open, and she verified that pair's mask
    wait_body(page, state="empty", pending=0)
    page.locator("#waiting-box").wait_for(state="hidden")
    blocked = page.locator('#blocked-list li[data-kind="check_exhaustivity"][data-code="same_pair"]')
    assert blocked.locator(".count").text_content() == "1 Check every instance"
    assert blocked.locator(".why").text_content() == ("you judged other tasks of these pairs "
                                                      "(queue.independent_review = pair)")
    message = page.text_content("#stage-message")
    assert "1 task of kind check every instance is open but not for you" in message
    assert page.locator("#empty-info").is_visible()
    save_screenshot(page, "empty_says_why")
    # the choice is remembered
    page.reload()
    wait_body(page, state="empty", kinds="verify_mask,check_exhaustivity")
    page.locator("#kind-choices input").nth(2).wait_for(state="attached")
    assert page.locator("#kind-choices input").evaluate_all("nodes => nodes.map(n => [n.value, n.checked])") == [
        ["verify_mask", True], ["check_exhaustivity", True], ["correct", False]]
    with session_scope(settings.db_url) as s:
        labels = {v.task_id: v.label for v in s.scalars(select(Verdict).where(Verdict.user_id.is_not(None)))}
        assert labels.get(verify_kite) == "accept" and labels.get(exh_dog) == "complete" and exh_kite not in labels
        assert s.get(HumanTask, exh_kite).state == TaskState.OPEN


def test_the_verdict_buttons_are_the_label_words_the_api_sends(
        live_server: str, browser_page: Any, settings: Settings) -> None:  # noqa: F811
    """The page builds a task's verdict buttons and keys from the ``labels`` the task carries, in their
    order: a word it has never seen gets a button, its first letter and its position number as keys,
    and a key press sends that very word."""
    with session_scope(settings.db_url) as s:
        create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        made = seed_review_items(s, settings.media_path, n_images=2, phrases=(PLAIN_PHRASE,), size=(320, 240),
                                 masks_per_pair=1, kinds=("verify_mask",))
    page = browser_page

    def relabel(route: Any) -> None:
        response = route.fetch()
        task = response.json()
        if task and task.get("id") is not None:
            task["labels"] = ["reject", "accept", "blurry"]
        route.fulfill(response=response, json=task)

    sent: list[tuple[int, str]] = []

    def verdict(route: Any) -> None:  # stored nowhere: only what the page sends counts here
        sent.append((int(route.request.url.split("/")[-2]), route.request.post_data_json["label"]))
        route.fulfill(status=200, json={"ok": True})

    page.route("**/api/v1/tasks/next", relabel)
    page.route("**/api/v1/tasks/*/verdict", verdict)
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    wait_body(page, state="ready", taskKind="verify_mask")
    first = int(page.get_attribute("body", "data-task-id"))
    buttons = page.locator("#actions button")
    assert buttons.evaluate_all("nodes => nodes.map(n => n.dataset.label)") == ["reject", "accept", "blurry"]
    assert buttons.locator("span").all_text_contents() == ["Reject", "Accept", "Blurry"]
    assert buttons.locator("kbd").all_text_contents() == ["R", "A", "B"]
    assert "Blurry" in page.text_content("#help-keys")
    page.keyboard.press("b")
    second = ({*made["tasks"]} - {first}).pop()
    wait_task(page, second, "verify_mask")
    page.keyboard.press("2")
    assert eventually(lambda: sent == [(first, "blurry"), (second, "accept")]), sent
    assert page_errors(page) == []
    page.unroute_all(behavior="ignoreErrors")  # the empty page keeps asking while the test ends


def made_user(settings: Settings, name: str = "annie") -> int:
    with session_scope(settings.db_url) as s:
        return s.scalars(select(User.id).where(User.username == name)).one()


def test_login_redirects_only_to_same_origin_paths(live_server: str, browser_page: Any) -> None:  # noqa: F811
    page = browser_page
    page.goto(f"{live_server}/login")
    wait_body(page, state="ready")
    cases = {"/queue": "/queue", "/queue?kinds=correct#x": "/queue?kinds=correct#x", "//evil.example/x": None,
             "/\\evil.example": None, "https://evil.example/": None, "javascript:alert(1)": None, "queue": None,
             "/login": None, "": None, "/\tqueue": None}
    got = {raw: page.evaluate("raw => safeNext(raw)", raw) for raw in cases}
    assert got == cases
