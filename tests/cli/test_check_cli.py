"""``dataengine check``: prints every violation with its ids, exits 1 while any is left, repairs the
unambiguous ones with --repair."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dataengine.cli.main import cli
from engine.db.base import utcnow
from engine.db.models import Decider, HumanTask, ImageConcept, Mask, Polarity, Role, TaskState, User
from engine.db.session import session_scope
from tests.factories import seed_review_items


@pytest.fixture
def env(cli_database, tmp_path):
    database_url = cli_database
    with session_scope(database_url) as s:
        made = seed_review_items(s, tmp_path / "media", n_images=1, phrases=("dog", "cat"))
        user = User(username="cli-check", role=Role.ANNOTATOR)
        s.add(user)
        s.flush()
        made["user"] = [user.id]
        s.commit()
    return database_url, made


def invoke(*args):
    return CliRunner().invoke(cli, ["check", *args], catch_exceptions=False)


def plant(url, made, *, label: bool = True, lease: bool = True, masks: bool = False):
    """A repairable T1 (an open task still owned), optionally an M1 on both masks of a pair and a P2
    (a negative pair without a claim) that needs a person."""
    with session_scope(url) as s:
        if lease:
            task = s.get(HumanTask, made["tasks"][0])
            task.lease_owner_id, task.lease_expires_at = made["user"][0], utcnow()
        if label:
            s.get(ImageConcept, made["pairs"][1]).polarity = Polarity.NEGATIVE
        if masks:
            for mask_id in made["masks"][:2]:
                s.get(Mask, mask_id).decided_by = Decider.HUMAN
        s.commit()


def test_clean_database_exits_zero(env):
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "check: no violations (16 invariants" in result.output
    assert "T5  ok  at most one open or leased non-gold task per (kind, pair, mask)." in result.output


def test_violations_are_printed_with_ids_and_exit_one(env):
    url, made = env
    plant(url, made, masks=True)
    result = invoke()
    assert result.exit_code == 1, result.output
    out = result.output
    task, user, pair = made["tasks"][0], made["user"][0], made["pairs"][1]
    assert "T1  1 violation(s), repairable with --repair: a task has at most one live lease" in out
    assert f"    task {task} · user {user}: open but still carries owner={user}" in out
    assert "P2  1 violation(s), needs a person: a negative pair carries a decided negative claim" in out
    assert f"    pair {pair}: negative without a decided negative claim" in out
    m0, m1 = made["masks"][:2]
    assert f"    mask {m0} · pair {made['pairs'][0]}: candidate with decided_by=human" in out
    assert ("check: 4 violation(s) of 3 invariant(s) (M1 2, P2 1, T1 1)" in out
            and "repairable with --repair: M1, T1; need a person: P2" in out)

    limited = invoke("--limit", "1")
    assert limited.exit_code == 1 and "M1  2 violation(s) (1 listed)" in limited.output
    assert f"mask {m0} ·" in limited.output and f"mask {m1} ·" not in limited.output

    data = json.loads(invoke("--json").output)
    assert data["ok"] is False and data["violations"] == 4
    by_code = {i["code"]: i for i in data["invariants"]}
    assert by_code["T1"]["violations"] == [{"code": "T1", "ids": {"task": task, "user": user},
                                            "detail": by_code["T1"]["violations"][0]["detail"]}]
    assert by_code["P2"]["count"] == 1 and by_code["P2"]["repair"] is None and by_code["P1"]["count"] == 0


def test_repair_fixes_what_it_can_and_reports_the_rest(env):
    url, made = env
    plant(url, made, masks=True)
    result = invoke("--repair")
    assert result.exit_code == 1, result.output  # P2 is left for a person
    task = made["tasks"][0]
    assert f"repaired T1  task {task} · user {made['user'][0]}: open (not leased): lease owner and expiry cleared" \
        in result.output
    assert f"repaired M1  mask {made['masks'][0]} · pair {made['pairs'][0]}: candidate: decided_by cleared" \
        in result.output
    assert "3 repair(s) committed; what is left:" in result.output
    assert "T1  ok" in result.output and "M1  ok" in result.output
    assert "check: 1 violation(s) of 1 invariant(s) (P2 1)" in result.output and "need a person: P2" in result.output
    with session_scope(url) as s:
        row = s.execute(select(HumanTask.state, HumanTask.lease_owner_id, HumanTask.lease_expires_at)
                        .where(HumanTask.id == task)).one()
    assert tuple(row) == (TaskState.OPEN, None, None)
    again = json.loads(invoke("--repair", "--json").output)
    assert again["repairs"] == [] and again["violations"] == 1


def test_repair_of_everything_exits_zero(env):
    url, made = env
    plant(url, made, label=False)
    assert invoke().exit_code == 1
    result = invoke("--repair")
    assert result.exit_code == 0, result.output
    assert "1 repair(s) committed" in result.output and "check: no violations" in result.output
    assert invoke().exit_code == 0
