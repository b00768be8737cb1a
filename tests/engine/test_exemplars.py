"""engine/services/exemplars.py: a request is validated (lease, an image correction task, 1..N boxes
inside the image with a positive area, labels 0/1), queued, run queued → running → done | failed with
its candidate masks and model version on the row, and read back only by the person who asked. The
proposer here is a test double of the port (the tiny SAM 3 runs in the annotator and API tests)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.db.models import ExemplarRequest, HumanTask, ModelVersion, User
from engine.db.session import session_scope
from engine.domain.masks import RleMask, decode_mask
from engine.domain.vocabulary import Role, TaskKind, TaskState, TrackState
from engine.ports import ModelStamp, Proposal
from engine.services import exemplars
from engine.services.queue import LeaseLost
from tests.conftest import make_settings
from tests.factories import seed_review_items

W, H = 96, 64


class BoxProposer:
    """Returns one mask per positive box (the box filled) plus a low-scored one, and records its calls."""

    stamp = ModelStamp(kind="proposer", name="test-exemplar-proposer", version="1")

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[tuple[float, float, float, float]], list[int]]] = []

    def propose_with_exemplars(self, key, image, phrase, boxes, labels):
        self.calls.append((key, phrase, list(boxes), list(labels)))
        out = []
        for (x0, y0, x1, y1), label in zip(boxes, labels, strict=True):
            if label:
                m = np.zeros((image.height, image.width), dtype=bool)
                m[int(y0):int(y1), int(x0):int(x1)] = True
                out.append(Proposal(mask=m, score=0.9))
        out.append(Proposal(mask=np.ones((image.height, image.width), dtype=bool), score=0.1))
        return out


@pytest.fixture
def settings(fresh_sqlite_url, tmp_path):
    return make_settings(fresh_sqlite_url, tmp_path)


def _seed(settings, kind: str = "correct") -> tuple[int, int]:
    with session_scope(settings.db_url) as s:
        made = seed_review_items(s, settings.media_path, n_images=1, phrases=("dog",), size=(W, H),
                                 kinds=("check_exhaustivity", "correct"))
        user = User(username="ann", password_hash="x", role=Role.ANNOTATOR, is_active=True)
        s.add(user)
        s.flush()
        task = next(s.get(HumanTask, t) for t in made["tasks"] if s.get(HumanTask, t).kind == TaskKind(kind))
        task.state, task.lease_owner_id = TaskState.LEASED, user.id
        return task.id, user.id


def _image_of(session, image_id):
    return PILImage.new("RGB", (W, H))


def test_a_request_runs_to_candidate_masks_with_its_model_version(settings):
    task_id, user_id = _seed(settings)
    with session_scope(settings.db_url) as s:
        request_id = exemplars.request_exemplars(s, task_id, user_id, [[10, 10, 30, 40], [50, 5, 60, 20]], [1, 0],
                                                 max_boxes=8).id
    with session_scope(settings.db_url) as s:
        assert exemplars.read_request(s, request_id, user_id) == {
            "request_id": request_id, "state": "queued", "error": None, "masks": []}
    proposer = BoxProposer()
    with session_scope(settings.db_url) as s:
        out = exemplars.run_request(s, request_id, lambda: proposer, _image_of, score_threshold=0.5, max_masks=8)
    assert (out.state, out.masks, out.error) == ("done", 1, None)
    image_key, phrase, boxes, labels = proposer.calls[0]
    assert (phrase, boxes, labels) == ("dog", [(10, 10, 30, 40), (50, 5, 60, 20)], [1, 0])
    assert image_key.startswith("image:")
    with session_scope(settings.db_url) as s:
        got = exemplars.read_request(s, request_id, user_id)
        req = s.get(ExemplarRequest, request_id)
        assert req.started_at is not None and req.finished_at is not None
        assert s.get(ModelVersion, req.model_version_id).name == "test-exemplar-proposer"
    assert got["state"] == "done" and len(got["masks"]) == 1  # the 0.1-scored mask is under the threshold
    mask = got["masks"][0]
    assert mask["rle"]["size"] == [H, W] and mask["bbox"] == [10, 10, 20, 30] and mask["score"] == 0.9
    grid = decode_mask(RleMask(mask["rle"]["counts"], H, W, tuple(mask["bbox"]), 600))
    assert grid.sum() == 600
    # delivered again: not run again
    with session_scope(settings.db_url) as s:
        again = exemplars.run_request(s, request_id, lambda: proposer, _image_of, score_threshold=0.5, max_masks=8)
    assert again.state == "done" and len(proposer.calls) == 1


def test_a_failing_proposer_fails_the_request_with_its_reason(settings):
    task_id, user_id = _seed(settings)
    with session_scope(settings.db_url) as s:
        request_id = exemplars.request_exemplars(s, task_id, user_id, [[1, 1, 5, 5]], [1], max_boxes=8).id

    def broken():
        raise RuntimeError("no checkpoint")

    with session_scope(settings.db_url) as s:
        out = exemplars.run_request(s, request_id, broken, _image_of, score_threshold=0.5, max_masks=8)
    assert out.state == "failed" and "no checkpoint" in (out.error or "")
    with session_scope(settings.db_url) as s:
        assert s.get(ExemplarRequest, request_id).state == TrackState.FAILED


@pytest.mark.parametrize(("boxes", "labels"), [
    ([], []),  # none
    ([[1, 1, 5, 5]] * 9, [1] * 9),  # too many
    ([[1, 1, 5, 5]], [2]),  # a bad label
    ([[1, 1, 5, 5]], [1, 0]),  # labels and boxes differ
    ([[5, 1, 5, 9]], [1]),  # no area
    ([[10, 10, 97, 20]], [1]),  # outside the image
    ([[-1, 0, 5, 5]], [1]),
    ([[1, 1, 5]], [1]),  # not four numbers
])
def test_bad_boxes_are_refused(settings, boxes, labels):
    task_id, user_id = _seed(settings)
    with session_scope(settings.db_url) as s, pytest.raises(exemplars.ExemplarInvalid):
        exemplars.request_exemplars(s, task_id, user_id, boxes, labels, max_boxes=8)


def test_only_the_lease_holder_of_an_image_correction_asks_and_reads(settings):
    task_id, user_id = _seed(settings)
    with session_scope(settings.db_url) as s, pytest.raises(LeaseLost):
        exemplars.request_exemplars(s, task_id, user_id + 1, [[1, 1, 5, 5]], [1], max_boxes=8)
    with session_scope(settings.db_url) as s:
        request_id = exemplars.request_exemplars(s, task_id, user_id, [[1, 1, 5, 5]], [1], max_boxes=8).id
    with session_scope(settings.db_url) as s, pytest.raises(exemplars.NotFound):
        exemplars.read_request(s, request_id, user_id + 1)


def test_a_task_that_is_not_a_correction_takes_no_exemplars(settings):
    task_id, user_id = _seed(settings, kind="check_exhaustivity")
    with session_scope(settings.db_url) as s, pytest.raises(exemplars.ExemplarRefused):
        exemplars.request_exemplars(s, task_id, user_id, [[1, 1, 5, 5]], [1], max_boxes=8)
