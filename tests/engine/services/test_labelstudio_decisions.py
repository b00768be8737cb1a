"""A Label Studio annotation meets the decision model like any verdict (the pull and the webhook both
store through engine/services/labelstudio.py: store_annotation): one that disagrees with what a
person decided meanwhile in our queue is stored, recorded as a conflict, and changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from engine.db.models import (
    BridgeState,
    HumanTask,
    ImageConcept,
    LabelStudioAnnotation,
    LabelStudioTask,
    Mask,
    MaskState,
    Polarity,
    TaskKind,
    User,
    Verdict,
)
from engine.db.session import session_scope
from engine.services import annotation, labelstudio, queue
from engine.settings import QueueSettings
from tests.factories import seed_review_items

SERVER = "http://127.0.0.1:9"
QUEUE = QueueSettings(multi_review_rate=0.0)


def choice(label: str, annotation_id: int = 501, updated_at: str = "2026-12-04T10:00:00Z") -> dict:
    return {"id": annotation_id, "updated_at": updated_at, "completed_by": 7, "lead_time": 3.5,
            "result": [{"type": "choices", "from_name": "verdict", "to_name": "image",
                        "value": {"choices": [label]}}]}


def test_a_pulled_accept_after_not_present_in_our_queue_is_stored_as_a_conflict(settings):
    with session_scope(settings.db_url) as s:
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",),
                                 kinds=("verify_mask", "check_exhaustivity"))
        pair_id = made["pairs"][0]
        pushed = labelstudio.claim(s, SERVER, TaskKind.VERIFY_MASK, 1, lease_s=3600)
        labelstudio.record_links(s, SERVER, 1, [(pushed[0].task_id, 9001)])
        person = User(username="ann", role="annotator")
        s.add(person)
    with session_scope(settings.db_url) as s:  # meanwhile, in our own queue: "phrase not present"
        task = queue.next_task(s, person.id, [TaskKind.CHECK_EXHAUSTIVITY], lease_s=600)
        settled = annotation.submit(s, task.id, person.id, annotation.VerdictIn(uuid.uuid4().hex, "not_present", 900),
                                    QUEUE)
        assert settled.conflict is None
    with session_scope(settings.db_url) as s:
        out = labelstudio.store_annotation(s, SERVER, 9001, choice("accept"), QUEUE,
                                           now=dt.datetime(2026, 12, 4, 10, 1))
    assert out.status == "conflict" and out.verdict_id is not None
    assert f"task {task.id}" in out.error and "not applied" in out.error
    with session_scope(settings.db_url) as s:
        stored = s.get(Verdict, out.verdict_id)
        assert stored.label == "accept" and stored.payload["conflict"]["task_id"] == task.id
        record = s.scalars(select(LabelStudioAnnotation).where(LabelStudioAnnotation.verdict_id == stored.id)).one()
        assert record.error == out.error
        link = s.scalars(select(LabelStudioTask).where(LabelStudioTask.ls_task_id == 9001)).one()
        assert link.state == BridgeState.DONE and link.error == out.error
        pair = s.get(ImageConcept, pair_id)
        assert pair.polarity == Polarity.NEGATIVE
        assert all(m.state == MaskState.REJECTED for m in s.scalars(select(Mask).where(Mask.pair_id == pair_id)))
        assert s.get(HumanTask, pushed[0].task_id).state.value == "done"
    with session_scope(settings.db_url) as s:  # pulled again: stored once
        again = labelstudio.store_annotation(s, SERVER, 9001, choice("accept"), QUEUE)
        assert again.status == "unchanged"


def test_a_pulled_verdict_that_agrees_is_stored_and_applied(settings):
    with session_scope(settings.db_url) as s:
        seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",), kinds=("verify_mask",))
        pushed = labelstudio.claim(s, SERVER, TaskKind.VERIFY_MASK, 1, lease_s=3600)
        labelstudio.record_links(s, SERVER, 1, [(pushed[0].task_id, 9002)])
    with session_scope(settings.db_url) as s:
        out = labelstudio.store_annotation(s, SERVER, 9002, choice("accept", 502), QUEUE)
    assert out.status == "stored" and out.error is None
    with session_scope(settings.db_url) as s:
        task = s.get(HumanTask, pushed[0].task_id)
        assert s.get(Mask, task.mask_id).state == MaskState.ACCEPTED
        assert s.get(ImageConcept, task.pair_id).polarity == Polarity.POSITIVE
