"""The one vocabulary (engine/domain/vocabulary.py): the database stores exactly its values, every
task kind has its label words, and the decision model, the router, ground truth, the sources and the
permissions reason in the same members."""

from __future__ import annotations

import enum
import json
import re

import orjson
import pytest
from sqlalchemy import Enum, text

from engine.db import models
from engine.db.base import Base
from engine.db.session import get_engine
from engine.domain import decisions as dm
from engine.domain import exports, ground_truth, permissions, routing, vocabulary
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    LABELS,
    CorrectionLabel,
    LabelSource,
    MaskLabel,
    PairLabel,
    Role,
    RouteAction,
    RouteMaskLabel,
    RoutePairLabel,
    SourceKind,
    TaskKind,
    VerdictSource,
    VerifierTask,
)
from engine.sources import SOURCE_KINDS, detect_kind
from engine.sources.coco import CocoSource
from engine.sources.folder import FolderSource
from engine.sources.frames import FrameFoldersSource
from engine.sources.urls import UrlListSource
from engine.sources.webdataset import WebDatasetSource

VOCABULARY = {obj for obj in vars(vocabulary).values()
              if isinstance(obj, type) and issubclass(obj, enum.StrEnum) and obj.__module__ == vocabulary.__name__}
ENUM_COLUMNS = [(table.name, column.name, column.type) for table in Base.metadata.sorted_tables
                for column in table.columns if isinstance(column.type, Enum)]


# ------------------------------------------------------------------------------ the database
def test_every_enum_column_stores_a_vocabulary_enum_by_value():
    assert ENUM_COLUMNS
    for table, column, kind in ENUM_COLUMNS:
        assert kind.enum_class in VOCABULARY, f"{table}.{column} stores {kind.enum_class}, not a vocabulary enum"
        assert kind.enums == [m.value for m in kind.enum_class], f"{table}.{column} stores names, not values"


def test_the_migrated_checks_admit_exactly_the_vocabulary(fresh_pg_url):
    """What the migrations let each enum column hold is the vocabulary's values, no more, no fewer."""
    with get_engine(fresh_pg_url).connect() as conn:
        checks = conn.execute(text(
            "SELECT t.relname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE c.contype = 'c'")).all()
    for table, column, kind in ENUM_COLUMNS:
        defs = [d for t, d in checks if t == table and re.search(rf"\b{column}\b", d) and "ANY" in d]
        assert len(defs) == 1, f"{table}.{column}: {defs}"
        assert set(re.findall(r"'([^']*)'", defs[0])) == {m.value for m in kind.enum_class}, f"{table}.{column}"


def test_the_orm_keeps_no_vocabulary_of_its_own():
    """The ORM imports the vocabulary's classes; the stored record of a routing decision has its own name."""
    assert models.TaskKind is TaskKind and models.Role is Role and models.RouteAction is RouteAction
    assert models.RouteRecord.__tablename__ == "route_decisions"
    assert not hasattr(models, "RouteDecision")
    assert not hasattr(routing.RouteDecision, "__tablename__")


# ------------------------------------------------------------------------------ label words
def test_every_task_kind_has_its_label_words():
    assert set(LABELS) == set(TaskKind)
    assert LABELS[TaskKind.VERIFY_MASK] == tuple(MaskLabel)
    assert LABELS[TaskKind.CHECK_EXHAUSTIVITY] == tuple(PairLabel)
    assert LABELS[TaskKind.CORRECT] == tuple(CorrectionLabel)
    for kind, words in LABELS.items():
        assert words and len(set(words)) == len(words), kind


def test_members_are_their_values_in_rows_json_and_forms():
    for cls in VOCABULARY:
        for member in cls:
            assert member == member.value and f"{member}" == member.value and cls(member.value) is member
    payload = {"kind": TaskKind.CHECK_EXHAUSTIVITY, "labels": list(LABELS[TaskKind.CHECK_EXHAUSTIVITY])}
    expected = {"kind": "check_exhaustivity", "labels": ["complete", "missing", "not_present"]}
    assert json.loads(json.dumps(payload)) == expected
    assert orjson.loads(orjson.dumps(payload)) == expected


# ------------------------------------------------------------------------------ one set of words
def test_the_decision_model_speaks_the_vocabulary():
    assert (dm.CANDIDATE, dm.ACCEPTED, dm.REJECTED) == tuple(vocabulary.MaskState)
    assert dm.HUMAN is vocabulary.Decider.HUMAN and dm.NEGATIVE is vocabulary.Polarity.NEGATIVE
    assert dm.MASK_LABELS == LABELS[TaskKind.VERIFY_MASK]
    assert dm.PAIR_LABELS == LABELS[TaskKind.CHECK_EXHAUSTIVITY]
    assert dm.CORRECTION_LABELS == LABELS[TaskKind.CORRECT]
    assert (dm.ROUTE_MASK_LABELS, dm.ROUTE_PAIR_LABELS) == (tuple(RouteMaskLabel), tuple(RoutePairLabel))


