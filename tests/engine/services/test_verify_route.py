"""Verify, route and calibrate with fake verifiers (implementing the ports), on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db.models import (
    Calibration,
    HumanTask,
    ImageConcept,
    Mask,
    MaskState,
    Polarity,
    RouteAction,
    RouteRecord,
    StageItem,
    StageStatus,
    TaskKind,
    TaskState,
    Verdict,
    VerdictKind,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain.calibration import fit_isotonic
from engine.services import calibrate, flow, propose, route, verify
from engine.settings import ProposeSettings, RoutingSettings
from tests.engine.services.test_model_stages import ORDER, _to_propose, mined  # noqa: F401
from tests.fakes import FakeExhaustivityVerifier, FakeMaskVerifier, FakeProposer

ROUTING = RoutingSettings(audit_rate=0.0)


@pytest.fixture
def verified(settings, mined):  # noqa: F811
    """Image 0: 'good vase', 'bad lamp' (+ alt-text 'striped cat', 'blue sofa'); image 1: 'all bird'."""
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:2], store, {(80, 60): "a good vase and a bad lamp", (64, 48): "an all bird"})
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, FakeProposer(), ProposeSettings(), job_id, ids[:2])
        flow.hand_over(s, job_id, "propose", report.image_ids, ORDER + ("verify", "route"))
    mv, ev = FakeMaskVerifier(), FakeExhaustivityVerifier()
    with session_scope(settings.db_url) as s:
        report = verify.verify_batch(s, store, mv, ev, 0.5, job_id, ids[:2])
        flow.hand_over(s, job_id, "verify", report.image_ids, ORDER + ("verify", "route"))
    return job_id, ids[:2], store, mv, ev


def ai_verdicts(s, kind):
    return s.scalars(select(Verdict).where(Verdict.source == VerdictSource.AI, Verdict.kind == kind)).all()


def test_verify_judges_every_mask_and_pair_once(settings, verified):
    job_id, ids, store, mv, ev = verified
    with session_scope(settings.db_url) as s:
        mask_verdicts = ai_verdicts(s, VerdictKind.MASK)
        assert len(mask_verdicts) == s.scalar(select(func.count()).select_from(Mask)) == 10
        assert all(abs(sum(v.probabilities.values()) - 1) < 1e-6 for v in mask_verdicts)
        pair_verdicts = ai_verdicts(s, VerdictKind.EXHAUSTIVITY)
        assert len(pair_verdicts) == 5
        st = {i.subject_id: i for i in s.scalars(select(StageItem).where(StageItem.stage == "verify"))}
        assert st[ids[0]].status is StageStatus.DONE and st[ids[0]].detail == {"masks": 8, "pairs": 4}
    assert ev.boxes["good vase"] == 2 and ev.boxes["bad lamp"] == 0  # only surviving masks are boxed
    with session_scope(settings.db_url) as s:  # same versions again: nothing judged twice
        for item in s.scalars(select(StageItem).where(StageItem.stage == "verify")):
            item.status = StageStatus.PENDING
    mv2 = FakeMaskVerifier()
    with session_scope(settings.db_url) as s:
        verify.verify_batch(s, store, mv2, FakeExhaustivityVerifier(), 0.5, job_id, ids)
    assert mv2.seen == 0


def test_without_calibration_everything_goes_to_humans(settings, verified):
    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        report = route.route_batch(s, ROUTING, job_id, ids)
    assert report.counts["human"] == 15 and report.counts["auto_accept"] == 0
    with session_scope(settings.db_url) as s:
        kinds = dict(s.execute(select(HumanTask.kind, func.count()).group_by(HumanTask.kind)).all())
        assert kinds == {TaskKind.VERIFY_MASK: 10, TaskKind.CHECK_EXHAUSTIVITY: 5}
        assert all("no calibrated" in t.reason or "not calibrated" in t.reason or "threshold" in t.reason
                   for t in s.scalars(select(HumanTask)))


def _calibrate_by_hand(s, verifier_name, kind, accept, reject):
    from engine.db.models import ModelVersion

    version = s.scalars(select(ModelVersion).where(ModelVersion.name == verifier_name)).one()
    identity = fit_isotonic([0.0, 1.0], [0, 1])
    s.add(Calibration(model_version_id=version.id, task_kind=kind, method="isotonic",
                      calibrator=identity.to_dict(), target_precision=0.95, accept_threshold=accept,
                      reject_threshold=reject, n_verdicts=0, metrics={}))


def test_calibrated_routing_auto_decides_and_never_overrides_humans(settings, verified):
    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        _calibrate_by_hand(s, "fake-mv", TaskKind.VERIFY_MASK, 0.95, 0.05)
        _calibrate_by_hand(s, "fake-ev", TaskKind.CHECK_EXHAUSTIVITY, 0.95, 0.05)
        # a human already rejected one of the 'good vase' masks
        from engine.db.models import Concept

        vase_mask = s.scalars(select(Mask).join(ImageConcept).join(Concept, Concept.id == ImageConcept.concept_id)
                              .where(Concept.text == "good vase").order_by(Mask.id)).first()
        from engine.db.models import Role, User

        user = User(username="ann", role=Role.ANNOTATOR)
        s.add(user)
        s.flush()
        s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=vase_mask.pair_id,
                      mask_id=vase_mask.id, user_id=user.id, label="reject"))
    with session_scope(settings.db_url) as s:
        report = route.route_batch(s, ROUTING, job_id, ids)
    with session_scope(settings.db_url) as s:
        masks = s.scalars(select(Mask)).all()
        states = {m.id: m.state for m in masks}
        assert states[vase_mask.id] is MaskState.CANDIDATE  # the human's mask is left to the human
        decisions = {d.mask_id: d for d in s.scalars(select(RouteRecord).where(RouteRecord.mask_id.is_not(None)))}
        assert decisions[vase_mask.id].action is RouteAction.KEEP_HUMAN
        accepted = [m for m in masks if m.state is MaskState.ACCEPTED]
        rejected = [m for m in masks if m.state is MaskState.REJECTED]
        assert len(accepted) == 1 and len(rejected) == 2  # other vase mask; both lamp masks
        # 'good vase' is confidently exhaustive with its masks → the pair is auto-accepted, no task
        from engine.db.models import Concept

        pairs = {c: p for p, c in s.execute(select(ImageConcept, Concept.text).join(
            Concept, Concept.id == ImageConcept.concept_id)).all()}
        assert pairs["good vase"].is_exhaustive and pairs["good vase"].polarity is Polarity.POSITIVE
        assert pairs["bird"].is_exhaustive is None  # uncertain: a human checks it
        pair_tasks = {t.pair_id for t in s.scalars(select(HumanTask).where(
            HumanTask.kind == TaskKind.CHECK_EXHAUSTIVITY))}
        assert pairs["good vase"].id not in pair_tasks and pairs["bird"].id in pair_tasks
        open_tasks = s.scalars(select(HumanTask).where(HumanTask.state == TaskState.OPEN)).all()
        assert all(t.mask_id != vase_mask.id for t in open_tasks)
    assert report.counts["keep_human"] == 1


def test_audit_sends_auto_decisions_to_humans_too(settings, verified):
    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        _calibrate_by_hand(s, "fake-mv", TaskKind.VERIFY_MASK, 0.95, 0.05)
    with session_scope(settings.db_url) as s:
        route.route_batch(s, RoutingSettings(audit_rate=1.0), job_id, ids)
    with session_scope(settings.db_url) as s:
        audits = s.scalars(select(RouteRecord).where(RouteRecord.audit)).all()
        assert audits and all(d.action is RouteAction.HUMAN and d.task_id for d in audits)
        assert all(s.get(HumanTask, d.task_id).reason.startswith("audit sample") for d in audits)


def test_rerouting_with_a_newer_verifier_cancels_open_tasks_it_now_decides(settings, verified):
    job_id, ids, store, *_ = verified
    with session_scope(settings.db_url) as s:
        route.route_batch(s, ROUTING, job_id, ids)  # uncalibrated: tasks for everything
    with session_scope(settings.db_url) as s:
        _calibrate_by_hand(s, "fake-mv", TaskKind.VERIFY_MASK, 0.95, 0.05)
        for item in s.scalars(select(StageItem).where(StageItem.stage == "route")):
            item.status = StageStatus.PENDING
    with session_scope(settings.db_url) as s:
        route.route_batch(s, ROUTING, job_id, ids)
    with session_scope(settings.db_url) as s:
        cancelled = s.scalars(select(HumanTask).where(HumanTask.state == TaskState.CANCELLED)).all()
        assert len(cancelled) == 4  # good vase ×2, bad lamp ×2: now decided by the verifier
        assert all("newer verifier" in t.reason for t in cancelled)
        # no duplicate open task for the same mask
        open_masks = [t.mask_id for t in s.scalars(select(HumanTask).where(
            HumanTask.state == TaskState.OPEN, HumanTask.kind == TaskKind.VERIFY_MASK))]
        assert len(open_masks) == len(set(open_masks))


def test_calibrate_needs_human_verdicts_then_finds_thresholds(settings, verified):
    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        results = calibrate.calibrate(s, target_precision=0.95, method="isotonic")
    assert {(r.task_kind, r.scope) for r in results} == {
        (TaskKind.VERIFY_MASK, "all"), (TaskKind.CHECK_EXHAUSTIVITY, "with_masks"),
        (TaskKind.CHECK_EXHAUSTIVITY, "presence")}
    assert all(r.result.accept_threshold is None and "more" in r.result.reason for r in results)
    with session_scope(settings.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Calibration)) == 3


def test_calibration_counts_each_mask_once_and_refuses_small_samples(settings, verified):
    from engine.db.models import Decider, Mask, MaskState, Role, User

    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        user = User(username="judge", role=Role.REVIEWER)
        s.add(user)
        s.flush()
        for v in ai_verdicts(s, VerdictKind.MASK):
            if v.probabilities["accept"] != 0.6:  # humans judge the clear-cut masks, twice each
                for label in ("reject", "accept" if v.probabilities["accept"] > 0.5 else "reject"):
                    s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=v.pair_id,
                                  mask_id=v.mask_id, user_id=user.id, label=label))
                mask = s.get(Mask, v.mask_id)  # the people's decision (a tie goes to the latest), as applied
                mask.state = MaskState.ACCEPTED if label == "accept" else MaskState.REJECTED
                mask.decided_by = Decider.HUMAN
    with session_scope(settings.db_url) as s:
        (mv,) = calibrate.calibrate(s, target_precision=0.95, method="isotonic", kinds=(TaskKind.VERIFY_MASK,))
    assert mv.result.n == 4  # one (AI score, the people's decision) per mask
    assert mv.result.agreement == 1.0  # the people's decision agrees with the AI on all four
    assert mv.result.accept_threshold is None and "more" in mv.result.reason


def test_calibration_targets_are_human_decided_ground_truth(settings, verified):
    """Only items that are ground truth under label source human count: a person's verdict on a
    mask the person's decision did not settle (still a candidate, or overruled since) is left out."""
    from engine.db.models import Decider, Mask, MaskState, Role, User

    job_id, ids, *_ = verified
    with session_scope(settings.db_url) as s:
        user = User(username="judge", role=Role.REVIEWER)
        s.add(user)
        s.flush()
        clear = [v for v in ai_verdicts(s, VerdictKind.MASK) if v.probabilities["accept"] != 0.6]
        assert len(clear) == 4
        for i, v in enumerate(clear):
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=v.pair_id, mask_id=v.mask_id,
                          user_id=user.id, label="accept"))
            mask = s.get(Mask, v.mask_id)
            if i == 0:  # applied: a ground-truth mask
                mask.state, mask.decided_by = MaskState.ACCEPTED, Decider.HUMAN
            elif i == 1:  # overruled since (a correction rejected it): the label is no longer the truth
                mask.state, mask.decided_by = MaskState.REJECTED, Decider.HUMAN
            elif i == 2:  # decided by the AI only
                mask.state, mask.decided_by = MaskState.ACCEPTED, Decider.AI
            else:  # never applied: still a candidate
                mask.state, mask.decided_by = MaskState.CANDIDATE, None
        kept = {(clear[0].mask_id, clear[0].pair_id)}
    with session_scope(settings.db_url) as s:
        assert set(calibrate.human_decisions(s, TaskKind.VERIFY_MASK)) == kept
        (mv,) = calibrate.calibrate(s, target_precision=0.95, method="isotonic", kinds=(TaskKind.VERIFY_MASK,))
    assert mv.result.n == 1


