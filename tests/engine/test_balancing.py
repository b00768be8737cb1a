"""Concept balancing: the policy, the per-concept statistics against hand counts, and the propose
stage leaving a saturated concept out while a rare one keeps flowing."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from engine.balancing_settings import BalancingSettings
from engine.db.models import (
    Concept,
    Decider,
    Image,
    ImageConcept,
    MaskState,
    ModelKind,
    PairOrigin,
    Polarity,
    Role,
    User,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain.balancing import ConceptStats, explored, is_saturated, saturated_concepts, skip_pair
from engine.domain.masks import encode_mask
from engine.repositories.labels import add_mask
from engine.repositories.model_versions import get_or_create
from engine.services import concept_stats, propose
from engine.settings import ProposeSettings
from tests.engine.services.test_model_stages import _to_propose, mined, rows  # noqa: F401
from tests.fakes import FakeProposer

STRICT = BalancingSettings(min_accepted_masks=3, min_agreement=0.9, min_human_decided=3, explore_rate=0.0)


# ------------------------------------------------------------------------------- the policy
def test_policy_needs_masks_agreement_and_human_decisions():
    full = ConceptStats(1, "cat", accepted_masks=3, human_decided=3, compared=10, agreed=9)
    assert is_saturated(full, STRICT)
    assert not is_saturated(ConceptStats(2, "rare", accepted_masks=2, human_decided=3, compared=10, agreed=10), STRICT)
    assert not is_saturated(ConceptStats(3, "hard", accepted_masks=9, human_decided=9, compared=10, agreed=8), STRICT)
    assert not is_saturated(ConceptStats(4, "unjudged", accepted_masks=9, human_decided=2, compared=9, agreed=9),
                            STRICT)
    assert not is_saturated(ConceptStats(5, "no verdicts", accepted_masks=9, human_decided=9), STRICT)
    assert saturated_concepts([full], STRICT) == {1}
    assert saturated_concepts([full], STRICT.model_copy(update={"enabled": False})) == frozenset()
    defaults = BalancingSettings()
    assert (defaults.min_accepted_masks, defaults.min_agreement, defaults.explore_rate) == (1000, 0.95, 0.05)


def test_explore_rate_keeps_a_deterministic_share():
    settings = BalancingSettings(explore_rate=0.05, seed=7)
    first = [p for p in range(20_000) if explored(p, settings)]
    assert first == [p for p in range(20_000) if explored(p, settings)]  # the same pairs every run
    assert 0.04 < len(first) / 20_000 < 0.06
    other_seed = {p for p in range(20_000) if explored(p, settings.model_copy(update={"seed": 8}))}
    assert other_seed != set(first)
    assert not any(explored(p, settings.model_copy(update={"explore_rate": 0.0})) for p in range(1000))
    assert all(explored(p, settings.model_copy(update={"explore_rate": 1.0})) for p in range(1000))
    assert skip_pair(first[0] + 1, 1, frozenset({1}), settings) != explored(first[0] + 1, settings)
    assert not skip_pair(first[0], 1, frozenset({1}), settings)  # explored: proposed anyway
    assert not skip_pair(3, 2, frozenset({1}), settings)  # not saturated


# ------------------------------------------------------------------------- planted history
class History:
    """Labelled pairs of ``text`` on fresh images: ``labels`` gives per mask (state, AI MV label,
    human MV label or None)."""

    def __init__(self, s, text: str, labels: list[tuple[MaskState, str | None, str | None]], *,
                 negatives: int = 0) -> None:
        concept = s.scalar(select(Concept).where(Concept.text == text)) or Concept(text=text)
        user = s.scalar(select(User).where(User.username == "bal-judge")) or User(username="bal-judge",
                                                                                  role=Role.ANNOTATOR)
        s.add_all([concept, user])
        s.flush()
        proposer = get_or_create(s, ModelKind.PROPOSER, "bal-proposer", "1").id
        verifier = get_or_create(s, ModelKind.MASK_VERIFIER, "bal-mv", "1").id
        grid = np.zeros((16, 16), dtype=bool)
        grid[2:9, 3:12] = True
        pair = self._pair(s, concept.id, Polarity.POSITIVE)
        for state, ai, human in labels:
            mask = add_mask(s, pair.id, proposer, encode_mask(grid), score=0.9)
            if state is not MaskState.CANDIDATE:
                mask.state, mask.decided_by = state, Decider.HUMAN if human else Decider.AI
            s.flush()
            if ai:
                s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=pair.id, mask_id=mask.id,
                              model_version_id=verifier, label=ai))
            if human:
                s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=pair.id, mask_id=mask.id,
                              user_id=user.id, label=human))
        for _ in range(negatives):
            self._pair(s, concept.id, Polarity.NEGATIVE, claim=True)
        s.flush()
        self.concept_id = concept.id

    @staticmethod
    def _pair(s, concept_id: int, polarity: Polarity, claim: bool | None = None) -> ImageConcept:
        n = s.query(Image).count()
        image = Image(sha256=f"ba{n:062x}", phash=0, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0, width=16,
                      height=16, format="png", byte_size=1, storage_key=f"bal/{n}.png")
        s.add(image)
        s.flush()
        pair = ImageConcept(image_id=image.id, concept_id=concept_id, polarity=polarity, origin=PairOrigin.CAPTION,
                            is_exhaustive=claim, decided_by=None if claim is None else Decider.HUMAN)
        s.add(pair)
        s.flush()
        return pair


A, R, C = MaskState.ACCEPTED, MaskState.REJECTED, MaskState.CANDIDATE


def test_stats_match_hand_counts(settings):
    with session_scope(settings.db_url) as s:
        cat = History(s, "bal cat", [(A, "accept", "accept"), (A, "accept", "accept"), (R, "accept", "reject"),
                                     (A, None, None), (C, None, None)], negatives=2).concept_id
        dog = History(s, "bal dog", [(A, "reject", "accept")]).concept_id
    with session_scope(settings.db_url) as s:
        stats = {c.concept_id: c for c in concept_stats.concept_stats(s)}
        human = {c.concept_id: c for c in concept_stats.concept_stats(s, label_source="human")}
    c = stats[cat]
    # accepted: 3 (two by people, one by the AI); decided 4; people decided 3 masks + 2 negative pairs
    assert (c.accepted_masks, c.positive_pairs, c.negative_pairs, c.decided_masks) == (3, 1, 2, 4)
    assert c.human_decided == 5 and c.model_acceptance == 0.75
    assert (c.compared, c.agreed) == (3, 2)  # the rejected mask: the AI said accept, the person reject
    assert human[cat].accepted_masks == 2  # the AI's acceptance is no human ground truth
    d = stats[dog]
    assert (d.accepted_masks, d.compared, d.agreed, d.agreement) == (1, 1, 0, 0.0)
    assert list(stats) == [cat, dog]  # most accepted masks first


def test_propose_skips_a_saturated_concept_and_not_a_rare_one(settings, mined):  # noqa: F811
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:2], store, {(80, 60): "a good vase and a bad lamp", (64, 48): "a good vase"})
    with session_scope(settings.db_url) as s:
        History(s, "good vase", [(A, "accept", "accept")] * 3)  # saturated under STRICT
        History(s, "bad lamp", [(A, "accept", "accept")] * 2)  # rare: two masks only
    proposer = FakeProposer()
    with session_scope(settings.db_url) as s:
        propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, ids[:2], balancing=STRICT)
    called = {p for call in proposer.calls for p in call}
    assert "bad lamp" in called and "good vase" not in called
    with session_scope(settings.db_url) as s:
        st = rows(s, job_id, "propose")
        assert st[ids[0]].detail["balanced_out"] == ["good vase"]
        assert st[ids[1]].detail == {"reason": "concept saturated", "balanced_out": ["good vase"]}


def test_explored_pairs_of_a_saturated_concept_are_proposed(settings, mined):  # noqa: F811
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:1], store, {(80, 60): "a good vase"})
    with session_scope(settings.db_url) as s:
        History(s, "good vase", [(A, "accept", "accept")] * 3)
    proposer = FakeProposer()
    with session_scope(settings.db_url) as s:
        propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, ids[:1],
                              balancing=STRICT.model_copy(update={"explore_rate": 1.0}))
    assert "good vase" in {p for call in proposer.calls for p in call}


# ------------------------------------------------------------------------------- the views
def test_report_shows_concept_coverage(settings, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dataengine.cli.main import cli

    for key, value in {"DATABASE_URL": settings.database_url, "MEDIA_ROOT": str(tmp_path / "media"),
                       "DATA_DIR": str(tmp_path / "data"), "BALANCING__MIN_ACCEPTED_MASKS": "3",
                       "BALANCING__MIN_HUMAN_DECIDED": "3", "BALANCING__MIN_AGREEMENT": "0.9"}.items():
        monkeypatch.setenv(f"DATAENGINE_{key}", value)
    monkeypatch.delenv("DATAENGINE_BROKER_URL", raising=False)
    with session_scope(settings.db_url) as s:
        History(s, "vase", [(A, "accept", "accept")] * 4)
        History(s, "lamp", [(A, "accept", "accept")])
    done = CliRunner().invoke(cli, ["report", "--no-official-video"])
    assert done.exit_code == 0, done.output
    section = done.output[done.output.index("concept coverage"):]
    assert "2 concepts, 1 saturated" in section
    vase, lamp = (next(line for line in section.splitlines() if f" {text} " in line) for text in ("vase", "lamp"))
    assert section.index(vase) < section.index(lamp)  # most accepted masks first
    assert "████" in vase and "yes" in vase and "yes" not in lamp


def test_dashboard_shows_concept_coverage(settings):
    from engine.services.dashboard import dashboard

    with session_scope(settings.db_url) as s:
        History(s, "lamp", [(A, "accept", "accept")])
        History(s, "vase", [(A, "accept", "accept")] * 4, negatives=1)
    with session_scope(settings.db_url) as s:
        concepts = dashboard(s, balancing=STRICT).concepts
    assert [(c.text, c.accepted_masks, c.negative_pairs, c.saturated) for c in concepts] == [
        ("vase", 4, 1, True), ("lamp", 1, 0, False)]
    assert concepts[0].agreement == 1.0 and concepts[0].model_acceptance == 1.0
