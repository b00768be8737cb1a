"""The page's click latency through the web API, as the video page does it: an annotator holds a
correction task of a video pair, ``POST /api/v1/video/tasks/{id}/track`` with a positive click, then
``GET /api/v1/video/track/{request_id}?after=SEQ`` until a frame other than the clicked one arrives.

The server is the real app (``dataengine.serve.create_app``) under uvicorn in a thread of this child
process, embedded (no broker): its track runner runs the request in a thread of the same process with
the profile's tiny video tracker (``ModelCache.video_tracker``), over the video's stored JPEG frames.
The database is a fresh PostgreSQL one when the server answers (``DATAENGINE_BENCH_PG``, default the
local one), else a SQLite file. The first click loads the tracker (reported apart, not in the medians).

Two ways of polling, alternated click by click:

* ``tight``: every 20 ms — the server-side latency (commit batching included);
* ``page``:  the page's schedule (web/static/queue/video/track.js: at once, then 250 ms doubling up to
  1 s while nothing arrives) — what a person sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import median
from bench.video_frames import render

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "tracker-clicks-7-frames"
POLL_MS, IDLE_MAX_MS, TIGHT_MS = 250, 1000, 20
CLICK_TIMEOUT_S = 300.0  # a request not finished by then is reported as timed out


def api_available() -> str | None:
    """None when the video API is in this checkout, else why the API run is skipped."""
    if importlib.util.find_spec("web.routers.video") is None:
        return "the video API (web/routers/video.py) is not in this checkout"
    return None


# ----------------------------------------------------------------------------- database and server
@contextlib.contextmanager
def database(tmp: Path) -> Iterator[tuple[str, str]]:
    """(URL, kind): a fresh migrated PostgreSQL database, or a SQLite file when PostgreSQL is not there."""
    from bench._common import BenchDatabases

    admin = os.environ.get("DATAENGINE_BENCH_PG", DEFAULT_PG)
    dbs = BenchDatabases(admin, tmp, prefix="de_bench_video")
    try:
        dbs.pg_version()
    except Exception:  # noqa: BLE001 - any failure to reach PostgreSQL: fall back to SQLite
        import migrations

        url = f"sqlite:///{tmp / 'bench.db'}"
        migrations.upgrade(url)
        yield url, "sqlite"
        return
    with dbs.database() as url:
        yield url, "postgresql"


class Server:
    """uvicorn in a daemon thread on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


# ----------------------------------------------------------------------------- the video and its task
def seed(settings: Any, frames: int, size: tuple[int, int]) -> int:
    """A user, the video's sampled frames in the media store, a video pair and its correction task; its id."""
    from engine.db.models import (
        Concept,
        HumanTask,
        ImageConcept,
        PairOrigin,
        Polarity,
        Role,
        TaskKind,
        TaskState,
        Video,
        VideoFrame,
    )
    from engine.db.session import session_scope
    from engine.services.users import create_user
    from engine.storage import LocalMediaStore

    store, (width, height), fps = LocalMediaStore(settings.media_path), size, 6.0
    keys = []
    for i in range(frames):
        buffer = io.BytesIO()
        render(i, width, height).save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        keys.append(store.put(hashlib.sha256(data).hexdigest(), "jpg", data))
    with session_scope(settings.db_url) as s:
        create_user(s, "bench", PASSWORD, Role.ANNOTATOR)
        video = Video(sha256=hashlib.sha256("".join(keys).encode()).hexdigest(), phash=0, phash_b0=0, phash_b1=0,
                      phash_b2=0, phash_b3=0, keyframe_phashes=[], width=width, height=height, fps=fps,
                      duration_s=frames / fps, source_frames=frames, sample_fps=fps, frame_count=frames,
                      container="mp4", codec="h264", byte_size=1000, storage_key=None)
        s.add(video)
        s.flush()
        s.add_all(VideoFrame(video_id=video.id, index=i, timestamp_s=i / fps, storage_key=k, width=width,
                             height=height) for i, k in enumerate(keys))
        concept = Concept(text="red circle")
        s.add(concept)
        s.flush()
        pair = ImageConcept(video_id=video.id, concept_id=concept.id, polarity=Polarity.UNKNOWN,
                            origin=PairOrigin.CAPTION)
        s.add(pair)
        s.flush()
        task = HumanTask(kind=TaskKind.CORRECT, pair_id=pair.id, state=TaskState.OPEN, priority=100, reason="bench")
        s.add(task)
        s.flush()
        return int(task.id)