@pytest.mark.parametrize("label", list(MaskLabel))
def test_every_mask_word_is_a_judgement(label):
    facts = dm.PairFacts(1, dm.Claim.NONE, None, (dm.MaskFacts(2, dm.CANDIDATE),))
    outcome = dm.judge_mask(facts, 2, label, task_id=1)
    assert outcome.masks[2] == ((dm.ACCEPTED if label == MaskLabel.ACCEPT else dm.REJECTED), dm.HUMAN)


@pytest.mark.parametrize("label", list(PairLabel))
def test_every_pair_word_is_a_judgement(label):
    facts = dm.PairFacts(1, dm.Claim.NONE, None, (dm.MaskFacts(2, dm.CANDIDATE),))
    assert dm.judge_pair(facts, label, task_id=1).pair is not None


def test_the_router_writes_words_the_decision_model_takes():
    facts = dm.PairFacts(1, dm.Claim.NONE, None, (dm.MaskFacts(2, dm.CANDIDATE),))
    for label in (routing.LABEL_ACCEPT, routing.LABEL_REJECT):
        assert dm.route_mask(facts, 2, label).masks[2][1] is dm.AI
    for label in (routing.LABEL_EXHAUSTIVE, routing.LABEL_NEGATIVE):
        assert dm.route_pair(dm.PairFacts(1, dm.Claim.NONE, None), label).pair is not None
    assert routing.TASK_KINDS == tuple(TaskKind) and routing.Action is RouteAction
    decision = routing.route_mask(routing.MaskItem(2, 1, 0.99), routing.Thresholds(routing.KindThresholds(0.9)))
    assert decision.action is RouteAction.AUTO_ACCEPT and decision.auto_label is RouteMaskLabel.ACCEPT


def test_ground_truth_and_exports_speak_the_vocabulary():
    assert ground_truth.LABEL_SOURCES == tuple(LabelSource) == exports.LABEL_SOURCES
    assert set(ground_truth.VERIFIER_TASKS) == set(VerifierTask)
    assert set(ground_truth.VERIFIER_TASKS.values()) == {TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY}
    assert all(ground_truth.deciders(source) for source in LabelSource)
    for task in VerifierTask:
        kind = ground_truth.VERIFIER_TASKS[task]
        for label in LABELS[kind]:  # every word a person may give is a target for the verifier it trains
            assert ground_truth.verifier_target(kind, label, has_masks=True) in (0, 1)
            assert exports.verifier_label(task, label, has_masks=True, source=VerdictSource.HUMAN).target in (0, 1)
    assert set(HUMAN_SOURCES) == {VerdictSource.HUMAN, VerdictSource.LABEL_STUDIO}
    assert exports.ACCEPT_ANSWER == exports.MV_ANSWERS[0] == exports.EV_ANSWERS[0]  # both verifiers' "accept"


def test_every_role_has_its_permissions():
    assert set(permissions.ROLE_PERMISSIONS) == set(Role)
    assert permissions.allowed(Role.ADMIN, permissions.Permission.USERS)
    assert not permissions.allowed(Role.ANNOTATOR, permissions.Permission.USERS)


def test_the_sources_are_the_source_kinds(tmp_path):
    assert SOURCE_KINDS == tuple(SourceKind)
    sources = (FolderSource, UrlListSource, WebDatasetSource, CocoSource, FrameFoldersSource)
    assert sorted(s.kind for s in sources) == sorted(SourceKind)
    (tmp_path / "a.json").write_text("{}")
    assert detect_kind(str(tmp_path)) is SourceKind.FOLDER
    assert detect_kind(str(tmp_path / "a.json")) is SourceKind.COCO
    assert detect_kind(str(tmp_path / "shard-{0000..0003}.tar")) is SourceKind.WEBDATASET


def test_every_label_word_has_one_key_of_its_own() -> None:
    from engine.domain.vocabulary import LABEL_KEYS

    assert set(LABEL_KEYS) == set(LABELS)
    for kind, words in LABELS.items():
        keys = LABEL_KEYS[kind]
        assert set(keys) == set(words), kind
        assert all(len(k) == 1 and k.isalpha() and k.islower() for k in keys.values()), kind
        assert len(set(keys.values())) == len(keys), f"{kind}: two words share a key"

