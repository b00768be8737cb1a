"""Video metrics per proposer version (engine/services/video_metrics.py): the masklet IoU, the demo
F1 family computed here and checked equal to the official SA-Co video evaluator's on the same files,
and pHOTA taken from it."""

from __future__ import annotations

import numpy as np
import pytest

from engine.db.session import session_scope
from engine.domain import veval
from engine.domain.masks import encode_mask
from engine.services import dashboard, video_metrics
from tests import veval_oracle
from tests.engine.test_export_video import grid, seed_videos, seeded  # noqa: F401 - the fixture
from tests.web.live import browser_page, live_server, save_screenshot  # noqa: F401 - fixtures


def frames(boxes) -> veval.Track:
    return veval.track(len(boxes), 24, 32, [
        veval.FrameMask(i, m.counts, m.bbox, m.area) for i, b in enumerate(boxes) if b is not None
        for m in [encode_mask(grid(b))]])


def test_masklet_iou_sums_intersections_and_unions_over_frames():
    a = frames([(0, 0, 4, 4), (0, 0, 4, 4), None])
    b = frames([(2, 0, 4, 4), None, (0, 0, 2, 2)])
    # frame 0: 8 of 24; frame 1: only a (16); frame 2: only b (4)
    assert video_metrics.masklet_iou(a, b) == pytest.approx(8 / (24 + 16 + 4))
    assert video_metrics.masklet_iou(a, a) == 1.0
    empty = frames([None, None, None])
    assert video_metrics.masklet_iou(empty, empty) == 1.0  # as the official iou_masklets
    assert video_metrics.masklet_iou(a, empty) == 0.0
    assert video_metrics.masklet_ious([a, b], [a]).shape == (2, 1)


def test_the_track_refuses_a_frame_outside_the_video():
    with pytest.raises(ValueError):
        veval.track(2, 24, 32, [veval.FrameMask(2, "", (0, 0, 1, 1), 1)])


def test_video_quality_per_proposer_version(settings, seeded):
    with session_scope(settings.db_url) as s:
        rows = {q.model_version_id: q for q in video_metrics.video_quality(s, "ai")}
        assert video_metrics.video_quality(s, "human") == []  # nothing decided by people
    good, bad = rows[seeded.good], rows[seeded.bad]
    # the four instance-exhaustive pairs: a:ball, b:ball (positive), a:cube, b:cube (negative)
    assert (good.pairs, good.positive_pairs, bad.pairs) == (4, 2, 4)
    assert good.il_counts == {"tp": 2, "fp": 0, "fn": 0, "tn": 2}
    assert good.cg_f1 == pytest.approx(100.0, abs=0.02) and good.p_hota is None
    # a:ball: one of two found; b:ball: IoU 1/3, below every threshold; a:cube: a false positive
    assert bad.il_counts == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}
    assert bad.pm_f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), abs=1e-3)  # P 1/2, R 1/3
    assert bad.cg_f1 < good.cg_f1 and bad.masklets == 3


def test_the_dashboard_shows_each_video_proposer_on_what_people_decided(settings):
    with session_scope(settings.db_url) as s:
        ids = seed_videos(s, human=True)
    with session_scope(settings.db_url) as s:
        rows = {q.model_version_id: q for q in dashboard.dashboard(s).video_proposers}
    assert set(rows) == {ids.good, ids.bad}
    assert rows[ids.good].il_counts == {"tp": 2, "fp": 0, "fn": 0, "tn": 2}
    assert rows[ids.bad].il_counts == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}
    assert rows[ids.bad].cg_f1 < rows[ids.good].cg_f1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_our_numbers_are_the_official_evaluators(settings, seeded, tmp_path):
    python = video_metrics.official_python() or (veval_oracle.PYTHON if veval_oracle.available() else None)
    if python is None:
        pytest.fail(f"{veval_oracle.PYTHON} is missing: run scripts/setup-venv.sh dev")
    with session_scope(settings.db_url) as s:
        rows = video_metrics.video_quality(s, "ai", official=python, files_out=tmp_path)
    assert len(rows) == 2
    for q in rows:
        assert q.official is not None
        assert q.cg_f1 / 100 == pytest.approx(q.official["cgF1"], abs=1e-6)
        assert q.pm_f1 == pytest.approx(q.official["pmF1"], abs=1e-6)
        assert q.il_mcc == pytest.approx(q.official["IL_MCC"], abs=1e-6)
        assert q.p_hota == q.official["pHOTA"]
    good, bad = sorted(rows, key=lambda q: -q.cg_f1)
    assert good.p_hota == pytest.approx(1.0) and bad.p_hota is not None and bad.p_hota < 1.0
    assert (tmp_path / f"{bad.model_version_id}-test-video-proposer_sam3-video_bad" / "eval.json").is_file()
    assert np.isfinite(bad.cg_f1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_report_has_a_video_section(settings, seeded, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dataengine.cli.main import cli

    monkeypatch.setenv("DATAENGINE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("DATAENGINE_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATAENGINE_BROKER_URL", raising=False)
    result = CliRunner().invoke(cli, ["report", "--label-source", "ai", "--no-official-video"])
    assert result.exit_code == 0, result.output
    assert "video proposers on instance-exhaustive video pairs (label source ai)" in result.output
    lines = [line for line in result.output.splitlines() if "2/1/0/1" in line]  # the bad version's IL counts
    assert len(lines) == 1 and f" {seeded.bad} " in lines[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_dashboard_page_shows_the_video_proposers(settings, live_server, browser_page):  # noqa: F811
    from engine.domain.vocabulary import Role
    from engine.services.users import create_user

    password = "a long enough password"
    with session_scope(settings.db_url) as s:
        ids = seed_videos(s, human=True)
        create_user(s, "root", password, Role.ADMIN)
    page = browser_page
    page.goto(f"{live_server}/login?next=/dashboard")
    page.fill("#username", "root")
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}/dashboard")
    page.wait_for_function("() => document.body.dataset.state === 'ready'")
    table = page.inner_text("#video-proposers")
    assert "test-video-proposer/sam3-video:good" in table and "test-video-proposer/sam3-video:bad" in table
    assert "2/0/0/2" in table and "2/1/0/1" in table  # IL tp/fp/fn/tn of each version
    page.locator("#video-card").scroll_into_view_if_needed()
    save_screenshot(page, "dashboard-video-proposers")
    assert ids.good != ids.bad
