"""The video task page in a real browser against the real server on PostgreSQL: a synthetic video
(tests/video_synth.py: a red circle and a blue square moving) sampled into stored frames, its pair's
masklets in the database (the shapes' ground truth), and three tasks. The annotator verifies the
circle's masklet with a key after scrubbing it with the arrow keys (the frame index and the frame's
image change; the masklet is drawn on the frame; the frames ahead are prefetched), says instances are
missing (check_exhaustivity, both masklets on the timeline), then corrects the pair: deletes the square's
masklet, cuts the circle's to a frame range and marks it crowd, clicks the square on a frame (the
tiny random-weight video tracker runs in the embedded runner: its masks are noise, so only their
arrival is checked) and sees the propagated frames arrive on the timeline, keeps it and submits.
Screenshots go to the test's tmp dir and test-artifacts; one copy to docs/img/video_page.png when it is
missing or DATAENGINE_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import select

from engine.db.models import (
    Concept,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    ModelKind,
    PairOrigin,
    Polarity,
    Role,
    TaskKind,
    TaskState,
    Verdict,
    Video,
    VideoFrame,
)
from engine.db.session import session_scope
from engine.domain.masks import encode_mask
from engine.repositories import masklets as masklets_repo
from engine.repositories.model_versions import get_or_create
from engine.services.users import create_user
from engine.settings import ModelSettings, Settings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.video_synth import DEFAULT_SHAPES, frames, shape_boxes
from tests.web.live import REPO, browser_page, live_server, save_screenshot  # noqa: F401 (fixtures)
from tests.web.test_e2e_queue import PASSWORD, wait_body, wait_task

W, H, N, FPS = 160, 120, 24, 6.0
SQUARE_FRAMES = (0, 15)  # the square's masklet covers these frames (the circle's: all of them)
DOC_SHOT = REPO / "docs" / "img" / "video_page.png"


@pytest.fixture
def settings(fresh_pg_url: str, tmp_path: Path, models_cache_dir: Path) -> Settings:
    s = make_settings(fresh_pg_url, tmp_path, models=ModelSettings(cache_dir=models_cache_dir, device="cpu"))
    s.queue.gold_rate = 0.0
    s.queue.multi_review_rate = 0.0
    s.video.window_frames = 12  # a click propagates over 12 frames around it: quick on the CPU
    return s


def shape_mask(shape: int, index: int) -> np.ndarray:
    """The shape's pixels on frame ``index``, drawn as tests/video_synth.py draws it."""
    kind = DEFAULT_SHAPES[shape].kind
    image = PILImage.new("L", (W, H), 0)
    draw = ImageDraw.Draw(image)
    (draw.ellipse if kind == "circle" else draw.rectangle)(shape_boxes(index, W, H)[shape], fill=1)
    return np.asarray(image) > 0


def seed_video(settings: Settings) -> dict[str, Any]:
    """The video, its sampled frames in the media store, the pair "red circle" with two masklets (the
    circle on every frame, the square on frames 0–15) and three open tasks in this order: verify the
    circle's masklet, check the pair's exhaustivity, correct the pair."""
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        create_user(s, "annie", PASSWORD, Role.ANNOTATOR)
        keys = []
        for image in frames(N, W, H):
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=92)
            data = buf.getvalue()
            keys.append(store.put(hashlib.sha256(data).hexdigest(), "jpg", data))
        video = Video(sha256=hashlib.sha256("".join(keys).encode()).hexdigest(), phash=0, phash_b0=0, phash_b1=0,
                      phash_b2=0, phash_b3=0, keyframe_phashes=[], width=W, height=H, fps=12.0, duration_s=N / FPS,
                      source_frames=2 * N, sample_fps=FPS, frame_count=N, container="mp4", codec="h264",
                      byte_size=1000, storage_key=None)
        s.add(video)
        s.flush()
        s.add_all(VideoFrame(video_id=video.id, index=i, timestamp_s=i / FPS, storage_key=k, width=W, height=H)
                  for i, k in enumerate(keys))
        concept = Concept(text="red circle")
        s.add(concept)
        s.flush()
        pair = ImageConcept(video_id=video.id, concept_id=concept.id, polarity=Polarity.UNKNOWN,
                            origin=PairOrigin.CAPTION)
        s.add(pair)
        s.flush()
        proposer = get_or_create(s, ModelKind.PROPOSER, "test/sam3-video", "1")
        ids = [masklet(s, pair.id, proposer.id, shape, span) for shape, span in ((0, (0, N - 1)), (1, SQUARE_FRAMES))]
        verify = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair.id, mask_id=ids[0], state=TaskState.OPEN,
                           priority=100, reason="test")
        exhaustive = HumanTask(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=pair.id, state=TaskState.OPEN, priority=95,
                               reason="test")
        correct = HumanTask(kind=TaskKind.CORRECT, pair_id=pair.id, state=TaskState.OPEN, priority=90, reason="test")
        s.add_all([verify, exhaustive, correct])
        s.flush()
        return {"video": video.id, "pair": pair.id, "circle": ids[0], "square": ids[1], "verify": verify.id,
                "exhaustive": exhaustive.id, "correct": correct.id}


