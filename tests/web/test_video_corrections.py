"""Video corrections through the same verdict endpoint and decision model as images: keep a masklet
(with its crowd flag), cut one to a frame range (a new masklet of those frames; the cut one rejected),
add one from a finished tracker request of the task, delete the ones not listed; not_present;
idempotent by client id; invalid masks are 422s that change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db.models import HumanTask, ImageConcept, Mask, MaskletFrame, TrackFrame, TrackRequest, Verdict
from engine.db.session import session_scope
from engine.domain.vocabulary import Decider, MaskState, Polarity, TaskState, TrackState
from tests.factories import seed_review_items
from tests.web.test_video_api import app, database_url, lease, seeded, tracker, wait_done  # noqa: F401 - fixtures
from tests.web.video_seed import FRAMES


def _verdict(client, task, label, masks, client_id="video-fix-0001"):
    return client.post(f"/api/v1/tasks/{task['id']}/verdict",
                       json={"client_id": client_id, "label": label, "active_ms": 4200, "masks": masks})


def _track(client, task, frame_index=2):
    response = client.post(f"/api/v1/video/tasks/{task['id']}/track",
                           json={"frame_index": frame_index, "points": [[30, 30, 1]]})
    assert response.status_code == 202, response.text
    return wait_done(client, response.json()["request_id"])


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_correction_keeps_cuts_adds_from_a_click_and_deletes_masklets(login, seeded, web_settings):
    client = login("ann")
    task = lease(client, "correct")
    tracked = _track(client, task)  # the test tracker: absent on frame 6
    kept, cut = seeded.masklets
    masks = [{"mask_id": kept, "is_crowd": True, "tool": "existing"},
             {"mask_id": cut, "frame_range": [2, 4], "tool": "existing"},
             {"track_id": tracked["request_id"], "frame_range": [5, FRAMES - 1], "tool": "tracker"}]
    first = _verdict(client, task, "corrected", masks)
    assert first.status_code == 201, first.text
    again = _verdict(client, task, "corrected", masks)
    assert again.status_code == 200 and again.json()["verdict_id"] == first.json()["verdict_id"]
    with session_scope(web_settings.db_url) as s:
        verdict = s.get(Verdict, first.json()["verdict_id"])
        assert verdict.duration_ms == 4200 and s.get(HumanTask, task["id"]).state == TaskState.DONE
        assert verdict.payload["masks"][1] == {"mask_id": cut, "track_id": None, "tool": "existing",
                                               "is_crowd": False, "frame_range": [2, 4]}
        made_cut, made_track = (s.get(Mask, i) for i in verdict.payload["new_mask_ids"])
        assert s.get(Mask, kept).state == MaskState.ACCEPTED and s.get(Mask, kept).is_crowd is True
        assert s.get(Mask, cut).state == MaskState.REJECTED and s.get(Mask, cut).decided_by == Decider.HUMAN
        for new in (made_cut, made_track):
            assert new.pair_id == seeded.pair_id and new.state == MaskState.ACCEPTED
            assert new.decided_by == Decider.HUMAN and new.area > 0 and new.score is None
        assert (made_cut.first_frame, made_cut.last_frame) == (2, 4)
        cut_frames = s.scalars(select(MaskletFrame).where(MaskletFrame.mask_id == made_cut.id)
                               .order_by(MaskletFrame.frame_index)).all()
        source = {f.frame_index: f.rle_counts for f in s.scalars(select(MaskletFrame)
                                                                 .where(MaskletFrame.mask_id == cut))}
        assert [(f.frame_index, f.rle_counts) for f in cut_frames] == [(i, source[i]) for i in (2, 3, 4)]
        track_frames = s.scalars(select(MaskletFrame.frame_index).where(MaskletFrame.mask_id == made_track.id)
                                 .order_by(MaskletFrame.frame_index)).all()
        assert track_frames == [5, 7]  # frame 6: the object was absent there
        assert (made_track.first_frame, made_track.last_frame) == (5, 7)
        largest = max(s.scalars(select(TrackFrame.area).where(TrackFrame.request_id == tracked["request_id"],
                                                               TrackFrame.frame_index.in_([5, 7]))))
        assert made_track.area == largest
        assert s.get(ImageConcept, seeded.pair_id).is_exhaustive is True


def test_a_video_correction_can_say_the_phrase_is_not_present(login, seeded, web_settings):
    client = login("ann")
    task = lease(client, "correct")
    assert _verdict(client, task, "not_present", []).status_code == 201
    with session_scope(web_settings.db_url) as s:
        assert {s.get(Mask, m).state for m in seeded.masklets} == {MaskState.REJECTED}
        assert s.get(ImageConcept, seeded.pair_id).polarity == Polarity.NEGATIVE


@pytest.mark.parametrize("case", ["rle", "other_pair", "twice", "range_out", "range_reversed", "range_empty",
                                  "track_unknown", "track_running", "both", "neither"])
def test_invalid_video_masks_are_refused_and_change_nothing(login, seeded, web_settings, case):
    client = login("ann")
    task = lease(client, "correct")
    kept = seeded.masklets[0]
    with session_scope(web_settings.db_url) as s:
        other = seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=())["masks"][0]
    request_id = 0
    if case == "track_running":
        response = client.post(f"/api/v1/video/tasks/{task['id']}/track",
                               json={"frame_index": 0, "points": [[30, 30, 1]]})
        request_id = response.json()["request_id"]
        wait_done(client, request_id)
        with session_scope(web_settings.db_url) as s:
            s.get(TrackRequest, request_id).state = TrackState.RUNNING
    masks = {
        "rle": [{"rle": {"size": [64, 96], "counts": "PPY1"}}],
        "other_pair": [{"mask_id": other}],
        "twice": [{"mask_id": kept}, {"mask_id": kept, "frame_range": [0, 1]}],
        "range_out": [{"mask_id": kept, "frame_range": [0, FRAMES]}],
        "range_reversed": [{"mask_id": kept, "frame_range": [3, 1]}],
        "range_empty": [{"mask_id": kept, "frame_range": [0, 0]}],
        "track_unknown": [{"track_id": 999999}],
        "track_running": [{"track_id": request_id}],
        "both": [{"mask_id": kept, "track_id": 1}],
        "neither": [{"is_crowd": True}],
    }[case]
    if case == "range_empty":
        with session_scope(web_settings.db_url) as s:  # the masklet has no frame 0 any more
            s.query(MaskletFrame).filter_by(mask_id=kept, frame_index=0).delete()
    response = _verdict(client, task, "corrected", masks)
    assert response.status_code == 422, response.text
    with session_scope(web_settings.db_url) as s:
        assert s.scalars(select(Verdict)).all() == []
        assert {s.get(Mask, m).state for m in seeded.masklets} == {MaskState.CANDIDATE}
        assert s.get(HumanTask, task["id"]).state == TaskState.LEASED


def test_an_image_correction_takes_no_track_or_frame_range(login, web_settings):
    with session_scope(web_settings.db_url) as s:
        made = seed_review_items(s, web_settings.media_path, n_images=1, phrases=("dog",), kinds=("correct",))
    client = login("ann")
    task = lease(client, "correct")
    for extra in ({"frame_range": [0, 1]}, {"track_id": 1}):
        response = _verdict(client, task, "corrected", [{"mask_id": made["masks"][0], **extra}])
        assert response.status_code == 422 and "video" in response.json()["detail"]
