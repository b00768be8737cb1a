"""``dataengine retrain``, ``dataengine models promote`` and ``dataengine report``: the retraining
loop and quality per model version (registered on the main group in dataengine/cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.vocabulary import LabelSource, ModelKind, VerifierTask

if TYPE_CHECKING:
    from engine.services.export_rows import ExportFilters
    from engine.services.quality import QualityReport

LABEL_SOURCES = [s.value for s in LabelSource]

FILTER_HELP = "Training data when no --snapshot is given: a fresh export with these filters."


def _filters(label_source: str, val_percent: int, exhaustive_only: bool) -> ExportFilters:
    from engine.services.export_rows import ExportFilters

    return ExportFilters(label_source=label_source, val_percent=val_percent, exhaustive_only=exhaustive_only)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------- retrain
@click.group()
def retrain() -> None:
    """Retrain models on the engine's labels and register the new versions."""


@retrain.command("verifier")
@click.option("--kind", "task", type=click.Choice([t.value for t in VerifierTask]), required=True,
              help="Mask verifier (mv) or exhaustivity verifier (ev).")
@click.option("--snapshot", "snapshot_dir", type=click.Path(file_okay=False, exists=True),
              help="An earlier `dataengine export verifier` folder (default: a fresh export).")
@click.option("--label-source", type=click.Choice(LABEL_SOURCES), default=LabelSource.HUMAN.value, show_default=True,
              help=FILTER_HELP)
@click.option("--val-percent", type=click.IntRange(0, 100), default=10, show_default=True, help=FILTER_HELP)
@click.option("--steps", type=click.IntRange(1, 1_000_000), default=50, show_default=True, help="Optimiser steps.")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, 1, min_open=True), default=1e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=4, show_default=True)
@click.option("--lora", "lora_rank", type=click.IntRange(0, 1024), default=None,
              help="LoRA rank (0: full fine-tune; default: LoRA r=16 above 100M parameters, else full).")
@click.option("--seed", type=int, default=0, show_default=True)
@pass_ctx
def retrain_verifier(ctx: Context, task: str, snapshot_dir: str | None, label_source: str, val_percent: int,
                     steps: int, learning_rate: float, batch_size: int, lora_rank: int | None, seed: int) -> None:
    """Fine-tune a verifier on a verifier export and register it as a new model version.

    Starts from the promoted version of the kind (else the profile's checkpoint); the loss is the
    cross-entropy over the choice letters' logits the verifier scores with. The new version gets
    routing thresholds calibrated on the export's validation split (human verdicts only); with too
    few it routes everything to people until `dataengine calibrate` finds enough. It serves new
    runs once promoted: `dataengine models promote ID`.
    """
    from engine.ports import TrainConfig
    from pipelines.retraining import run_verifier_retrain

    ensure_schema(ctx.settings)
    config = TrainConfig(steps=steps, learning_rate=learning_rate, batch_size=batch_size, lora_rank=lora_rank,
                         seed=seed, device=ctx.settings.models.device)
    try:
        outcome = run_verifier_retrain(ctx.settings, task, snapshot_dir=Path(snapshot_dir) if snapshot_dir else None,
                                       filters=_filters(label_source, val_percent, False), config=config)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from None
    m = outcome.metrics
    losses = m["loss_curve"]
    click.echo(f"registered {task} verifier version {outcome.version_id} {outcome.name}:{outcome.version}\n"
               f"  checkpoint {outcome.output_dir}\n"
               f"  {m['mode']}, {m['trainable_params']:,} of {m['total_params']:,} parameters trained, "
               f"{m['n_train']} train / {m['n_val']} val examples\n"
               f"  loss {losses[0]:.4f} → {losses[-1]:.4f} over {len(losses)} steps; "
               f"val accuracy {_fmt(m['val_accuracy'])}, accept/not accuracy {_fmt(m['val_accept_accuracy'])}")
    for cal in outcome.calibrations:
        click.echo(f"  calibration ({cal['scope']}, {cal['n']} human val verdicts): accept ≥ "
                   f"{_fmt(cal['accept_threshold'])}, reject ≤ {_fmt(cal['reject_threshold'])}"
                   + (f" — {cal['reason']}" if cal["reason"] else ""))
    if outcome.skipped:
        click.echo(f"  {len(outcome.skipped)} records skipped, e.g. {outcome.skipped[0]}", err=True)


