"""The failure-mining section of ``dataengine report``: the model failures people found, by kind, and
for each prioritised job (``mine --prioritise-failures``) how its order found them: per quarter of the
order, the images people reviewed and those with a failure; the first quarter's failures per review over
the job's is how much faster than a random order of the same pool."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy.orm import Session

from dataengine.cli.context import console


def print_failure_section(session: Session) -> None:
    from engine.services.failures import failure_counts, prioritised_yields

    counts = failure_counts(session)
    console.print("model failures people found: " + ", ".join(
        f"{kind.replace('_', ' ')} {n}" for kind, n in counts.items()))
    yields = prioritised_yields(session)
    if not yields:
        console.print("no failure-mined job yet (`dataengine mine SOURCE --prioritise-failures`); "
                      "`python -m bench.failure_mining_sim` simulates the gain")
        return
    t = Table("job", "order", "images", "reviewed", "with a failure", "failures / review",
              title="failure-mined jobs: what people found, by place in the order")
    for job in yields:
        for n, band in enumerate(job.bands):
            rate = f"{band.with_failure / band.reviewed:.2f}" if band.reviewed else "-"
            t.add_row(job.name if n == 0 else "", band.band, str(band.images), str(band.reviewed),
                      str(band.with_failure), rate)
        speed = job.speedup
        t.add_row("", "first quarter vs the job", "", "", "",
                  f"{speed:.2f}× faster than random" if speed is not None else "not enough reviews yet")
    console.print(t)
