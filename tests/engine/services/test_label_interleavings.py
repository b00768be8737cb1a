"""Property-based interleavings of everything that writes labels, checked against the invariants.

Hypothesis draws programs: rounds of actions by three annotators, the Label Studio bridge and the
router — leases (gold items mixed in), verdicts of every kind (multi-review on), corrections that keep
and draw masks, releases and skips, expired leases, Label Studio verdicts and their edits, router
re-runs with a new verifier version's scores. On PostgreSQL the actions of a round run at once in
threads, each in its own session and transaction; on SQLite (one writer) one after the other. After
every round `dataengine check`'s checker must find no violation, and every verdict acknowledged must
be stored exactly once.

Bounded (examples and steps) to keep the suite's time; `DATAENGINE_TEST_INTERLEAVINGS=N` runs more.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.db.models import (
    Calibration,
    GoldItem,
    HumanTask,
    ImageConcept,
    JobStatus,
    Mask,
    MiningJob,
    ModelKind,
    StageItem,
    StageStatus,
    TaskKind,
    User,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import dispose_engines, session_scope
from engine.domain.masks import encode_mask
from engine.repositories.model_versions import get_or_create
from engine.services import annotation, check, labelstudio, queue, route
from engine.settings import QueueSettings, RoutingSettings
from tests.conftest import create_pg_database, drop_pg_database
from tests.factories import seed_review_items

PHASES = (Phase.explicit, Phase.generate, Phase.shrink)  # no "explain": it re-runs failures for minutes
EXAMPLES = int(os.environ.get("DATAENGINE_TEST_INTERLEAVINGS", "30"))
PEOPLE = ("ann1", "ann2", "ann3")
ACTORS = PEOPLE + ("bridge", "router", "sweeper")
SERVER = "http://127.0.0.1:9"  # never contacted: the bridge's verdicts are stored as a pull stores them
QUEUE = QueueSettings(multi_review_rate=0.25, gold_rate=0.0, max_reviews=3)
_names = iter(range(10**9))

# ---------------------------------------------------------------------------- the programs
KINDS = st.sampled_from([None, "verify_mask", "check_exhaustivity", "correct"])
person_action = st.one_of(
    st.tuples(st.just("work"), KINDS, st.integers(0, 47)),  # lease, then judge at once
    st.tuples(st.just("work"), KINDS, st.integers(0, 47)),
    st.tuples(st.just("lease"), KINDS, st.booleans()),  # hold it while others work
    st.tuples(st.just("submit"), st.integers(0, 2), st.integers(0, 15)),
    st.tuples(st.just("release"), st.booleans(), st.just(0)),
)
actions = {
    **{p: person_action for p in PEOPLE},
    "bridge": st.one_of(st.tuples(st.just("claim"), st.sampled_from(list(TaskKind)), st.just(0)),
                        st.tuples(st.just("claim+pull"), st.sampled_from(list(TaskKind)), st.integers(0, 47)),
                        st.tuples(st.just("pull"), st.integers(0, 2), st.integers(0, 15)),
                        st.tuples(st.just("edit"), st.integers(0, 2), st.integers(0, 15))),
    "router": st.tuples(st.just("route"), st.integers(0, 2**16), st.booleans()),
    "sweeper": st.tuples(st.just("expire"), st.just(0), st.just(0)),
}
round_ = st.lists(st.sampled_from(ACTORS), min_size=1, max_size=4, unique=True).flatmap(
    lambda who: st.tuples(*[st.tuples(st.just(a), actions[a]) for a in who]))
programs = st.lists(round_, min_size=4, max_size=14)


# ---------------------------------------------------------------------------- the world
@dataclass
class World:
    url: str
    media: Path
    users: dict[str, int]
    images: list[int]
    job_id: int
    size: tuple[int, int]
    held: dict[str, list[int]] = field(default_factory=dict)  # actor → task ids leased, oldest first
    bridge_verdicts: dict[int, int] = field(default_factory=dict)  # task → latest bridge verdict id
    acknowledged: dict[str, int] = field(default_factory=dict)  # client id → verdict id answered
    seen: Counter[str] = field(default_factory=Counter)  # what the program did (hypothesis statistics)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build(url: str, media: Path) -> World:
    with session_scope(url) as s:
        made = seed_review_items(s, media, n_images=2, phrases=("dog", "cat"), masks_per_pair=2,
                                 kinds=("verify_mask", "check_exhaustivity"))
        users = {}
        for name in PEOPLE:
            user = User(username=name, role="annotator")
            s.add(user)
            s.flush()
            users[name] = user.id
        users["bridge"] = labelstudio.bridge_user(s).id
        users["ls-person"] = labelstudio.person(s, SERVER, 7).id  # who annotates in Label Studio
        for pair_id in made["pairs"][:2]:  # gold items: a mask answer and a pair answer
            mask_id = s.scalars(select(Mask.id).where(Mask.pair_id == pair_id).order_by(Mask.id)).first()
            s.add(GoldItem(kind=TaskKind.VERIFY_MASK, pair_id=pair_id, mask_id=mask_id, answer="accept"))
            s.add(GoldItem(kind=TaskKind.CHECK_EXHAUSTIVITY, pair_id=pair_id, answer="complete"))
        s.flush()
        queue.refill_gold(s)  # gold copies are made ahead of time (as creating an item over the API does)
        job = MiningJob(name=f"interleave-{uuid.uuid4().hex[:8]}", source_uri="-", source_kind="folder",
                        status=JobStatus.DONE)
        s.add(job)
        s.flush()
        for kind, model_kind, scope in ((TaskKind.VERIFY_MASK, ModelKind.MASK_VERIFIER, "all"),
                                        (TaskKind.CHECK_EXHAUSTIVITY, ModelKind.EXHAUSTIVITY_VERIFIER, "with_masks"),
                                        (TaskKind.CHECK_EXHAUSTIVITY, ModelKind.EXHAUSTIVITY_VERIFIER, "presence")):
            version = get_or_create(s, model_kind, f"interleave-{model_kind.value}", "1")
            s.add(Calibration(model_version_id=version.id, task_kind=kind, scope=scope, method="none",
                              calibrator=None, target_precision=0.95, accept_threshold=0.7, reject_threshold=0.3,
                              n_verdicts=100))
        return World(url, media, users, made["images"], job.id, (64, 96))


def ai_round(s, world: World, seed: int, new_version: bool) -> None:  # type: ignore[no-untyped-def]
    """A verifier (the same one again, or a new version) scores every mask and pair; the router routes."""
    rng = random.Random(seed)
    mv = get_or_create(s, ModelKind.MASK_VERIFIER, "interleave-mask_verifier", str(seed) if new_version else "1")
    ev = get_or_create(s, ModelKind.EXHAUSTIVITY_VERIFIER, "interleave-exhaustivity_verifier",
                       str(seed) if new_version else "1")
    for version, kind, scopes in ((mv, TaskKind.VERIFY_MASK, ("all",)),
                                  (ev, TaskKind.CHECK_EXHAUSTIVITY, ("with_masks", "presence"))):
        for scope in scopes:
            if s.scalars(select(Calibration.id).where(Calibration.model_version_id == version.id,
                                                      Calibration.scope == scope)).first() is None:
                s.add(Calibration(model_version_id=version.id, task_kind=kind, scope=scope, method="none",
                                  calibrator=None, target_precision=0.95, accept_threshold=0.7,
                                  reject_threshold=0.3, n_verdicts=100))
    pairs = s.execute(select(ImageConcept.id).where(ImageConcept.image_id.in_(world.images))).scalars().all()
    for mask_id, pair_id in s.execute(select(Mask.id, Mask.pair_id).where(Mask.pair_id.in_(pairs))):
        p = rng.choice([0.05, 0.5, 0.95])
        s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=pair_id, mask_id=mask_id,
                      model_version_id=mv.id, label="accept" if p > 0.5 else "reject",
                      probabilities={"accept": p, "reject": 1 - p}))
    for pair_id in pairs:
        p = rng.choice([0.05, 0.5, 0.95])
        surviving = s.scalar(select(func.count()).where(Mask.pair_id == pair_id, Mask.state != "rejected"))
        s.add(Verdict(kind=VerdictKind.EXHAUSTIVITY, source=VerdictSource.AI, pair_id=pair_id,
                      model_version_id=ev.id, label="accept" if p > 0.5 else "reject",
                      probabilities={"accept": p, "reject": 1 - p}, payload={"boxes": surviving}))
    s.flush()
    for image_id in world.images:
        item = s.scalars(select(StageItem).where(StageItem.job_id == world.job_id, StageItem.subject_id == image_id,
                                                 StageItem.stage == route.STAGE)).first()
        if item is None:
            s.add(StageItem(job_id=world.job_id, stage=route.STAGE, subject_id=image_id, status=StageStatus.PENDING))
        else:
            item.status = StageStatus.PENDING
    s.flush()
    route.route_batch(s, RoutingSettings(audit_rate=0.3, audit_seed=seed), world.job_id, world.images)


def verdict_body(s, task: HumanTask, label_index: int, choice: int, world: World) -> annotation.VerdictIn:  # type: ignore[no-untyped-def]
    labels = annotation.LABELS[task.kind]
    label = labels[label_index % len(labels)]
    masks: list[annotation.MaskIn] = []
    if task.kind == TaskKind.CORRECT and label == "corrected":
        own = s.scalars(select(Mask.id).where(Mask.pair_id == task.pair_id).order_by(Mask.id)).all()
        masks = [annotation.MaskIn(mask_id=m, tool="existing") for i, m in enumerate(own) if choice >> i & 1]
        if choice & 8 or not masks:  # draw a new one
            h, w = world.size
            grid = np.zeros((h, w), dtype=bool)
            grid[2 + choice: 12 + choice, 40: 60] = True
            masks.append(annotation.MaskIn(rle={"size": [h, w], "counts": encode_mask(grid).counts},
                                           is_crowd=bool(choice & 4)))
    return annotation.VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=900, masks=masks)


EXPECTED = (queue.LeaseLost, annotation.VerdictError, annotation.ClientIdConflict)


def act(world: World, actor: str, action: tuple) -> None:  # type: ignore[type-arg]
    """One action in its own session and transaction."""
    what, a, b = action
    with session_scope(world.url) as s:
        try:
            if actor == "router":
                ai_round(s, world, a, b)
            elif actor == "sweeper":
                queue.expire_leases(s, now=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=2))
            elif what in ("lease", "work"):
                gold = 0.5 if (b if what == "lease" else b >= 40) else 0.0
                task = queue.lease_for(s, world.users[actor], [TaskKind(a)] if a else list(TaskKind), lease_s=600,
                                       gold_rate=gold, rng=random.Random(f"{actor}{a}{b}"))
                if task is None:
                    return
                with world.lock:
                    world.held.setdefault(actor, []).append(task.id)
                if what == "work":
                    s.commit()
                    _judge(s, world, actor, "submit", b % 3, b // 3 % 16, task.id)
            elif what in ("claim", "claim+pull"):
                for out in labelstudio.claim(s, SERVER, a, 1, lease_s=3600):
                    labelstudio.record_links(s, SERVER, 1, [(out.task_id, out.task_id)])  # as a push does
                    with world.lock:
                        world.held.setdefault(actor, []).append(out.task_id)
                    if what == "claim+pull":
                        s.commit()
                        _judge(s, world, actor, "pull", b % 3, b // 3 % 16, out.task_id)
            elif what in ("submit", "pull", "edit", "release"):
                _judge(s, world, actor, what, a, b)
        except EXPECTED:
            s.rollback()


def _judge(s, world: World, actor: str, what: str, a: int, b: int,  # type: ignore[no-untyped-def]
           task_id: int | None = None) -> None:
    with world.lock:
        if task_id is not None:
            world.held[actor].remove(task_id)
        elif what == "edit":
            if not world.bridge_verdicts:
                return
            task_id = sorted(world.bridge_verdicts)[b % len(world.bridge_verdicts)]
        else:
            held = world.held.get(actor) or []
            if not held:
                return
            task_id = held.pop(0)
    task = s.get(HumanTask, task_id)
    if what == "release":
        queue.release(s, task_id, world.users[actor], skip=bool(a))
        return
    body = verdict_body(s, task, a, b, world)
    source = VerdictSource.LABEL_STUDIO if actor == "bridge" else VerdictSource.HUMAN
    author = world.users["ls-person" if actor == "bridge" else actor]
    supersedes = world.bridge_verdicts.get(task_id) if what == "edit" else None
    out = annotation.submit(s, task_id, author, body, QUEUE, source=source,
                            holder_id=world.users["bridge"] if actor == "bridge" else None, supersedes_id=supersedes)
    s.commit()
    with world.lock:
        world.seen[f"{task.kind.value} verdict" + (" (conflict)" if out.conflict else "")
                   + (" (gold)" if task.is_gold else "") + (" (edit)" if supersedes else "")] += 1
        world.acknowledged[body.client_id] = out.verdict_id
        if actor == "bridge" and not task.is_gold:
            world.bridge_verdicts[task_id] = out.verdict_id


def assert_clean(world: World, where: str) -> None:
    with session_scope(world.url) as s:
        report = check.check(s)
        assert report.ok, f"{where}: " + "; ".join(
            f"{code}: {[v.detail for v in vs[:3]]}" for code, vs in report.violated().items())
        stored = dict(s.execute(select(Verdict.client_id, Verdict.id).where(
            Verdict.client_id.in_(list(world.acknowledged)))).all()) if world.acknowledged else {}
        assert stored == world.acknowledged, f"{where}: acknowledged verdicts not stored once"


def run_program(world: World, program: list, concurrent: bool) -> None:  # type: ignore[type-arg]
    for n, round_actions in enumerate(program):
        if concurrent and len(round_actions) > 1:
            errors: list[BaseException] = []
            barrier = threading.Barrier(len(round_actions))

            def go(actor: str, action: tuple, barrier: threading.Barrier = barrier,  # type: ignore[type-arg]
                   errors: list[BaseException] = errors) -> None:
                try:
                    barrier.wait(timeout=30)
                    act(world, actor, action)
                except BaseException as exc:  # noqa: BLE001 - handed to the test
                    errors.append(exc)

            threads = [threading.Thread(target=go, args=pair) for pair in round_actions]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not any(t.is_alive() for t in threads), f"round {n}: an action hung"
            if errors:
                raise errors[0]
        else:
            for actor, action in round_actions:
                act(world, actor, action)
        assert_clean(world, f"after round {n} {round_actions}")
    for what in world.seen:
        event(what)


# ---------------------------------------------------------------------------- the properties
#: issue 14's first case: a verify task held while another person settles the pair, then judged late
CASE_1 = [(("ann1", ("lease", "verify_mask", False)),), (("ann2", ("work", "check_exhaustivity", 2)),),
          (("ann1", ("submit", 0, 0)), ("router", ("route", 7, True)))]


@pytest.mark.postgres
@example(program=CASE_1)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          phases=PHASES)
@given(program=programs)
def test_concurrent_interleavings_keep_every_invariant_on_postgresql(pg_template, tmp_path_factory, program):
    name = f"de_il_{os.getpid()}_{next(_names)}"
    url = create_pg_database(name, template=pg_template)
    try:
        world = build(url, tmp_path_factory.mktemp("media"))
        run_program(world, program, concurrent=True)
    finally:
        drop_pg_database(name)


@example(program=CASE_1)
@settings(max_examples=max(4, EXAMPLES // 2), deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True, phases=PHASES)
@given(program=programs)
def test_interleavings_keep_every_invariant_on_sqlite(sqlite_template, tmp_path_factory, program):
    folder = tmp_path_factory.mktemp("sqlite-il")
    shutil.copy(sqlite_template, folder / "db.sqlite")
    url = f"sqlite:///{folder / 'db.sqlite'}"
    try:
        world = build(url, folder / "media")
        run_program(world, program, concurrent=False)
    finally:
        dispose_engines()


def test_the_checker_sees_a_contradiction_the_model_would_refuse(fresh_pg_url, tmp_path):
    """The property above can fail: a state written around the decision model is a violation."""
    world = build(fresh_pg_url, tmp_path / "media")
    with session_scope(world.url) as s:
        pair = s.scalars(select(ImageConcept).order_by(ImageConcept.id)).first()
        pair.polarity, pair.is_exhaustive, pair.decided_by = "negative", True, "human"
        mask = s.scalars(select(Mask).where(Mask.pair_id == pair.id)).first()
        mask.state, mask.decided_by = "accepted", "human"
    with pytest.raises(AssertionError, match="P1"):
        assert_clean(world, "planted")
