"""The concept-coverage section of ``dataengine report``: per concept, accepted masks, positive and
negative pairs, the proposer's acceptance, the verifiers' agreement with people and whether the
balancing policy (``Settings.balancing``) counts it saturated; the long tail as a bar per row."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy.orm import Session

from dataengine.cli.context import console
from engine.balancing_settings import BalancingSettings

MAX_ROWS = 50
BAR = 30


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_coverage_section(session: Session, settings: BalancingSettings) -> None:
    from engine.domain.balancing import is_saturated
    from engine.services.concept_stats import concept_stats

    stats = concept_stats(session, label_source=settings.label_source)
    top = max((s.accepted_masks for s in stats), default=0)
    saturated = sum(1 for s in stats if is_saturated(s, settings))
    t = Table("concept", "accepted masks", "", "positive pairs", "negatives", "acceptance", "agreement (n)",
              "human decided", "saturated",
              title=f"concept coverage: {len(stats)} concepts, {saturated} saturated "
                    f"(label source {settings.label_source}; balancing {'on' if settings.enabled else 'off'})")
    for s in stats[:MAX_ROWS]:
        bar = "█" * (round(BAR * s.accepted_masks / top) if top else 0)
        t.add_row(s.text, str(s.accepted_masks), bar, str(s.positive_pairs), str(s.negative_pairs),
                  _fmt(s.model_acceptance), f"{_fmt(s.agreement)} ({s.compared})", str(s.human_decided),
                  "yes" if is_saturated(s, settings) else "")
    console.print(t)
    if len(stats) > MAX_ROWS:
        rest = stats[MAX_ROWS:]
        console.print(f"… {len(rest)} more concepts with {sum(s.accepted_masks for s in rest)} accepted masks")