def masklet(s: Any, pair_id: int, version_id: int, shape: int, span: tuple[int, int]) -> int:
    first, last = span
    rles = {i: encode_mask(shape_mask(shape, i)) for i in range(first, last + 1)}
    row = masklets_repo.open_masklet(s, pair_id, version_id, first, rles[first], 0.9)
    masklets_repo.add_frames(s, [masklets_repo.frame_row(row.id, i, r, 0.9) for i, r in rles.items()])
    masklets_repo.close_masklet(row, max(rles.values(), key=lambda r: r.area), first, last, 0.9)
    return row.id


# ------------------------------------------------------------------------------ page helpers
def to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Image pixel → page point, for the fitted view (viewer.js: geometry.fitView, 16 px padding)."""
    box = page.locator("#canvas").bounding_box()
    scale = min((box["width"] - 32) / W, (box["height"] - 32) / H)
    return (box["x"] + (box["width"] - W * scale) / 2 + x * scale,
            box["y"] + (box["height"] - H * scale) / 2 + y * scale)


def settle(page: Any) -> None:
    """Two animation frames: the viewer draws on the next one."""
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def show_frame(page: Any, index: int) -> None:
    wait_body(page, frame=index, frameShown=index)
    settle(page)


def pixel(page: Any, x: float, y: float) -> list[int]:
    """The canvas's RGB at an image pixel."""
    px, py = to_screen(page, x, y)
    box = page.locator("#canvas").bounding_box()
    read = ("([x, y]) => { const c = document.getElementById('canvas'); const d = devicePixelRatio; return Array.from("
            "c.getContext('2d').getImageData(Math.round(x * d), Math.round(y * d), 1, 1).data).slice(0, 3); }")
    return page.evaluate(read, [px - box["x"], py - box["y"]])


def centre(shape: int, index: int) -> tuple[float, float]:
    x0, y0, x1, y1 = shape_boxes(index, W, H)[shape]
    return (x0 + x1) / 2, (y0 + y1) / 2


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    save_screenshot(page, name)
    return path


