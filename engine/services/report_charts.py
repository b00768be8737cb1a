"""PNG charts of a quality report (matplotlib's Agg canvas: no display, no global pyplot state).
Every chart is written, with a note in place of the bars where there is nothing to plot yet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.services.quality import QualityReport

CHARTS = ("proposer_quality.png", "verifier_agreement.png", "acceptance.png", "throughput.png")


def write_charts(report: QualityReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in CHARTS]
    _proposers(report, paths[0])
    _bars(paths[1], "AI–human agreement per verifier version", "agreement",
          [f"{v.verifier}\n{v.task_kind}/{v.scope}" for v in report.verifiers],
          {"agreement": [v.agreement for v in report.verifiers], "precision": [v.precision for v in report.verifiers]},
          "no verifier verdict has a human verdict to compare with yet", limit=1.0)
    _bars(paths[2], "Acceptance per model version", "share accepted",
          [f"{a.model}\n{a.kind}" for a in report.acceptance],
          {"acceptance": [a.acceptance for a in report.acceptance]},
          "no model output has been decided yet", limit=1.0)
    _throughput(report, paths[3])
    return paths


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")


def _empty(path: Path, title: str, note: str) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    _save(fig, path)


def _bars(path: Path, title: str, ylabel: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
          note: str, limit: float | None = None) -> None:
    if not labels:
        _empty(path, title, note)
        return
    fig = _figure(max(8.0, 1.2 * len(labels)))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, [0.0 if v is None else v for v in values], width=width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if limit is not None:
        ax.set_ylim(0, limit)
    ax.legend()
    _save(fig, path)


def _proposers(report: QualityReport, path: Path) -> None:
    rows = report.proposers
    _bars(path, "Proposer quality on human-verified exhaustive pairs", "score (0–100)",
          [f"{p.model}\n{p.pairs} pairs" for p in rows],
          {"cgF1": [p.cg_f1 for p in rows],
           "pmF1 × 100": [None if p.pm_f1 is None else 100 * p.pm_f1 for p in rows],
           "IL_MCC × 100": [None if p.il_mcc is None else 100 * p.il_mcc for p in rows]},
          "no human-verified exhaustive pair or confirmed negative yet", limit=100.0)


def _throughput(report: QualityReport, path: Path) -> None:
    hours = report.human_per_hour
    fig = _figure()
    ax = fig.add_subplot()
    # matplotlib plots datetimes through its units registry; its stubs accept only numbers and arrays
    ax.plot([h.hour for h in hours], [h.verdicts for h in hours], marker="o")  # type: ignore[arg-type]
    ax.set_title("Human verdicts per hour (UTC)")
    ax.set_ylabel("verdicts")
    ax.set_ylim(bottom=0)
    fig.autofmt_xdate()
    _save(fig, path)