def _training_errors() -> tuple[type[Exception], ...]:
    """What a retraining run raises for a person to read: a bad export spec, a model that is not
    there, training that failed."""
    from annotators.loading import ModelUnavailable
    from annotators.verifier_training import TrainingError
    from engine.domain.exports import ExportSpecError
    from engine.services.export import ExportError
    from engine.services.promote import PromotionError
    from engine.services.retrain import RetrainError
    from engine.services.retrain_sam3 import TrainingCommandError
    from engine.services.training_data import TrainingDataError
    from engine.services.verifier_records import RecordError

    return (ExportSpecError, ModelUnavailable, TrainingError, ExportError, PromotionError, RetrainError,
            TrainingCommandError, TrainingDataError, RecordError)


@retrain.command("sam3")
@click.option("--command", "command", required=True,
              help="Training command (run by /bin/sh). {export_dir} and {output_dir} are replaced by the "
                   "quoted paths; DATAENGINE_EXPORT_DIR / DATAENGINE_OUTPUT_DIR are set too. It must leave a "
                   "checkpoint (save_pretrained folder) in the output folder.")
@click.option("--snapshot", "snapshot_dir", type=click.Path(file_okay=False, exists=True),
              help="An earlier `dataengine export coco` folder (default: a fresh export).")
@click.option("--label-source", type=click.Choice(LABEL_SOURCES), default=LabelSource.BOTH.value, show_default=True,
              help=FILTER_HELP)
@click.option("--exhaustive-only", is_flag=True, help=FILTER_HELP)
@click.option("--val-percent", type=click.IntRange(0, 100), default=10, show_default=True, help=FILTER_HELP)
@click.option("--timeout", type=click.FloatRange(0, min_open=True), help="Stop the command after this many seconds.")
@pass_ctx
def retrain_sam3(ctx: Context, command: str, snapshot_dir: str | None, label_source: str, exhaustive_only: bool,
                 val_percent: int, timeout: float | None) -> None:
    """Export SAM 3's training data (COCO), run a training command, register its checkpoint.

    The checkpoint is loaded through the proposer adapter before it is registered (its version is
    the sha256 of its weight files). A failing command registers nothing; its log is kept under
    <data_dir>/retrain-logs.
    """
    from pipelines.retraining import run_sam3_retrain

    ensure_schema(ctx.settings)
    try:
        outcome = run_sam3_retrain(ctx.settings, command, snapshot_dir=Path(snapshot_dir) if snapshot_dir else None,
                                   filters=_filters(label_source, val_percent, exhaustive_only), timeout_s=timeout)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from None
    if outcome.reused:
        click.echo(f"the command's checkpoint has the weights of registered version {outcome.version_id} "
                   f"{outcome.name}:{outcome.version}: nothing new registered")
        return
    click.echo(f"registered proposer version {outcome.version_id} {outcome.name}:{outcome.version}\n"
               f"  checkpoint {outcome.output_dir} ({outcome.seconds:.1f} s of training)\n"
               f"  promote it for new runs: dataengine models promote {outcome.version_id}")


# ---------------------------------------------------------------------------- promote
@click.command("promote")
@click.argument("version_id", type=int)
@click.option("--no-rescore", is_flag=True, help="Do not re-score the backlog (new runs only).")
@pass_ctx
def models_promote(ctx: Context, version_id: int, no_rescore: bool) -> None:
    """Make model version VERSION_ID the one new pipeline runs use for its kind.

    For a verifier, every image with an item no person has decided goes through the verify and
    route stages again (on the workers when a broker is configured, else here): the promoted
    version judges it and the router re-routes it. Human decisions are never touched.
    """
    from engine.services.promote import PromotionError
    from pipelines.promotion import promote_version

    ensure_schema(ctx.settings)
    try:
        promotion = promote_version(ctx.settings, version_id, rescore=not no_rescore)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from None
    replaced = f" (replaces version {promotion.previous_id})" if promotion.previous_id else ""
    click.echo(f"promoted {promotion.kind.value} version {promotion.version_id}{replaced}")
    if promotion.backlog:
        where = "here" if ctx.settings.embedded else "to the workers"
        click.echo(f"re-scoring {promotion.images} images in {len(promotion.backlog)} jobs (verify → route), {where}")
    elif promotion.kind == ModelKind.PROPOSER:
        click.echo("new runs propose with it; existing candidates are kept")
    else:
        click.echo("no backlog to re-score")


