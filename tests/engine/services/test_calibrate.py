"""Human labels as the targets the verifiers are calibrated against."""

def test_human_exhaustivity_labels_as_verifier_targets():
    from engine.db.models import TaskKind
    from engine.services.calibrate import human_positive

    ev, mv = TaskKind.CHECK_EXHAUSTIVITY, TaskKind.VERIFY_MASK
    assert human_positive(ev, "complete", "with_masks") == 1
    assert human_positive(ev, "missing", "with_masks") == 0
    assert human_positive(ev, "not_present", "presence") == 1  # no masks, nothing missing
    assert human_positive(ev, "not_present", "with_masks") == 0  # the masks were all wrong
    assert [human_positive(mv, label, "all") for label in ("accept", "reject", "ungroundable")] == [1, 0, 0]


# ---------------------------------------------------------------- every population on its own
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from engine.db.models import Calibration, TaskKind  # noqa: E402
from engine.db.session import session_scope  # noqa: E402
from engine.domain.calibration import wilson_interval  # noqa: E402
from engine.settings import RoutingSettings  # noqa: E402


def _r(values) -> list[float]:
    return [round(float(v), 4) for v in values]


#: the constructed calibration sample (people's targets by construction)
MV_RIGHT = _r(np.linspace(0.45, 0.999, 400))  # masks people accepted
MV_WRONG = _r(np.linspace(0.001, 0.7, 200))  # masks people rejected
WITH_MASKS_COMPLETE = _r(np.linspace(0.6, 0.999, 150))  # pairs with masks people called complete
WITH_MASKS_MISSING = _r(np.linspace(0.0, 0.5, 60))  # … instances missing
PRESENCE_ABSENT = _r(np.linspace(0.3, 0.999, 1200))  # pairs without masks people said are not present
PRESENCE_PRESENT = [0.8, 0.85, 0.9] + _r(np.linspace(0.05, 0.3, 6))  # … present (instances missing)


