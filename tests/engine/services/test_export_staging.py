"""A staging folder left by an export killed with SIGKILL is removed by the next export into the same
parent; one a running export holds (its flock) is kept. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.db.session import session_scope
from engine.services.export import (
    STAGING_LOCK,
    ExportFilters,
    commit_or_discard,
    export_dataset,
    remove_stale_staging,
)
from tests.factories import seed_labelled

ROOT = Path(__file__).resolve().parents[3]

# an export in its own process that stops for good after its first image (until it is killed)
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from engine.db.session import session_scope
    from engine.services.export import ExportFilters, export_dataset
    from engine.settings import Settings

    url, data_dir, media, out, ready = sys.argv[1:6]
    settings = Settings(database_url=url, data_dir=Path(data_dir), media_root=Path(media))

    def hang(n):
        Path(ready).write_text("writing")
        while True:
            time.sleep(1)

    with session_scope(settings.db_url) as s:
        export_dataset(s, settings, "coco", out, ExportFilters(val_percent=0), progress=hang)
""")


def run(settings, out):
    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, "coco", out, ExportFilters(val_percent=0))
        commit_or_discard(s, result)
    return result


def staging(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if ".export-" in p.name)


def start_hung_export(settings, out: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    ready = tmp_path / f"ready-{out.name}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, settings.db_url, str(settings.data_dir),
                              str(settings.media_path), str(out), str(ready)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, "the exporting child process ended before writing"
        assert time.monotonic() < deadline, "the exporting child never started writing"
        time.sleep(0.05)
    return child


@pytest.fixture
def ids(settings):
    with session_scope(settings.db_url) as s:
        return seed_labelled(s, settings.media_path)


def test_a_killed_exports_staging_is_removed_by_the_next_a_running_ones_kept(settings, ids, tmp_path):
    parent = tmp_path / "exports"
    killed = start_hung_export(settings, parent / "a", tmp_path)
    running = start_hung_export(settings, parent / "b", tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
        left = staging(parent)
        assert len(left) == 2 and all((p / STAGING_LOCK).exists() for p in left)
        stale = next(p for p in left if p.name.startswith(".a."))
        live = next(p for p in left if p.name.startswith(".b."))
        assert any(stale.iterdir())  # the killed export had written files

        run(settings, parent / "c")

        assert not stale.exists(), "the killed export's staging folder was left"
        assert live.exists() and (live / STAGING_LOCK).exists(), "a running export's folder was removed"
        assert sorted(p.name for p in (parent / "c").iterdir()) == [
            "instances_train.json", "instances_val.json", "manifest.json"]  # no lock file in the result
    finally:
        running.kill()
        running.wait(10)
    run(settings, parent / "a")  # the hung one is dead now: its folder goes too
    assert staging(parent) == []
    assert sorted(p.name for p in parent.iterdir()) == ["a", "c"]


def test_unlocked_and_replaced_leftovers(tmp_path):
    """Folders of code before the lock (no lock file) go after a while; a `.replaced-` folder goes
    once its export put the new one in place, and stays while that export's staging folder exists."""
    parent = tmp_path
    (parent / "out").mkdir()
    old = parent / ".out.export-aaaa"
    old.mkdir()
    (old / "instances_train.json").write_text("{}")
    fresh = parent / ".out.export-bbbb"
    fresh.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    done = parent / ".out.replaced-cccc"
    done.mkdir()
    pending = parent / ".out.replaced-bbbb"  # its staging folder .out.export-bbbb still exists
    pending.mkdir()
    unrelated = parent / ".cache"
    unrelated.mkdir()

    removed = remove_stale_staging(parent)

    assert sorted(p.name for p in removed) == [".out.export-aaaa", ".out.replaced-cccc"]
    assert sorted(p.name for p in parent.iterdir()) == [".cache", ".out.export-bbbb", ".out.replaced-bbbb", "out"]
