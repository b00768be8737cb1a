"""The video section of ``dataengine report``: per proposer version, the SA-Co/VEval metrics on the
instance-exhaustive video pairs (engine/services/video_metrics.py), with pHOTA and the official
figures when the official video evaluator is installed (scripts/setup-oracle-video.sh)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from sqlalchemy.orm import Session

from dataengine.cli.context import console


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_video_section(session: Session, label_source: str, *, official: bool, files_out: Path | None) -> None:
    from engine.services.video_metrics import official_python, video_quality

    python = official_python() if official else None
    if official and python is None:
        click.echo("pHOTA: the official SA-Co video evaluator is not installed (scripts/setup-oracle-video.sh)")
    rows = video_quality(session, label_source, official=python, files_out=files_out)
    t = Table("id", "promoted", "pairs", "positive", "masklets", "cgF1 ×100", "pmF1", "IL_MCC", "IL tp/fp/fn/tn",
              "pHOTA", "official cgF1 ×100",
              title=f"video proposers on instance-exhaustive video pairs (label source {label_source})")
    t.add_column("proposer", min_width=24)
    for q in rows:
        c = q.il_counts
        official_cg = 100 * q.official["cgF1"] if q.official and "cgF1" in q.official else None
        t.add_row(str(q.model_version_id), "yes" if q.promoted else "", str(q.pairs), str(q.positive_pairs),
                  str(q.masklets), _fmt(q.cg_f1, 1), _fmt(q.pm_f1), _fmt(q.il_mcc),
                  f"{c['tp']}/{c['fp']}/{c['fn']}/{c['tn']}", _fmt(q.p_hota), _fmt(official_cg, 1), q.model)
    console.print(t)
    if files_out is not None and python is not None and rows:
        click.echo(f"wrote {files_out}/<version>/ (ground_truth.json, predictions.json, eval.json: the official "
                   "evaluator's output)")
