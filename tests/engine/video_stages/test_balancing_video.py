"""Concept balancing in the video propose stage: a saturated concept's pairs are left out and named."""

from __future__ import annotations

from engine.db.session import session_scope
from engine.services.video_stages.propose import propose_video_batch
from engine.video_settings import VideoSettings
from tests.engine.test_balancing import STRICT, A, History
from tests.engine.video_stages.conftest import add_pairs, pending, rows, run
from tests.engine.video_stages.fakes import FakeMaskletProposer


def test_video_propose_skips_a_saturated_concept(settings, mined):
    first, second = mined.video_ids
    add_pairs(settings, {first: ["red circle", "blue square"], second: ["red circle"]})
    with session_scope(settings.db_url) as s:
        History(s, "red circle", [(A, "accept", "accept")] * 3)  # saturated under STRICT
    pending(settings, mined.job_id, "propose", [first, second])
    proposer = FakeMaskletProposer()
    run(settings, propose_video_batch, mined.store, proposer, VideoSettings(), mined.job_id, [first, second],
        balancing=STRICT)
    assert proposer.calls == [["blue square"]]
    with session_scope(settings.db_url) as s:
        st = rows(s, mined.job_id, "propose")
        assert st[first].detail["balanced_out"] == ["red circle"]
        assert st[second].detail == {"reason": "concept saturated", "balanced_out": ["red circle"]}