# ------------------------------------------------------------------------------ the test
def test_annotator_verifies_scrubs_and_corrects_a_video(live_server: str, browser_page: Any,  # noqa: F811
                                                        settings: Settings, tmp_path: Path) -> None:
    made = seed_video(settings)
    page = browser_page
    asked: list[int] = []  # the frames the page loads
    frame_path = re.compile(rf"/api/v1/video/{made['video']}/frames/(\d+)$")
    page.on("request", lambda r: asked.append(int(m.group(1))) if (m := frame_path.search(r.url)) else None)
    page.goto(f"{live_server}/login?next=%2Fqueue")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}/queue")

    # -- verify_mask on a video: the player, the timeline (one row: the masklet), the masklet on the frame
    wait_task(page, made["verify"], "verify_mask")
    assert page.locator("#video-bar").is_visible()
    assert page.get_attribute("#video-slider", "aria-label") == "Frame"
    assert page.get_attribute("#video-slider", "max") == str(N - 1)
    assert page.locator("#video-timeline .tl-row").count() == 1
    show_frame(page, 0)
    # the frames ahead are loaded before they are asked for, and not the whole video
    for _ in range(200):  # the page's events reach Python while Playwright waits (not in time.sleep)
        if set(range(17)) <= set(asked):
            break
        page.wait_for_timeout(50)
    assert set(range(17)) <= set(asked), asked
    assert max(asked) == 16
    cx, cy = centre(0, 0)
    masked = pixel(page, cx, cy)
    page.keyboard.press("v")  # masks off: the frame's own pixel (the red circle) …
    settle(page)
    bare = pixel(page, cx, cy)
    assert bare[0] > 150 and bare[1] < 90 and bare[2] < 90, bare
    assert masked != bare and masked[1] > bare[1] + 40, (masked, bare)  # … under the yellow masklet
    frame0 = page.locator("#canvas").screenshot()

    # scrub: arrows frame by frame, Shift ±10, End / Home, the image follows
    page.keyboard.press("ArrowRight")
    show_frame(page, 1)
    assert page.locator("#canvas").screenshot() != frame0
    assert page.text_content("#video-frame").startswith("frame 2 / 24")
    page.keyboard.press("Shift+ArrowRight")
    show_frame(page, 11)
    assert page.get_attribute("#video-slider", "aria-valuetext").startswith("frame 12 / 24")
    page.keyboard.press("End")
    show_frame(page, N - 1)
    page.keyboard.press("ArrowRight")  # stays on the last frame
    show_frame(page, N - 1)
    page.keyboard.press("Home")
    show_frame(page, 0)
    assert page.locator("#canvas").screenshot() == frame0  # the same frame, the same picture
    page.keyboard.press("v")
    page.keyboard.press(" ")  # play …
    wait_body(page, playing=1)
    assert page.get_attribute("#video-play", "aria-pressed") == "true"
    page.locator("body:not([data-frame='0'])").wait_for()
    page.keyboard.press(" ")  # … and pause
    wait_body(page, playing=0)
    page.keyboard.press("Home")
    show_frame(page, 0)
    shot(page, tmp_path, "video_verify")
    page.keyboard.press("a")

    # -- check_exhaustivity: every masklet of the pair on the timeline; M (instances missing)
    wait_task(page, made["exhaustive"], "check_exhaustivity")
    assert page.locator("#video-timeline .tl-row").count() == 2
    assert [b.text_content() for b in page.locator("#actions button kbd").all()] == ["C", "M", "N"]
    page.keyboard.press("m")

    # -- correct: both masklets listed and on the timeline
    wait_task(page, made["correct"], "correct")
    wait_body(page, maskCount=2)
    assert page.locator("#video-timeline .tl-row").count() == 2
    assert page.locator("#editor .tools").is_hidden()  # no brush on video
    page.keyboard.press("2")  # the square …
    page.keyboard.press("Delete")  # … is deleted
    wait_body(page, maskCount=1)
    page.keyboard.press("1")  # the circle: cut to frames 2 … 14, a crowd
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    show_frame(page, 2)
    page.keyboard.press("[")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    show_frame(page, 14)
    page.keyboard.press("]")
    page.keyboard.press("c")
    assert "cut to 3–15" in page.text_content("#mask-list") and "crowd ✓" in page.text_content("#mask-list")
    assert page.locator("#video-timeline .tl-cut").count() == 2

    # a click on the square on frame 8 adds an object: its frame at once, then the propagated frames
    page.keyboard.press("Escape")  # nothing selected: a new object
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    show_frame(page, 11)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    show_frame(page, 8)
    page.mouse.click(*to_screen(page, *centre(1, 8)))
    wait_body(page, working=1, trackFirst=1, timeout=90_000)  # the first click loads the tracker
    wait_body(page, trackState="done", trackArrived=13, timeout=60_000)  # window_frames 12 around frame 8: 2 … 14
    assert int(page.get_attribute("body", "data-track-frames")) > 0  # frames with a mask (noise, but there)
    assert page.locator("#video-timeline .tl-row.working .tl-bar").count() > 0  # the timeline filled in
    assert "done" in page.text_content("#working-info")
    shot(page, tmp_path, "video_correct")
    if not DOC_SHOT.exists() or os.environ.get("DATAENGINE_DOCS_SCREENSHOTS") == "1":  # else the tree changes
        DOC_SHOT.parent.mkdir(parents=True, exist_ok=True)                               # on every run
        shutil.copyfile(tmp_path / "video_correct.png", DOC_SHOT)
    page.keyboard.press("Enter")  # keep it
    wait_body(page, maskCount=2, working=0)
    page.keyboard.press("s")
    wait_body(page, state="empty", pending=0, timeout=20_000)

    # -- what the annotator did is stored through the decision model
    with session_scope(settings.db_url) as s:
        verdicts = {v.task_id: v for v in s.scalars(select(Verdict).where(Verdict.task_id.in_(
            [made["verify"], made["exhaustive"], made["correct"]])))}
        assert verdicts[made["verify"]].label == "accept"
        assert verdicts[made["exhaustive"]].label == "missing"
        assert verdicts[made["correct"]].label == "corrected"
        sent = verdicts[made["correct"]].payload["masks"]
        assert sent[0]["mask_id"] == made["circle"] and sent[0]["frame_range"] == [2, 14] and sent[0]["is_crowd"]
        assert sent[1]["track_id"] is not None and sent[1]["tool"] == "tracker" and not sent[1]["is_crowd"]
        assert len(sent) == 2
        new = s.scalars(select(Mask).where(Mask.pair_id == made["pair"], Mask.state == MaskState.ACCEPTED)).all()
        assert len(new) == 2 and all(m.first_frame is not None for m in new)
        assert s.get(Mask, made["square"]).state == MaskState.REJECTED
        assert s.get(HumanTask, made["correct"]).state == TaskState.DONE
        for v in verdicts.values():
            assert v.duration_ms > 0 and v.started_at is not None
