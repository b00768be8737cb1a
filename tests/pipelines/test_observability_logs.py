"""Stage batches in the logs (pipelines/execution.py + engine/logs.py): a real mine batch's records carry
its job id and stage, its begin and end lines its counts and seconds; the logging setup masks URL
passwords; the warm-up loads a worker's models through its model cache (tiny random-weight models)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from sqlalchemy import select

from engine import model_states
from engine.db.models import JobItem
from engine.db.session import session_scope
from engine.logs import configure_logging, log_context
from pipelines.context import TaskContext
from pipelines.dispatch import InProcessQueue
from pipelines.execution import run_stage
from pipelines.models import ModelCache
from pipelines.runner import plan_mine
from pipelines.warmup import warm_up
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo
from tests.log_capture import json_lines, json_logs  # noqa: F401 (a fixture)


def test_a_stage_batch_logs_its_job_and_stage(database_url: str, tmp_path: Path, json_logs: io.StringIO) -> None:
    settings = make_settings(database_url, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.jpg").write_bytes(jpeg_bytes(photo(40 + i, (64, 48))))
    job_id = plan_mine(settings, str(src), job_name="logged", until="mine").job_id
    with session_scope(settings.db_url) as s:
        ids = list(s.scalars(select(JobItem.id).where(JobItem.job_id == job_id).order_by(JobItem.id)))
    ctx = TaskContext.from_settings(settings)
    report = run_stage(ctx, InProcessQueue(ctx), "mine", job_id, ids)
    assert report["counts"].get("done") == 3

    mine = [r for r in json_lines(json_logs) if r["logger"] == "pipelines.execution"]
    begin = [r for r in mine if "begins" in r["message"]]
    end = [r for r in mine if "ends" in r["message"]]
    assert len(begin) == 1 and len(end) == 1
    for rec in (begin[0], end[0]):
        assert rec["job_id"] == job_id and rec["stage"] == "mine" and rec["items"] == 3 and rec["level"] == "INFO"
    assert end[0]["counts"]["done"] == 3 and end[0]["seconds"] >= 0
    # outside the batch the context is gone
    logging.getLogger("x").warning("after")
    assert "job_id" not in json_lines(json_logs)[-1]


def test_text_and_json_lines_mask_url_passwords() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    old_level, old_handlers = root.level, list(root.handlers)
    try:
        configure_logging("json", "INFO", stream=stream)
        with log_context(job_id=7):
            logging.getLogger("t").info("connecting to %s", "postgresql+psycopg://app:s3cr3t@db:5432/x")
        configure_logging("text", "INFO", stream=stream)
        logging.getLogger("t").info("broker amqp://guest:pw@rabbit//")
    finally:
        for handler in list(root.handlers):
            if handler not in old_handlers:
                root.removeHandler(handler)
        root.setLevel(old_level)
    first, second = stream.getvalue().splitlines()
    rec = json.loads(first)
    assert rec["message"] == "connecting to postgresql+psycopg://app:***@db:5432/x" and rec["job_id"] == 7
    assert "s3cr3t" not in first and "pw@" not in second and "amqp://guest:***@rabbit//" in second
    assert " INFO t: " in second


def test_warm_up_loads_the_model_through_the_cache(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)
    cache = ModelCache(settings)
    model_states.forget()
    thread = warm_up([("segmenter", cache)])
    assert thread is not None
    thread.join(timeout=120)
    assert "segmenter" in cache._models
    state = model_states.snapshot()["segmenter"]
    assert state.state == "ready" and state.seconds is not None
    assert cache.segmenter() is cache._models["segmenter"]  # the first click finds it loaded
    model_states.forget()
    assert warm_up([]) is None
