"""An undone verdict is no judgement anywhere people's verdicts are read as judgements: calibration's
targets, the verifiers' agreement with people (concept statistics, dashboard), failure mining — one
predicate, ``export_rows.standing``."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from engine.db.models import (
    HumanTask,
    Mask,
    ModelKind,
    Role,
    TaskKind,
    TaskState,
    User,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain import decisions as dm
from engine.repositories.model_versions import get_or_create
from engine.services import calibrate, concept_stats, failures
from engine.services.annotation import VerdictIn, submit
from engine.services.export_rows import standing
from engine.services.undo import undo_last
from engine.settings import QueueSettings
from tests.factories import seed_review_items

QUEUE = QueueSettings(multi_review_rate=0.0)


def _answer(s, user, mask, label):
    task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=mask.pair_id, mask_id=mask.id, state=TaskState.LEASED,
                     lease_owner_id=user.id, reason="test",
                     lease_expires_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
    s.add(task)
    s.flush()
    return submit(s, task.id, user.id, VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=700, masks=[]),
                  QUEUE).verdict_id


def test_an_undone_rejection_counts_nowhere(settings):
    with session_scope(settings.db_url) as s:
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("kite",), masks_per_pair=2, kinds=())
        user = User(username="std-judge", role=Role.ANNOTATOR)
        s.add(user)
        s.flush()
        masks = list(s.scalars(select(Mask).where(Mask.id.in_(made["masks"])).order_by(Mask.id)))
        mv = get_or_create(s, ModelKind.MASK_VERIFIER, "std-mv", "1").id
        s.add_all([Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=m.pair_id, mask_id=m.id,
                           model_version_id=mv, label="accept", probabilities={"accept": 0.9}) for m in masks])
        kept = _answer(s, user, masks[0], "accept")
        taken_back = _answer(s, user, masks[1], "reject")
        user_id = user.id
    with session_scope(settings.db_url) as s:
        before = calibrate.human_decisions(s, TaskKind.VERIFY_MASK)
        assert (masks[1].id, masks[1].pair_id) in before
        assert {f.image_id for f in failures.recent_failures(s, 10)} == set(made["images"])
        assert [(c.compared, c.agreed) for c in concept_stats.concept_stats(s)] == [(2, 1)]
        undo_last(s, user_id, None, QUEUE)
    with session_scope(settings.db_url) as s:
        stand = set(s.scalars(select(Verdict.id).where(standing())))
        labels = {v.id: v.label for v in s.scalars(select(Verdict))}
        after = calibrate.human_decisions(s, TaskKind.VERIFY_MASK)
        found = failures.recent_failures(s, 10)
        stats = concept_stats.concept_stats(s)
    undo_id = next(i for i, label in labels.items() if label == dm.UNDONE)
    assert kept in stand and taken_back not in stand and undo_id not in stand
    assert (masks[1].id, masks[1].pair_id) not in after and (masks[0].id, masks[0].pair_id) in after
    assert found == []  # the rejection that made the failure was taken back
    assert [(c.compared, c.agreed, c.human_decided) for c in stats] == [(1, 1, 1)]  # the undone one: not compared