def test_routing_follows_the_per_population_calibration(settings):
    """`dataengine calibrate` on a constructed sample (tests/engine/services/test_calibrate.py:
    World), then the router on a new image: a pair without masks above the presence threshold
    that the positive-pair budget raised becomes a negative; one the scope's own threshold would
    have taken, but the budget does not, goes to a person; masks go by the threshold the
    final-label check chose; a pair with masks goes to a person (150 clean pairs are too few for
    its final-label check)."""
    from engine.db.models import (
        Concept,
        Decider,
        Image,
        ImageConcept,
        JobStatus,
        MiningJob,
        ModelVersion,
        PairOrigin,
        Polarity,
    )
    from engine.domain.calibration import calibrate_task
    from engine.repositories.labels import add_mask
    from tests.engine.services.test_calibrate import PRESENCE_ABSENT, PRESENCE_PRESENT, World

    with session_scope(settings.db_url) as s:
        world = World(s)
    with session_scope(settings.db_url) as s:
        results = calibrate.calibrate(s, target_precision=0.95, method="isotonic", routing=RoutingSettings())
    by_scope = {(r.task_kind, r.scope): r for r in results}
    presence = by_scope[(TaskKind.CHECK_EXHAUSTIVITY, "presence")]
    assert presence.pairs is not None and presence.pairs.budget_applied
    p = presence.result.calibrator.calibrate
    assert p(0.95) >= presence.result.accept_threshold > p(0.6)
    assert presence.pairs.unconstrained_loss > 0.01 >= presence.pairs.positive_loss
    own = calibrate_task(PRESENCE_ABSENT + PRESENCE_PRESENT, [1] * len(PRESENCE_ABSENT) + [0] * len(PRESENCE_PRESENT),
                         0.95, human_error=0.05, max_final_drop=0.01)  # the scope alone
    assert own.calibrator.calibrate(0.6) >= own.accept_threshold
    with session_scope(settings.db_url) as s:
        job = MiningJob(name="route-new", source_uri="-", source_kind="folder", status=JobStatus.RUNNING)
        image = Image(sha256="f" * 64, phash=1, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=1, width=16,
                      height=16, format="png", byte_size=1, storage_key="cal/new.png")
        concepts = [Concept(text=f"new thing {i}") for i in range(3)]
        s.add_all([job, image, *concepts])
        s.flush()
        absent, unsure, shown = (ImageConcept(image_id=image.id, concept_id=c.id, polarity=Polarity.UNKNOWN,
                                              origin=PairOrigin.CAPTION) for c in concepts)
        s.add_all([absent, unsure, shown])
        s.flush()
        proposer = s.scalars(select(ModelVersion.id).where(ModelVersion.name == "cal-proposer")).one()
        masks = [add_mask(s, shown.id, proposer, world.rle, score=0.9) for _ in range(3)]
        s.flush()
        for mask, score in zip(masks, (0.999, 0.002, 0.6), strict=True):
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.AI, pair_id=shown.id, mask_id=mask.id,
                          model_version_id=world.mv, label="accept" if score >= 0.5 else "reject",
                          probabilities={"accept": score, "reject": 1 - score}))
        for pair, score, boxes in ((absent, 0.95, 0), (unsure, 0.6, 0), (shown, 0.99, 2)):
            s.add(Verdict(kind=VerdictKind.EXHAUSTIVITY, source=VerdictSource.AI, pair_id=pair.id,
                          model_version_id=world.ev, label="accept",
                          probabilities={"accept": score, "reject_missing": 1 - score},
                          payload={"boxes": boxes, "mask_ids": [m.id for m in masks][:boxes]}))
        s.add(StageItem(job_id=job.id, stage="route", subject_id=image.id, status=StageStatus.PENDING))
        ids = {"job": job.id, "image": image.id, "absent": absent.id, "unsure": unsure.id, "shown": shown.id,
               "masks": [m.id for m in masks]}
    with session_scope(settings.db_url) as s:
        report = route.route_batch(s, ROUTING, ids["job"], [ids["image"]])
    assert report.counts["auto_accept"] == 2 and report.counts["auto_reject"] == 1 and report.counts["human"] == 3
    with session_scope(settings.db_url) as s:
        absent, unsure, shown = (s.get(ImageConcept, ids[k]) for k in ("absent", "unsure", "shown"))
        assert (absent.polarity, absent.is_exhaustive, absent.decided_by) == (Polarity.NEGATIVE, True, Decider.AI)
        assert unsure.is_exhaustive is None and shown.is_exhaustive is None
        assert [s.get(Mask, m).state for m in ids["masks"]] == [MaskState.ACCEPTED, MaskState.REJECTED,
                                                                MaskState.CANDIDATE]
        tasks = {(t.pair_id, t.mask_id): t.kind for t in s.scalars(select(HumanTask).where(
            HumanTask.state == TaskState.OPEN))}
        assert tasks == {(ids["unsure"], None): TaskKind.CHECK_EXHAUSTIVITY,
                         (ids["shown"], None): TaskKind.CHECK_EXHAUSTIVITY,
                         (ids["shown"], ids["masks"][2]): TaskKind.VERIFY_MASK}
        reasons = {d.pair_id: d.reason for d in s.scalars(select(RouteRecord).where(
            RouteRecord.mask_id.is_(None)))}
        assert reasons[ids["absent"]].startswith("verified negative") and "accept threshold" in reasons[ids["unsure"]]


