"""``dataengine calibrate``: verifier scores fitted to human verdicts, thresholds stored per population."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.vocabulary import TaskKind, VerifierTask

if TYPE_CHECKING:
    from engine.services.calibrate import KindCalibration

ALL = "all"
KINDS: dict[str, tuple[TaskKind, ...]] = {
    VerifierTask.MV: (TaskKind.VERIFY_MASK,),
    VerifierTask.EV: (TaskKind.CHECK_EXHAUSTIVITY,),
    ALL: (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY),
}


@click.command()
@click.option("--kind", type=click.Choice([*(t.value for t in VerifierTask), ALL]), default=ALL, show_default=True,
              help="Mask verification, exhaustivity verification, or both.")
@click.option("--target", type=float, default=None, help="Target precision (default: the routing setting).")
@click.option("--method", type=click.Choice(["isotonic", "platt"]), default=None,
              help="Calibration method (default: the routing setting).")
@pass_ctx
def calibrate(ctx: Context, kind: str, target: float | None, method: str | None) -> None:
    """Fit verifier scores to human verdicts; store thresholds that keep every population at the target.

    Each population on its own (routing.* settings): automatic decisions at the target precision,
    final labels at most routing.max_final_drop below all-human, and the exhaustivity verifier's
    two scopes under one positive-pair budget (routing.max_positive_loss). Reports per verifier
    version: coverage (share auto-decided), measured precision with its 95% interval, AI–human
    agreement, the estimated final precision and positive-pair loss; with too few human verdicts,
    how many more are needed (routing then keeps sending everything to humans).
    """
    from engine.db.session import session_scope
    from engine.services.calibrate import calibrate as run_calibration

    ensure_schema(ctx.settings)
    routing = ctx.settings.routing
    target = routing.target_precision if target is None else target
    if not 0.5 < target < 1:
        raise click.ClickException("--target must lie between 0.5 and 1")
    with session_scope(ctx.settings.db_url) as session:
        results = run_calibration(session, target_precision=target, method=method or routing.calibration_method,
                                  kinds=KINDS[kind], routing=routing)
    if not results:
        click.echo("no verifier has judged anything yet: run a job through --until verify first")
        return
    _print_table(results, target)
    _print_notes(results)


def _print_table(results: Sequence[KindCalibration], target: float) -> None:
    table = Table("verifier", "task", "scope", "human verdicts", "accept ≥", "reject ≤", "coverage",
                  "precision (95% CI)", "agreement", title=f"calibration at target precision {target}")
    for r in results:
        res = r.result
        acc = res.accept
        precision = (f"{acc.precision:.3f} ({acc.ci_low:.3f}–{acc.ci_high:.3f})"
                     if acc is not None and acc.passed else "-")
        table.add_row(r.verifier, r.task_kind.value, r.scope, str(res.n),
                      f"{res.accept_threshold:.3f}" if res.accept_threshold is not None else "none",
                      f"{res.reject_threshold:.3f}" if res.reject_threshold is not None else "none",
                      f"{res.coverage:.1%}", precision,
                      f"{res.agreement:.1%}" if res.agreement is not None else "-")
    console.print(table)


def _print_notes(results: Sequence[KindCalibration]) -> None:
    """Per population: why it has no thresholds, the estimated final precision, the positive-pair loss."""
    for r in results:
        if r.result.reason:
            click.echo(f"{r.verifier} {r.task_kind.value} ({r.scope}): {r.result.reason}")
        if r.result.final_precision is not None and r.result.all_human_precision is not None:
            click.echo(f"{r.verifier} {r.task_kind.value} ({r.scope}): estimated final precision "
                       f"{r.result.final_precision:.3f} vs all-human {r.result.all_human_precision:.3f} "
                       f"(annotator error {r.result.human_error:.3f})")
        if r.pairs is not None and r.scope == "presence":
            budget = r.pairs.max_positive_loss
            click.echo(f"{r.verifier} positive pairs: estimated share labelled wrongly by the accept thresholds "
                       f"{r.pairs.positive_loss:.3f}" + (f" (budget {budget:.3f})" if budget is not None else "")
                       + (f"; {r.pairs.reason}" if r.pairs.reason else ""))
