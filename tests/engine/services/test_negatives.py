"""Hard negatives with fakes: neighbours and LLM suggestions, kept only when adversarial."""

from __future__ import annotations

from sqlalchemy import select

from engine.db.models import Concept, ImageConcept, Mask, PairOrigin, StageItem, StageStatus
from engine.db.session import session_scope
from engine.services import flow, negatives, propose
from engine.settings import NegativeSettings, ProposeSettings
from tests.engine.services.test_model_stages import ORDER, _to_propose, mined  # noqa: F401
from tests.fakes import FakeEmbedder, FakeSuggester, OverlapProposer

FULL = ORDER + ("negatives", "verify", "route")


def test_adversarial_candidates_become_hard_negative_pairs(settings, mined):  # noqa: F811
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:2], store,
                {(80, 60): "a good vase", (64, 48): "a blue decoy vase and a tall lamp"})
    proposer = OverlapProposer()
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, ids[:2])
        flow.hand_over(s, job_id, "propose", report.image_ids, FULL)
    suggester = FakeSuggester({"good vase": '["a decoy jar", "the decoy vase", "plant"]'})
    with session_scope(settings.db_url) as s:
        report = negatives.negatives_batch(s, store, proposer, FakeEmbedder(), suggester, NegativeSettings(),
                                           ProposeSettings(), job_id, [ids[0]])
    with session_scope(settings.db_url) as s:
        item = s.scalars(select(StageItem).where(StageItem.stage == "negatives", StageItem.subject_id == ids[0])).one()
        assert item.status is StageStatus.DONE
        kept = {k["phrase"] for k in item.detail["kept"]}
        # 'blue decoy vase' is a neighbour (same head noun) and lands on the vase; 'decoy jar' and
        # 'decoy vase' come from the LLM and land there too; 'plant' does not overlap
        assert kept == {"blue decoy vase", "decoy jar", "decoy vase"}
        assert item.detail["candidates"] >= 4
        hard = s.execute(select(Concept.text, ImageConcept.id).join(Concept, Concept.id == ImageConcept.concept_id)
                         .where(ImageConcept.image_id == ids[0], ImageConcept.origin == PairOrigin.HARD_NEGATIVE)).all()
        assert {t for t, _ in hard} == kept
        assert all(s.scalars(select(Mask).where(Mask.pair_id == pid)).first() for _, pid in hard)
    assert report.counts["hard_negatives"] == 3


def test_negatives_can_be_turned_off_and_skip_images_without_masks(settings, mined):  # noqa: F811
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:1], store, {(80, 60): "a nothingburger"})
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, OverlapProposer(), ProposeSettings(), job_id, ids[:1])
        flow.hand_over(s, job_id, "propose", report.image_ids, FULL)
    with session_scope(settings.db_url) as s:
        off = negatives.negatives_batch(s, store, OverlapProposer(), FakeEmbedder(), None,
                                        NegativeSettings(enabled=False), ProposeSettings(), job_id, ids[:1])
    assert off.counts == {"skipped": 1}


def test_nearest_respects_the_similarity_band():
    embedder = FakeEmbedder()
    known = ["red vase", "vase", "lamp", "blue vase"]
    near = negatives.nearest(embedder, "vase", known, NegativeSettings(min_similarity=0.3, max_similarity=0.9))
    assert set(near) == {"red vase", "blue vase"} and "lamp" not in near
    assert negatives.nearest(embedder, "vase", known, NegativeSettings(neighbours=0)) == []