def make_settings(tmp: Path, url: str, spec: dict[str, Any]) -> Any:
    from engine.settings import ModelSettings, Settings

    settings = Settings(data_dir=tmp / "data", database_url=url, media_root=tmp / "media",
                        models=ModelSettings(cache_dir=Path(spec["cache_dir"]) / "profile", device=spec["device"]))
    settings.video.window_frames = spec["window"]
    settings.queue.gold_rate = 0.0
    return settings


# ----------------------------------------------------------------------------- one click
def _poll(client: Any, request_id: int, after: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/video/track/{request_id}", params={"after": after})
    response.raise_for_status()
    return dict(response.json())


def one_click(client: Any, task_id: int, frame_index: int, point: tuple[float, float, int], way: str,
              timeout_s: float = CLICK_TIMEOUT_S) -> dict[str, Any]:
    """POST the click, then poll (``tight`` or as the ``page`` does) until the request ends; the times
    to the clicked frame and to the first other frame, from before the POST."""
    started = time.perf_counter()
    response = client.post(f"/api/v1/video/tasks/{task_id}/track",
                           json={"frame_index": frame_index, "points": [list(point)]})
    response.raise_for_status()
    accepted = response.json()
    request_id, after, idle, polls = accepted["request_id"], 0, 0, 0
    clicked = propagated = None
    state, frames_seen = accepted["state"], 0
    answer: dict[str, Any] = {}
    while state not in ("done", "failed"):
        if time.perf_counter() - started > timeout_s:
            state = "timed out"
            break
        answer = _poll(client, request_id, after)
        polls += 1
        now = time.perf_counter() - started
        for f in answer["frames"]:
            after = f["seq"]
            frames_seen += 1
            if f["frame_index"] == frame_index and clicked is None:
                clicked = now
            elif f["frame_index"] != frame_index and propagated is None:
                propagated = now
        state = answer["state"]
        idle = 0 if answer["frames"] else idle + 1
        if state not in ("done", "failed") and len(answer["frames"]) < 200:
            wait_ms = TIGHT_MS if way == "tight" else min(IDLE_MAX_MS, POLL_MS * 2 ** min(idle, 4))
            time.sleep(wait_ms / 1000)
    return {"way": way, "frame_index": frame_index, "window": accepted["window"], "state": state,
            "error": answer.get("error"), "clicked_frame_s": clicked, "first_propagated_s": propagated,
            "all_frames_s": time.perf_counter() - started, "frames_out": frames_seen, "polls": polls}


def _login(url: str) -> Any:
    import httpx

    client = httpx.Client(base_url=url, timeout=60)
    response = client.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def _clicks(client: Any, task_id: int, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from bench.video_child import _click_point

    width, height = spec["size"]
    leased = client.post("/api/v1/tasks/next", json={"kinds": ["correct"]})
    leased.raise_for_status()
    if leased.json().get("id") != task_id:
        raise RuntimeError(f"the correction task was not leased: {leased.text[:300]}")
    n, timeout_s = spec["frames"], spec.get("click_timeout_s", CLICK_TIMEOUT_S)
    cold = one_click(client, task_id, n // 2, _click_point(n // 2, width, height), "tight", timeout_s)
    runs: list[dict[str, Any]] = []
    if cold["state"] != "done":  # the tracker does not run here: the rest would wait as long
        return cold, runs
    for k in range(2 * spec["clicks"]):
        f = (k * 37 + n // 3) % n
        runs.append(one_click(client, task_id, f, _click_point(f, width, height), ("tight", "page")[k % 2],
                              timeout_s))
    return cold, runs


def api_click(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dataengine.serve import create_app

    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp_name, database(Path(tmp_name)) as (url, kind):
        tmp = Path(tmp_name)
        settings = make_settings(tmp, url, spec)
        task_id = seed(settings, spec["frames"], tuple(spec["size"]))
        with Server(create_app(settings)) as server:
            client = _login(server.url)
            try:
                cold, runs = _clicks(client, task_id, spec)
            finally:
                client.close()
    failed = [r for r in runs + [cold] if r["state"] != "done"]
    out: dict[str, Any] = {**spec, "database": kind, "cold_click": cold, "clicks_run": runs, "failed": len(failed)}
    for way in ("tight", "page"):
        mine = [r for r in runs if r["way"] == way]
        out[way] = {key: median(r[key] for r in mine)
                    for key in ("clicked_frame_s", "first_propagated_s", "all_frames_s")}
    if cold["state"] != "done":
        out["skipped"] = f"the first click's tracker request ended {cold['state']} ({cold['error'] or 'no error'})"
    out["median_clicked_frame_s"] = out["tight"]["clicked_frame_s"]
    out["median_first_propagated_s"] = out["tight"]["first_propagated_s"]
    out["median_all_frames_s"] = out["tight"]["all_frames_s"]
    return out