# ---------------------------------------------------------------------------- report
@click.command("report")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write PNG charts into this folder.")
@click.option("--hours", type=click.IntRange(1, 168), default=24, show_default=True,
              help="Human throughput window: the last N hours.")
@click.option("--label-source", type=click.Choice(LABEL_SOURCES), default=LabelSource.HUMAN.value, show_default=True,
              help="Whose decisions make the ground truth the proposers are scored on.")
@click.option("--predictions-out", "predictions_out", type=click.Path(file_okay=False),
              help="Write per proposer version the COCO results and the SA-Co ground truth it was scored on "
                   "(the official evaluator on the two gives the same numbers).")
@click.option("--official-video/--no-official-video", default=True, show_default=True,
              help="Run the official SA-Co video evaluator (when installed) for pHOTA and its own figures.")
@pass_ctx
def report(ctx: Context, out_dir: str | None, hours: int, label_source: str, predictions_out: str | None,
           official_video: bool) -> None:
    """Quality per model version: cgF1 / pmF1 / IL_MCC of proposers (the official SA-Co evaluator's
    conventions; cgF1 × 100) on instance-exhaustive ground-truth pairs, the same for video proposers
    with pHOTA (SA-Co/VEval), AI–human agreement of verifiers, acceptance rates and throughput."""
    from dataengine.cli.coverage import print_coverage_section
    from dataengine.cli.failure_report import print_failure_section
    from dataengine.cli.video_report import print_video_section
    from engine.db.session import session_scope
    from engine.services.quality import quality_report

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        data = quality_report(session, hours=hours, label_source=label_source,
                              predictions_out=Path(predictions_out) if predictions_out else None)
        _print_report(data, label_source)
        print_video_section(session, label_source, official=official_video,
                            files_out=Path(predictions_out) / "video" if predictions_out else None)
        print_coverage_section(session, ctx.settings.balancing)
        print_failure_section(session)
    for p in data.proposers:
        if p.files:
            click.echo(f"wrote {p.files} (predictions.json, ground_truth.json, scores.json)")
    if out_dir:
        from engine.services.report_charts import write_charts

        for path in write_charts(data, Path(out_dir)):
            click.echo(f"wrote {path}")


def _print_report(data: QualityReport, label_source: str = LabelSource.HUMAN) -> None:
    t = Table("id", "proposer", "promoted", "pairs", "positive", "cgF1 ×100", "pmF1", "IL_MCC", "IL tp/fp/fn/tn",
              title=f"proposers on instance-exhaustive ground truth (label source {label_source})")
    for p in data.proposers:
        c = p.il_counts
        t.add_row(str(p.model_version_id), p.model, "yes" if p.promoted else "", str(p.pairs), str(p.positive_pairs),
                  _fmt(p.cg_f1, 1), _fmt(p.pm_f1), _fmt(p.il_mcc), f"{c['tp']}/{c['fp']}/{c['fn']}/{c['tn']}")
    console.print(t)
    t = Table("id", "verifier", "task", "scope", "items", "agreement", "precision", "recall",
              title="AI verifiers against people")
    for v in data.verifiers:
        t.add_row(str(v.model_version_id), v.verifier, v.task_kind, v.scope, str(v.n), _fmt(v.agreement),
                  _fmt(v.precision), _fmt(v.recall))
    console.print(t)
    t = Table("id", "model", "kind", "promoted", "outputs", "decided/routed", "accepted", "acceptance", "routes",
              title="acceptance per model version")
    for a in data.acceptance:
        t.add_row(str(a.model_version_id), a.model, a.kind, "yes" if a.promoted else "", str(a.outputs),
                  str(a.decided), str(a.accepted), _fmt(a.acceptance),
                  ", ".join(f"{k} {n}" for k, n in sorted(a.routes.items())))
    console.print(t)
    t = Table("stage", "model", "images", "seconds", "images/s", title="stage throughput")
    for s in data.stages:
        t.add_row(s.stage, s.model, str(s.images), f"{s.seconds:.1f}", _fmt(s.images_per_s, 2))
    console.print(t)
    total = sum(h.verdicts for h in data.human_per_hour)
    click.echo(f"{total} human verdicts in the last {len(data.human_per_hour)} hours")
