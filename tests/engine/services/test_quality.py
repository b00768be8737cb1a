"""Quality per model version on the labels of tests.factories.seed_labelled (hand-computed), and
the report's charts."""

from __future__ import annotations

import pytest

from engine.db.session import session_scope
from engine.services.quality import quality_report
from engine.services.report_charts import CHARTS, write_charts
from tests.engine.domain.test_metrics import smoothed_f1
from tests.factories import seed_labelled


@pytest.fixture
def ids(settings):
    with session_scope(settings.db_url) as s:
        return seed_labelled(s, settings.media_path)


def test_proposer_quality_on_human_verified_pairs(settings, ids):
    with session_scope(settings.db_url) as s:
        report = quality_report(s)
    (p,) = report.proposers  # the human-drawn mask's source version is not a proposer
    assert p.model == "test-proposer:1"
    # ground truth: img0 dog (exhaustive: m0), img0 cat (confirmed negative), img2 dog (corrected:
    # m0 + a drawn mask). The proposer's two masks per pair score 0.9 and 0.8 (both count).
    assert (p.pairs, p.positive_pairs) == (3, 2)
    # dog0: m0 matched (IoU 1), m1 FP; dog2: m0 matched, m1 against the drawn mask (IoU 0) → FP, FN
    # TP 2, FP 2, FN 1 at every τ → the evaluator's smoothed F1 (4/7 unsmoothed)
    assert p.pm_f1 == pytest.approx(smoothed_f1(2, 2, 1), abs=1e-12)
    # image level: both positives found (TP 2), the negative got masks (FP 1): TN + FN = 0 → 0
    assert p.il_counts == {"tp": 2, "fp": 1, "fn": 0, "tn": 0}
    assert p.il_mcc == 0.0 and p.cg_f1 == 0.0


def test_acceptance_and_agreement_per_version(settings, ids):
    with session_scope(settings.db_url) as s:
        report = quality_report(s)
    by_model = {a.model: a for a in report.acceptance}
    proposer = by_model["test-proposer:1"]
    # 24 masks; decided: dog0 2, cat0 2, dog1 2, cat1 2, dog2 2, dog3 1; accepted: dog0 1, dog1 2, dog2 1, dog3 1
    assert (proposer.outputs, proposer.decided, proposer.accepted) == (24, 11, 5)
    mv = by_model["test-mv:1"]
    assert (mv.outputs, mv.accepted) == (5, 2) and mv.acceptance == pytest.approx(0.4)
    agreement = {(v.verifier, v.scope): v for v in report.verifiers}
    dog3 = agreement[("test-mv:1", "all")]  # said reject where a person accepted
    assert (dog3.n, dog3.agreed) == (1, 0)


def test_report_writes_png_charts(settings, ids, tmp_path):
    with session_scope(settings.db_url) as s:
        report = quality_report(s)
    paths = write_charts(report, tmp_path / "charts")
    assert [p.name for p in paths] == list(CHARTS)
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_charts_of_an_empty_database(settings, tmp_path):
    with session_scope(settings.db_url) as s:
        report = quality_report(s)
    assert report.proposers == [] and report.acceptance == []
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in write_charts(report, tmp_path))


def test_pairs_with_a_crowd_mask_are_not_ground_truth(settings, ids):
    from engine.db.models import Mask

    with session_scope(settings.db_url) as s:
        s.get(Mask, ids["dog2_drawn"]).is_crowd = True  # a person grouped instances they could not separate
    with session_scope(settings.db_url) as s:
        (p,) = quality_report(s).proposers
    assert (p.pairs, p.positive_pairs) == (2, 1)  # dog2 is left out
    # dog0 alone: TP 1, FP 1 → F1 2/3 at every τ (smoothed)
    assert p.pm_f1 == pytest.approx(smoothed_f1(1, 1, 0), abs=1e-12)