class World:
    """Ids of a database holding the sample above: AI verdicts of one MV and one EV version and the
    people's verdicts, with the label states those verdicts left (the decision model's)."""

    def __init__(self, session) -> None:
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
        from engine.domain.masks import encode_mask
        from engine.repositories.labels import add_mask
        from engine.repositories.model_versions import get_or_create

        self.mv = get_or_create(session, ModelKind.MASK_VERIFIER, "cal-mv", "1").id
        self.ev = get_or_create(session, ModelKind.EXHAUSTIVITY_VERIFIER, "cal-ev", "1").id
        proposer = get_or_create(session, ModelKind.PROPOSER, "cal-proposer", "1").id
        user = User(username="cal-judge", role=Role.ANNOTATOR)
        concepts = [Concept(text=f"cal thing {i}") for i in range(50)]
        session.add_all([user, *concepts])
        session.flush()
        self.user = user.id
        self.images: list[int] = []
        grid = np.zeros((16, 16), dtype=bool)
        grid[2:9, 3:12] = True
        self.rle = encode_mask(grid)
        made = 0

        def new_pairs(n: int, polarity, claim: bool | None) -> list:
            nonlocal made
            rows = []
            for _ in range(n):
                if made % 50 == 0:
                    image = Image(sha256=f"{len(self.images):064x}", phash=0, phash_b0=0, phash_b1=0, phash_b2=0,
                                  phash_b3=0, width=16, height=16, format="png", byte_size=1,
                                  storage_key=f"cal/{len(self.images)}.png")
                    session.add(image)
                    session.flush()
                    self.images.append(image.id)
                rows.append(ImageConcept(image_id=self.images[-1], concept_id=concepts[made % 50].id,
                                         polarity=polarity, origin=PairOrigin.CAPTION, is_exhaustive=claim,
                                         decided_by=None if claim is None else Decider.HUMAN))
                made += 1
            session.add_all(rows)
            session.flush()
            return rows

        verdicts = []

        def judged(kind, pair_id: int, mask_id: int | None, score: float, ai_label: str, human_label: str,
                   **payload) -> None:
            other = "reject" if kind == VerdictKind.MASK else "reject_missing"
            verdicts.append(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pair_id, mask_id=mask_id,
                                    model_version_id=self.mv if kind == VerdictKind.MASK else self.ev,
                                    label=ai_label, probabilities={"accept": score, other: 1 - score},
                                    payload=payload or None))
            verdicts.append(Verdict(kind=kind, source=VerdictSource.HUMAN, pair_id=pair_id, mask_id=mask_id,
                                    user_id=self.user, label=human_label))

        # MV: ten masks a pair, people accepted or rejected each
        scores = [(s, True) for s in MV_RIGHT] + [(s, False) for s in MV_WRONG]
        mv_pairs = new_pairs(len(scores) // 10, Polarity.POSITIVE, None)
        masks = []
        for i, (score, right) in enumerate(scores):
            mask = add_mask(session, mv_pairs[i // 10].id, proposer, self.rle, score=0.9)
            mask.state = MaskState.ACCEPTED if right else MaskState.REJECTED
            mask.decided_by = Decider.HUMAN
            masks.append((mask, score, right))
        session.flush()
        for mask, score, right in masks:
            judged(VerdictKind.MASK, mask.pair_id, mask.id, score, "accept" if score >= 0.5 else "reject",
                   "accept" if right else "reject")
        # EV with masks: complete (an accepted mask) or instances missing
        for claim, scores_ in ((True, WITH_MASKS_COMPLETE), (False, WITH_MASKS_MISSING)):
            for pair, score in zip(new_pairs(len(scores_), Polarity.POSITIVE, claim), scores_, strict=True):
                mask = add_mask(session, pair.id, proposer, self.rle, score=0.9)
                mask.state, mask.decided_by = MaskState.ACCEPTED, Decider.HUMAN
                session.flush()
                judged(VerdictKind.EXHAUSTIVITY, pair.id, None, score,
                       "accept" if score >= 0.5 else "reject_missing", "complete" if claim else "missing",
                       boxes=1, mask_ids=[mask.id])
        # EV without masks: not present (a negative) or present with every instance missed
        for label, scores_ in (("not_present", PRESENCE_ABSENT), ("missing", PRESENCE_PRESENT)):
            absent = label == "not_present"
            rows = new_pairs(len(scores_), Polarity.NEGATIVE if absent else Polarity.POSITIVE, absent)
            for pair, score in zip(rows, scores_, strict=True):
                judged(VerdictKind.EXHAUSTIVITY, pair.id, None, score,
                       "accept" if score >= 0.5 else "reject_missing", label, boxes=0, mask_ids=[])
        session.add_all(verdicts)
        session.flush()


@pytest.fixture
def world(settings):
    with session_scope(settings.db_url) as s:
        return World(s)


def _rows(settings, version: int) -> dict[str, Calibration]:
    """The newest calibration row per scope of a verifier version."""
    with session_scope(settings.db_url) as s:
        out = {}
        for row in s.scalars(select(Calibration).where(Calibration.model_version_id == version)
                             .order_by(Calibration.id)):
            s.expunge(row)
            out[row.scope] = row
        return out


ALL_KINDS = tuple(TaskKind.__members__.values())


def _calibrate(settings, routing: RoutingSettings, kinds=ALL_KINDS):
    from engine.services.calibrate import calibrate

    kinds = tuple(k for k in kinds if k in (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY))
    with session_scope(settings.db_url) as s:
        return calibrate(s, target_precision=routing.target_precision, method=routing.calibration_method,
                         kinds=kinds, routing=routing)


def _auto(row: Calibration, scores: list[float]) -> np.ndarray:
    """Which of ``scores`` the row's accept threshold decides automatically."""
    from engine.domain.calibration import Calibrator

    if row.accept_threshold is None:
        return np.zeros(len(scores), bool)
    return Calibrator.from_dict(row.calibrator).calibrate_many(scores) >= row.accept_threshold


BEFORE = RoutingSettings(max_final_drop=None, max_positive_loss=None)  # the target precision alone


def test_accepted_masks_keep_their_final_labels_near_all_human(settings, world):
    """The final-label check raises the accept threshold until the accepted masks — automatic ones
    plus what people (5% error) accept of the rest — stay within a point of all-human, with the
    automatic set taken at its Wilson lower bound."""
    _calibrate(settings, BEFORE, (TaskKind.VERIFY_MASK,))
    before = _rows(settings, world.mv)["all"]
    _calibrate(settings, RoutingSettings(), (TaskKind.VERIFY_MASK,))
    after = _rows(settings, world.mv)["all"]
    scores = np.array(MV_RIGHT + MV_WRONG)
    right = np.r_[np.ones(len(MV_RIGHT), bool), np.zeros(len(MV_WRONG), bool)]
    e = 0.05
    all_human = (1 - e) * right.sum() / ((1 - e) * right.sum() + e * (~right).sum())

    def final_at_lower_bound(row: Calibration) -> float:
        auto = _auto(row, scores)
        low = wilson_interval(int(right[auto].sum()), int(auto.sum()))[0]
        hits = low * auto.sum()
        rest_right, rest_wrong = right.sum() - hits, (~right).sum() - (auto.sum() - hits)
        return (hits + (1 - e) * rest_right) / (auto.sum() + (1 - e) * rest_right + e * rest_wrong)

    assert before.accept_threshold is not None and after.accept_threshold is not None
    assert after.accept_threshold > before.accept_threshold
    for row in (before, after):  # both: the automatic decisions at the target precision
        auto = _auto(row, scores)
        assert wilson_interval(int(right[auto].sum()), int(auto.sum()))[0] >= 0.95
    assert final_at_lower_bound(before) < all_human - 0.01 <= final_at_lower_bound(after)
    assert after.metrics["max_final_drop"] == 0.01 and after.metrics["human_error"] == e
    assert after.metrics["annotator_error"] == {"rate": e, "source": "setting", "gold_answers": 0, "gold_wrong": 0}
    assert after.metrics["final_precision"] >= after.metrics["all_human_precision"] - 0.01


def test_pair_scopes_share_one_budget_for_the_positive_pairs(settings, world):
    """The two exhaustivity scopes are calibrated together and stored as their two rows: without
    the budget the negative label takes 4 of the 9 present pairs without masks (2.3% of the 219
    positive pairs, estimated (4 + 1) / (219 + 1)); with the 1% budget it takes none."""
    _calibrate(settings, BEFORE, (TaskKind.CHECK_EXHAUSTIVITY,))
    before = _rows(settings, world.ev)
    _calibrate(settings, RoutingSettings(), (TaskKind.CHECK_EXHAUSTIVITY,))
    after = _rows(settings, world.ev)
    assert set(after) == {"with_masks", "presence"}
    positives = len(WITH_MASKS_COMPLETE) + len(WITH_MASKS_MISSING) + len(PRESENCE_PRESENT)

    def lost(rows: dict[str, Calibration]) -> int:
        return int(_auto(rows["presence"], PRESENCE_PRESENT).sum()
                   + _auto(rows["with_masks"], WITH_MASKS_MISSING).sum())

    assert lost(before) == 4 and (lost(before) + 1) / (positives + 1) > 0.01
    assert lost(after) == 0 and (lost(after) + 1) / (positives + 1) <= 0.01
    assert after["presence"].accept_threshold > before["presence"].accept_threshold
    absent = _auto(after["presence"], PRESENCE_ABSENT)
    assert absent.sum() >= 100  # the negative label still goes automatically above the present pairs
    assert wilson_interval(int(absent.sum()), int(absent.sum()))[0] >= 0.95
    pairs = after["presence"].metrics["pairs"]
    assert pairs == after["with_masks"].metrics["pairs"]  # one joint calibration, in both rows
    assert pairs["max_positive_loss"] == 0.01 and pairs["positives"] == positives
    assert pairs["positive_loss"] == pytest.approx(1 / (positives + 1))
    assert pairs["unconstrained_loss"] == pytest.approx(5 / (positives + 1))
    assert "positive-pair budget" in pairs["reason"]
    assert before["presence"].metrics["pairs"]["reason"] is None
    # the with-masks scope: 150 clean pairs are too few for its final-label check at 95% confidence
    assert after["with_masks"].accept_threshold is None and before["with_masks"].accept_threshold is not None
    assert "final precision" in after["with_masks"].metrics["accept"]["reason"]
    assert after["with_masks"].n_verdicts == 210 and after["presence"].n_verdicts == 1209


def test_gold_answers_set_the_annotators_error_rate(settings, world):
    """With enough gold answers of the task kind, their share wrong replaces the setting."""
    from engine.db.models import HumanTask, TaskState, Verdict, VerdictKind, VerdictSource
    from engine.services.calibrate import annotator_error

    with session_scope(settings.db_url) as s:
        pair = s.scalars(select(Verdict.pair_id).where(Verdict.kind == VerdictKind.MASK)).first()
        mask = s.scalars(select(Verdict.mask_id).where(Verdict.kind == VerdictKind.MASK)).first()
        for i in range(12):
            task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair, mask_id=mask, state=TaskState.DONE,
                             is_gold=True, gold_answer={"label": "accept"})
            s.add(task)
            s.flush()
            label = "reject" if i < 3 else "accept"
            s.add(Verdict(kind=VerdictKind.MASK, source=VerdictSource.HUMAN, pair_id=pair, mask_id=mask,
                          task_id=task.id, user_id=world.user, label=label,
                          payload={"gold": True, "expected": "accept", "gold_correct": label == "accept"}))
    routing = RoutingSettings(min_gold_answers=12, human_error=0.05)
    with session_scope(settings.db_url) as s:
        measured = annotator_error(s, TaskKind.VERIFY_MASK, routing)
        assert (measured.rate, measured.source, measured.gold_answers) == (0.25, "gold", 12)
        too_few = annotator_error(s, TaskKind.VERIFY_MASK, RoutingSettings(min_gold_answers=13))
        assert (too_few.rate, too_few.source) == (0.05, "setting")
        other_kind = annotator_error(s, TaskKind.CHECK_EXHAUSTIVITY, routing)
        assert (other_kind.rate, other_kind.gold_answers) == (0.05, 0)
    _calibrate(settings, routing, (TaskKind.VERIFY_MASK,))
    row = _rows(settings, world.mv)["all"]
    assert row.metrics["human_error"] == 0.25 and row.metrics["annotator_error"]["source"] == "gold"


def test_validation_split_recalibration_holds_the_same_populations(settings, world, tmp_path):
    """A retrained verifier's rows from its validation split (engine/services/retrain.py) are the
    rows `dataengine calibrate` writes for the same sample: both scopes together, the budget."""
    from engine.db.models import ModelKind
    from engine.repositories.model_versions import get_or_create
    from engine.services.retrain import VerifierRetrain
    from engine.services.retrain import _calibrate as calibrate_validation_split

    records, probabilities = [], []
    for masks, label, target, scores in (([1], "complete", 1, WITH_MASKS_COMPLETE),
                                         ([1], "missing", 0, WITH_MASKS_MISSING),
                                         ([], "not_present", 1, PRESENCE_ABSENT),
                                         ([], "missing", 0, PRESENCE_PRESENT)):
        for score in scores:
            records.append({"label_source": "human", "masks": masks, "label": label, "target": target})
            probabilities.append({"accept": score, "reject_missing": 1 - score})
    records.append({"label_source": "ai", "masks": [], "label": "accept", "target": 1})  # not a person's: left out
    probabilities.append({"accept": 0.1, "reject_missing": 0.9})
    _calibrate(settings, RoutingSettings(), (TaskKind.CHECK_EXHAUSTIVITY,))
    expected = _rows(settings, world.ev)
    with session_scope(settings.db_url) as s:
        version = get_or_create(s, ModelKind.EXHAUSTIVITY_VERIFIER, "cal-ev-retrained", "2")
        request = VerifierRetrain(task="ev", export_dir=tmp_path, snapshot_id=0, base_ref="-", output_root=tmp_path)
        summary = calibrate_validation_split(s, request, version, records, probabilities)
        version_id = version.id
    got = _rows(settings, version_id)
    assert [c["scope"] for c in summary] == ["with_masks", "presence"]
    for scope in ("with_masks", "presence"):
        assert (got[scope].accept_threshold, got[scope].reject_threshold, got[scope].n_verdicts) == (
            expected[scope].accept_threshold, expected[scope].reject_threshold, expected[scope].n_verdicts)
        assert got[scope].metrics["pairs"] == expected[scope].metrics["pairs"]
        assert got[scope].metrics["source"] == "validation split of the training snapshot"
