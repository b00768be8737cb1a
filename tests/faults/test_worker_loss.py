"""Workers lost mid-batch: kill -9 of a worker's main process, of a pool child, and an item that
crashes its worker process every time. Each job ends done without anyone running mine again."""

from __future__ import annotations

import time

import psutil

from engine.db.models import ItemStatus
from tests.faults.conftest import FAULT_PIPELINE, Cluster, url_listing, write_images
from tests.faults.invariants import assert_job_sound
from tests.faults.processes import wait_until

N = 12


def test_main_process_killed_while_holding_a_batch(cluster: Cluster, http_server, recovery) -> None:
    listing, gate = url_listing(cluster.root, http_server, N, seed=1000)
    first = cluster.worker(concurrency=1)
    cluster.beat()  # no follow loop here: the beat task heals
    job_id = cluster.plan(listing, "main-killed")
    wait_until(lambda: gate.waiting, 30, "the first worker fetching its batch")
    cluster.worker(concurrency=1)  # the second worker, ready before the fault
    children = first.children()
    killed_at = time.monotonic()
    first.kill_main()
    for child in children:  # what is left of the worker dies with it (a lost machine)
        child.kill()
    gate.open()
    cluster.wait_done(job_id)
    recovery(killed_at)
    state = assert_job_sound(cluster.db_url, cluster.media_root, job_id)
    assert state.count(ItemStatus.DONE) == N and state.images == N


def test_pool_child_killed_mid_batch(cluster: Cluster, http_server, recovery) -> None:
    listing, gate = url_listing(cluster.root, http_server, N, seed=1100)
    worker = cluster.worker(concurrency=1)
    join = cluster.follow(listing, "child-killed", timeout_s=90)  # the foreground follow loop heals
    wait_until(lambda: gate.waiting, 30, "the worker fetching its batch")
    (child,) = worker.children()
    killed_at = time.monotonic()
    child.kill()
    gate.open()
    result = join()
    recovery(killed_at)
    assert result.finished and result.report.status == "done", cluster.logs()
    assert worker.alive(), "the worker's main process survives the loss of a child"
    assert _gone(child), "the killed child is not running"
    state = assert_job_sound(cluster.db_url, cluster.media_root, result.plan.job_id)
    assert state.count(ItemStatus.DONE) == N


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


POISON = b"FAULT-INJECTION-POISON"
SITECUSTOMIZE = '''
"""Test-only: an item whose bytes carry the marker kills its worker process (SIGSEGV) every time."""
import os
import signal

import engine.domain.images as _images

_real = _images.prepare_image


def prepare_image(data, *args, **kwargs):
    if MARKER in data:
        os.kill(os.getpid(), signal.SIGSEGV)
    return _real(data, *args, **kwargs)


_images.prepare_image = prepare_image
'''


def test_poison_item_fails_alone_after_bounded_crashes(cluster: Cluster, recovery) -> None:
    src = cluster.root / "src"
    write_images(src, N, seed=1200)
    poisoned = src / "img005.jpg"
    poisoned.write_bytes(poisoned.read_bytes() + POISON)  # trailing bytes: still a valid JPEG
    hook = cluster.root / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(f"MARKER = {POISON!r}\n" + SITECUSTOMIZE)
    worker = cluster.worker(queues="cpu", concurrency=1, PYTHONPATH=str(hook))
    began = time.monotonic()
    result = cluster.follow(src, "poison", timeout_s=120)()
    recovery(began)
    assert result.finished and result.report.status == "done", cluster.logs()
    state = assert_job_sound(cluster.db_url, cluster.media_root, result.plan.job_id)
    assert state.items["img005.jpg"] is ItemStatus.FAILED
    assert "died" in state.errors["img005.jpg"], state.errors
    assert state.count(ItemStatus.DONE) == N - 1, state.items  # the rest of its batch too
    crashes = worker.output().count("exited with 'signal 11 (SIGSEGV)'")
    # bounded: its batch of 4 crashed once, its half of 2 once, the item alone max_item_crashes (2) times
    assert crashes == 1 + 1 + FAULT_PIPELINE["max_item_crashes"], worker.output()[-3000:]
    assert worker.alive()