def test_a_malformed_stored_mask_fails_alone_in_verify(settings, mined):  # noqa: F811
    """Issue #15: a mask written past the validator (``dataengine check``: M2) is never decoded by
    pycocotools; it is named in the item's error and every other mask is judged."""
    job_id, ids, store = mined
    _to_propose(settings, job_id, ids[:1], store, {(80, 60): "a good vase and a bad lamp"})
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, FakeProposer(), ProposeSettings(), job_id, ids[:1])
        flow.hand_over(s, job_id, "propose", report.image_ids, ORDER + ("verify", "route"))
        bad = s.scalars(select(Mask).order_by(Mask.id)).first()
        bad.rle_counts, bad_id = "95", bad.id  # counts summing to 14: pycocotools would never end
    with session_scope(settings.db_url) as s:
        verify.verify_batch(s, store, FakeMaskVerifier(), FakeExhaustivityVerifier(), 0.5, job_id, ids[:1])
    with session_scope(settings.db_url) as s:
        judged = {v.mask_id for v in ai_verdicts(s, VerdictKind.MASK)}
        masks = set(s.scalars(select(Mask.id)))
        assert judged == masks - {bad_id} and judged
        item = s.scalars(select(StageItem).where(StageItem.stage == "verify")).one()
        assert item.status is StageStatus.FAILED and f"mask {bad_id}: RLE counts sum to 14" in item.error
