"""PNG charts of a quality report (matplotlib's Agg canvas: no display, no global pyplot state).
Every chart is written, with a note in place of the bars where there is nothing to plot yet.

What a reader could misread is said on the chart: a missing value (None) is marked "n/a" where its
bar would be, a chart whose every value is zero or missing says so in the middle rather than being
an empty plot, and a count axis has whole-number ticks only. ``figures`` builds the charts without
writing them (tests inspect the figure objects)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from engine.services.quality import QualityReport

CHARTS = ("proposer_quality.png", "verifier_agreement.png", "acceptance.png", "throughput.png")
#: what marks a missing value, and a chart with nothing but zeros and missing values
NA = "n/a"


def figures(report: QualityReport) -> dict[str, Figure]:
    """The report's charts by file name (``CHARTS``), not yet written."""
    return {
        CHARTS[0]: _proposers(report),
        CHARTS[1]: _bars("AI–human agreement per verifier version", "agreement",
                         [f"{v.verifier}\n{v.task_kind}/{v.scope}" for v in report.verifiers],
                         {"agreement": [v.agreement for v in report.verifiers],
                          "precision": [v.precision for v in report.verifiers]},
                         "no verifier verdict has a human verdict to compare with yet", limit=1.0),
        CHARTS[2]: _bars("Acceptance per model version", "share accepted",
                         [f"{a.model}\n{a.kind}" for a in report.acceptance],
                         {"acceptance": [a.acceptance for a in report.acceptance]},
                         "no model output has been decided yet", limit=1.0),
        CHARTS[3]: _throughput(report),
    }


def write_charts(report: QualityReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(report).items():
        path = out_dir / name
        FigureCanvasAgg(fig)
        fig.savefig(path, format="png")
        paths.append(path)
    return paths


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _empty(title: str, note: str) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _note_if_blank(ax: Axes, values: Sequence[float | None], what: str) -> None:
    """Every value zero or missing: say so in the middle of the plot (it would look empty)."""
    if all(not v for v in values):
        ax.text(0.5, 0.5, f"{NA}: {what}", ha="center", va="center", transform=ax.transAxes, color="0.35")


def _bars(title: str, ylabel: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
          note: str, limit: float | None = None) -> Figure:
    if not labels:
        return _empty(title, note)
    fig = _figure(max(8.0, 1.2 * len(labels)))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, [0.0 if v is None else v for v in values], width=width, label=name)
        for x, v in zip(xs, values, strict=True):
            if v is None:  # no bar is not a zero: mark it
                ax.text(x, 0.0, NA, ha="center", va="bottom", fontsize=7, rotation=90, color="0.35")
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if limit is not None:
        ax.set_ylim(0, limit)
    _note_if_blank(ax, [v for values in series.values() for v in values], "every value is zero or missing")
    ax.legend()
    return fig


def _proposers(report: QualityReport) -> Figure:
    rows = report.proposers
    return _bars("Proposer quality on human-verified exhaustive pairs", "score (0–100)",
                 [f"{p.model}\n{p.pairs} pairs" for p in rows],
                 {"cgF1": [p.cg_f1 for p in rows],
                  "pmF1 × 100": [None if p.pm_f1 is None else 100 * p.pm_f1 for p in rows],
                  "IL_MCC × 100": [None if p.il_mcc is None else 100 * p.il_mcc for p in rows]},
                 "no human-verified exhaustive pair or confirmed negative yet", limit=100.0)


def _throughput(report: QualityReport) -> Figure:
    hours = report.human_per_hour
    fig = _figure()
    ax = fig.add_subplot()
    # matplotlib plots datetimes through its units registry; its stubs accept only numbers and arrays
    ax.plot([h.hour for h in hours], [h.verdicts for h in hours], marker="o")  # type: ignore[arg-type]
    ax.set_title("Human verdicts per hour (UTC)")
    ax.set_ylabel("verdicts")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count: no 0.5 verdicts
    ax.set_ylim(bottom=0, top=max([4, *(h.verdicts for h in hours)]) * 1.05)
    _note_if_blank(ax, [h.verdicts for h in hours], "no human verdict in these hours")
    fig.autofmt_xdate()
    return fig
