"""Caption, parse and propose services with fake adapters, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import func, select

from engine.db.models import (
    Caption,
    Concept,
    ImageConcept,
    Mask,
    ModelVersion,
    PairOrigin,
    StageItem,
    StageStatus,
)
from engine.db.session import session_scope
from engine.repositories import stages as stages_repo
from engine.services import caption, flow, mine, parse, propose
from engine.settings import ProposeSettings
from engine.storage import LocalMediaStore
from tests.factories import jpeg_bytes, photo
from tests.fakes import FakeCaptioner, FakeParser, FakeProposer

ORDER = ("mine", "caption", "parse", "propose")


@pytest.fixture
def mined(settings, tmp_path):
    """Three mined images of different sizes (one with alt-text), caption rows pending."""
    src = tmp_path / "src"
    src.mkdir()
    for n, size in enumerate([(80, 60), (64, 48), (50, 40)]):
        (src / f"{n}.jpg").write_bytes(jpeg_bytes(photo(500 + n, size)))
    (src / "0.txt").write_text("a striped cat and a blue sofa")
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="m")
    with session_scope(settings.db_url) as s:
        report = mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
        flow.hand_over(s, plan.job_id, "mine", report.image_ids, ORDER)
    return plan.job_id, sorted(report.image_ids), store


def rows(s, job_id, stage):
    return {i.subject_id: i for i in s.scalars(select(StageItem).where(
        StageItem.job_id == job_id, StageItem.stage == stage))}


def run(settings, fn, *args):
    with session_scope(settings.db_url) as s:
        return fn(s, *args)


def test_caption_records_every_outcome(settings, mined):
    job_id, ids, store = mined
    cap = FakeCaptioner(captions={(64, 48): "   "}, fail_sizes={(50, 40)})
    report = run(settings, caption.caption_batch, store, cap, job_id, ids)
    assert report.counts == {"done": 1, "failed": 2}
    with session_scope(settings.db_url) as s:
        st = rows(s, job_id, "caption")
        assert st[ids[0]].status is StageStatus.DONE
        assert st[ids[1]].error == "the model returned an empty caption"
        assert st[ids[2]].error.startswith("captioner failed: RuntimeError: model crashed")
        version = s.scalars(select(ModelVersion).where(ModelVersion.name == "fake-captioner")).one()
        assert st[ids[0]].model_version_id == version.id
        texts = set(s.scalars(select(Caption.text).where(Caption.model_version_id == version.id)))
        assert texts == {"a red ball on a table"}


def test_caption_splits_a_failing_batch(settings, mined):
    job_id, ids, store = mined
    cap = FakeCaptioner(fail_batches_over=1)
    report = run(settings, caption.caption_batch, store, cap, job_id, ids)
    assert report.counts == {"done": 3}
    assert cap.calls == [3, 1, 2, 1, 1]


def test_caption_is_idempotent_per_model_version(settings, mined):
    job_id, ids, store = mined
    run(settings, caption.caption_batch, store, FakeCaptioner(), job_id, ids)
    again = run(settings, caption.caption_batch, store, FakeCaptioner(), job_id, ids)
    assert again.counts == {}  # nothing pending any more
    with session_scope(settings.db_url) as s:
        for item in rows(s, job_id, "caption").values():
            item.status = StageStatus.PENDING  # as a re-run of the stage would
    cap = FakeCaptioner()
    rerun = run(settings, caption.caption_batch, store, cap, job_id, ids)
    assert rerun.counts == {"done": 3} and cap.calls == []  # reused, not recomputed
    v2 = FakeCaptioner(default="a ball", version="2")
    with session_scope(settings.db_url) as s:
        for item in rows(s, job_id, "caption").values():
            item.status = StageStatus.PENDING
    run(settings, caption.caption_batch, store, v2, job_id, ids)
    with session_scope(settings.db_url) as s:
        # the new version's captions stand beside the old ones
        assert s.scalar(select(func.count()).select_from(Caption).where(Caption.image_id == ids[1])) == 2


def test_model_captions_off_skips(settings, mined):
    job_id, ids, store = mined
    report = run(settings, caption.caption_batch, store, None, job_id, ids)
    assert report.counts == {"skipped": 3} and report.image_ids == ids


def _to_parse(settings, job_id, ids, store, captioner):
    with session_scope(settings.db_url) as s:
        report = caption.caption_batch(s, store, captioner, job_id, ids)
        flow.hand_over(s, job_id, "caption", report.image_ids, ORDER)


def test_parse_outcomes(settings, mined):
    job_id, ids, store = mined
    captioner = FakeCaptioner(captions={(80, 60): "two dogs and the grass", (64, 48): "it",
                                        (50, 40): "BROKEN"})
    _to_parse(settings, job_id, ids, store, captioner)
    parser = FakeParser(raw={"BROKEN": "Sorry, I can't do that."})
    report = run(settings, parse.parse_batch, parser, job_id, ids)
    assert report.counts == {"done": 1, "skipped": 1, "failed": 1}
    with session_scope(settings.db_url) as s:
        st = rows(s, job_id, "parse")
        # image 0: alt-text "a striped cat and a blue sofa" + model caption "two dogs and the grass"
        assert sorted(st[ids[0]].detail["phrases"]) == ["blue sofa", "dog", "grass", "striped cat"]
        assert st[ids[1]].status is StageStatus.SKIPPED
        assert st[ids[1]].detail["reason"] == "no groundable noun phrase in the captions"
        assert st[ids[1]].detail["dropped"][0]["reason"].startswith("ungroundable")
        assert st[ids[2]].status is StageStatus.FAILED and "no list of phrases" in st[ids[2]].error
        pairs = s.execute(select(Concept.text, ImageConcept.origin, ImageConcept.caption_id)
                          .join(Concept).where(ImageConcept.image_id == ids[0])).all()
        assert sorted(p[0] for p in pairs) == ["blue sofa", "dog", "grass", "striped cat"]
        assert all(origin is PairOrigin.CAPTION and caption_id for _, origin, caption_id in pairs)


def test_parse_without_captions_is_skipped(settings, mined):
    job_id, ids, store = mined
    with session_scope(settings.db_url) as s:
        stages_repo.ensure_pending(s, job_id, "parse", ids[1:])
    report = run(settings, parse.parse_batch, FakeParser(), job_id, ids[1:])
    assert report.counts == {"skipped": 2}


def _to_propose(settings, job_id, ids, store, captions):
    _to_parse(settings, job_id, ids, store, FakeCaptioner(captions=captions))
    with session_scope(settings.db_url) as s:
        report = parse.parse_batch(s, FakeParser(), job_id, ids)
        flow.hand_over(s, job_id, "parse", report.image_ids, ORDER)


def test_propose_stores_deduplicated_masks_and_records_failures(settings, mined):
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids, store, {(80, 60): "a vase and a lamp", (64, 48): "an explode button and a cup",
                                               (50, 40): "a nothingburger"})
    proposer = FakeProposer()
    report = run(settings, propose.propose_batch, store, proposer, ProposeSettings(), job_id, ids)
    with session_scope(settings.db_url) as s:
        st = rows(s, job_id, "propose")
        # image 0: cat, sofa (alt-text) + vase, lamp: 2 masks each after dedup
        assert st[ids[0]].status is StageStatus.DONE and st[ids[0]].detail == {"phrases": 4, "masks": 8}
        assert st[ids[1]].status is StageStatus.FAILED
        assert st[ids[1]].error.startswith("1 of 2 phrases failed: 'explode button'")
        assert st[ids[1]].detail == {"phrases": 2, "masks": 2}  # the cup's masks are kept
        assert st[ids[2]].status is StageStatus.DONE and st[ids[2]].detail == {"phrases": 1, "masks": 0}
        masks = s.scalars(select(Mask)).all()
        assert len(masks) == 10
        for m in masks:
            decoded = mask_utils.decode({"size": [m.height, m.width], "counts": m.rle_counts.encode()})
            assert decoded.sum() == m.area > 0 and m.score in (pytest.approx(0.9), pytest.approx(0.8))
    # one call per phrase (bounded memory; the proposer keeps the image's encoding): the failing one fails alone
    assert ["explode button"] in proposer.calls and ["cup"] in proposer.calls
    assert all(len(call) == 1 for call in proposer.calls)
    assert report.counts["masks"] == 10


def test_propose_caps_masks_and_skips_images_without_phrases(settings, mined):
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids, store, {(80, 60): "a vase", (64, 48): "it", (50, 40): "it"})
    report = run(settings, propose.propose_batch, store, FakeProposer(masks_per_phrase=5),
                 ProposeSettings(max_masks_per_phrase=3), job_id, ids)
    with session_scope(settings.db_url) as s:
        st = rows(s, job_id, "propose")
        assert st[ids[0]].detail == {"phrases": 3, "masks": 9}  # cat, sofa, vase × 3
        assert st[ids[1]].status is StageStatus.SKIPPED
    assert report.counts["skipped"] == 2


def test_propose_again_with_the_same_version_adds_nothing(settings, mined):
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids, store, {})
    run(settings, propose.propose_batch, store, FakeProposer(), ProposeSettings(), job_id, ids)
    with session_scope(settings.db_url) as s:
        before = s.scalar(select(func.count()).select_from(Mask))
        for item in rows(s, job_id, "propose").values():
            item.status = StageStatus.PENDING
    proposer = FakeProposer()
    run(settings, propose.propose_batch, store, proposer, ProposeSettings(), job_id, ids)
    assert proposer.calls == []
    run(settings, propose.propose_batch, store, FakeProposer(version="2"), ProposeSettings(), job_id, ids)
    with session_scope(settings.db_url) as s:
        # nothing was pending for v2 either (rows are done); re-open and run v2: outputs beside v1
        for item in rows(s, job_id, "propose").values():
            item.status = StageStatus.PENDING
    run(settings, propose.propose_batch, store, FakeProposer(version="2"), ProposeSettings(), job_id, ids)
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Mask)) == 2 * before


def test_reconcile_catches_up_and_job_finishes(settings, mined):
    job_id, ids, store = mined
    with session_scope(settings.db_url) as s:
        pending = flow.reconcile(s, job_id, ORDER)
        assert pending == {"caption": ids, "parse": [], "propose": []}
        assert not flow.finish_if_complete(s, job_id)
    _to_propose(settings, job_id, ids, store, {})
    with session_scope(settings.db_url) as s:
        assert flow.reconcile(s, job_id, ORDER)["propose"] == ids
    run(settings, propose.propose_batch, store, FakeProposer(), ProposeSettings(), job_id, ids)
    with session_scope(settings.db_url) as s:
        assert flow.finish_if_complete(s, job_id)
