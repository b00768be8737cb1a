"""The report's charts as figure objects (engine/services/report_charts.py): a missing or all-zero
series is marked "n/a" rather than drawn as an empty plot, and a count axis has whole-number ticks."""

from __future__ import annotations

import datetime as dt

from matplotlib.figure import Figure

from engine.services.dashboard import HourCount, VerifierAgreement
from engine.services.quality import Acceptance, QualityReport
from engine.services.report_charts import CHARTS, NA, figures, write_charts

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def report(verdicts: list[int], acceptance: list[float | None]) -> QualityReport:
    return QualityReport(
        generated_at=T0, proposers=[], stages=[],
        verifiers=[VerifierAgreement(1, "mv:1", "mask_verifier", "verify_mask", "all",
                                     0, 0, None, 0, 0, 0, None, None)],
        acceptance=[Acceptance(i, f"m:{i}", "proposer", False, 3, 0, 0, a) for i, a in enumerate(acceptance)],
        human_per_hour=[HourCount(T0 + dt.timedelta(hours=h), n) for h, n in enumerate(verdicts)])


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_an_all_zero_or_missing_chart_says_n_a():
    charts = figures(report([0, 0, 0], [None, 0.0]))
    assert any(t.startswith(f"{NA}:") for t in texts(charts["throughput.png"]))
    assert any(t.startswith(f"{NA}:") for t in texts(charts["verifier_agreement.png"]))  # only None values
    acceptance = texts(charts["acceptance.png"])
    assert acceptance.count(NA) == 1 and any(t.startswith(f"{NA}:") for t in acceptance)  # one bar has no value
    assert "no human-verified" in texts(charts["proposer_quality.png"])[0]  # no rows at all: the note


def test_a_chart_with_values_has_no_blank_note():
    charts = figures(report([0, 3, 1], [0.5, 1.0]))
    assert not any(t.startswith(NA) for name in ("throughput.png", "acceptance.png") for t in texts(charts[name]))


def test_the_count_axis_has_whole_ticks():
    for verdicts in ([0, 3, 1], [0, 0], [7, 2, 5, 1], [1]):
        (ax,) = figures(report(verdicts, []))["throughput.png"].axes
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), (verdicts, ticks)


def test_every_chart_is_written(tmp_path):
    paths = write_charts(report([0, 2], [None]), tmp_path)
    assert [p.name for p in paths] == list(CHARTS) and all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
