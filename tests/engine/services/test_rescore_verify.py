"""Verify with a newly promoted verifier version (fakes implementing the ports, both databases):
human-decided items are not judged again, and the EV judges a pair again only when the boxes it
would be shown changed."""

from __future__ import annotations

from sqlalchemy import select

from engine.db.models import (
    Concept,
    Decider,
    ImageConcept,
    Mask,
    MaskState,
    ModelVersion,
    StageItem,
    StageStatus,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.services import verify
from tests.engine.services.test_model_stages import mined  # noqa: F401
from tests.engine.services.test_verify_route import verified  # noqa: F401
from tests.fakes import FakeMaskVerifier


class AcceptAll(FakeMaskVerifier):
    def verify_masks(self, queries):  # type: ignore[no-untyped-def]
        self.seen += len(queries)
        return [{"accept": 0.97, "accept_as_text": 0.01, "flag_label": 0.01, "whole_image": 0.0, "reject": 0.01}
                for _ in queries]


def _pair(s, text):
    return s.scalars(select(ImageConcept).join(Concept).where(Concept.text == text)).one()


def test_new_mv_rescores_undecided_masks_and_ev_sees_the_new_boxes(settings, verified):  # noqa: F811
    job_id, ids, store, _, ev = verified
    with session_scope(settings.db_url) as s:
        vase, lamp = _pair(s, "good vase"), _pair(s, "bad lamp")
        person_mask = s.scalars(select(Mask).where(Mask.pair_id == vase.id).order_by(Mask.id)).first()
        person_mask.state, person_mask.decided_by = MaskState.ACCEPTED, Decider.HUMAN  # a person accepted it
        person_mask_id, vase_id, lamp_id = person_mask.id, vase.id, lamp.id
        for item in s.scalars(select(StageItem).where(StageItem.stage == "verify")):
            item.status = StageStatus.PENDING
    ev.boxes.clear()
    mv2 = AcceptAll(version="2")
    with session_scope(settings.db_url) as s:
        verify.verify_batch(s, store, mv2, ev, 0.5, job_id, ids)
    with session_scope(settings.db_url) as s:
        mv2_id = s.scalars(select(ModelVersion.id).where(ModelVersion.name == "fake-mv",
                                                         ModelVersion.version == "2")).one()
        judged = set(s.scalars(select(Verdict.mask_id).where(Verdict.source == VerdictSource.AI,
                                                             Verdict.model_version_id == mv2_id)))
        assert judged == set(s.scalars(select(Mask.id))) - {person_mask_id}  # all but the person's
        ev_verdicts = s.scalars(select(Verdict).where(Verdict.kind == VerdictKind.EXHAUSTIVITY)
                                .order_by(Verdict.id)).all()
        lamp_ev = [v for v in ev_verdicts if v.pair_id == lamp_id]
        vase_ev = [v for v in ev_verdicts if v.pair_id == vase_id]
        # the lamp's masks now survive: EV judged it again with their boxes; the vase's boxes are the same
        assert [v.payload["boxes"] for v in lamp_ev] == [0, 2]
        assert len(vase_ev) == 1
    assert ev.boxes == {"bad lamp": 2}
