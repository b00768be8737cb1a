"""Mining jobs: ``dataengine mine``, ``status`` and ``heal``, and the tables they print (``demo``, in
dataengine/cli/demo.py, runs its job through :func:`_run_mine` too)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from rich.markup import escape
from rich.table import Table

import engine
from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.stages import STAGE_NAMES
from engine.domain.vocabulary import ItemStatus, MediaKind, SourceKind, StageStatus
from engine.settings import MODEL_PROFILES, Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine.db.models import MiningJob
    from engine.services.status import JobReport
    from engine.services.summary import JobSummary
    from pipelines.runner import RunResult

SAMPLE_IMAGES = Path(engine.__file__).resolve().parent / "sample_data" / "images"
T = TypeVar("T")


@click.command()
@click.argument("source")
@click.option("--job", "job_name", help="Job name (default: derived from the source). Re-use it to resume.")
@click.option("--kind", type=click.Choice([k.value for k in SourceKind]),
              help="Source kind (default: detected from the path).")
@click.option("--images-dir", type=click.Path(file_okay=False), help="COCO: folder the file_names are relative to.")
@click.option("--media", type=click.Choice([m.value for m in MediaKind]), default=None,
              help="What the job mines: image (default) or video (.mp4/.webm/.mov/.mkv in a folder, URL list or "
                   "WebDataset; --kind frames implies video).")
@click.option("--retry-failed", is_flag=True, help="Try the job's failed items again (every stage).")
@click.option("--until", type=click.Choice(STAGE_NAMES),
              default=None,
              help="Last stage to run (default: all stages; a re-run keeps the job's own).")
@click.option("--profile", "model_profile", type=click.Choice(MODEL_PROFILES), default=None,
              help="Models this job's stages use (default: the model_profile setting; a re-run keeps the job's own).")
@click.option("--prioritise-failures", "prioritise", is_flag=True,
              help="Embed the pool while mining, then run the model stages on the images most like recent model "
                   "failures first (rejected masks, missing instances, false positives); image jobs.")
@click.option("--no-wait", is_flag=True, help="With a broker: enqueue and return without waiting.")
@click.option("--timeout", type=float, help="With a broker: stop waiting after this many seconds.")
@pass_ctx
def mine(ctx: Context, source: str, job_name: str | None, kind: str | None, images_dir: str | None,
         media: str | None, retry_failed: bool, until: str | None, model_profile: str | None, prioritise: bool,
         no_wait: bool, timeout: float | None) -> None:
    """Mine SOURCE: a folder, a URL list (.txt/.csv/.tsv), WebDataset .tar shards or a COCO .json;
    with --media video their video files, with --kind frames a folder of frame folders (one per video).

    Items are fetched, validated, normalised, stored by sha256 and deduplicated (exact and
    perceptual); then captioned, parsed into noun phrases, given SAM 3 candidate masks, judged by
    the AI verifiers and routed to auto-accept, auto-reject or human tasks (--until stops earlier).
    Re-running the same job resumes it; nothing is stored twice.
    """
    _run_mine(ctx.settings, source, job_name=job_name, kind=kind,
              options={"images_dir": str(Path(images_dir).resolve()) if images_dir else None, "media": media,
                       "prioritise_failures": prioritise or None},
              retry_failed=retry_failed, until=until, model_profile=model_profile, wait=not no_wait,
              timeout=timeout)


def _run_mine(settings: Settings, source: str, *, job_name: str | None, kind: str | None,
              options: dict[str, str | bool | None], retry_failed: bool, until: str | None, model_profile: str | None,
              wait: bool, timeout: float | None, queue_hint: bool = True) -> JobSummary | None:
    """Run the job with a progress bar, then print what it did; errors of the source, the job's name
    or an outage end the command with one line. Returns what the job produced (None when it was only
    enqueued); ``queue_hint``: say how to look at the human tasks (the demo prints its own next steps)."""
    from engine.services.mine import JobConflict
    from engine.sources import SourceError
    from pipelines.runner import outage_errors, outage_line, run_mine

    ensure_schema(settings)
    with _mining_progress() as progress:
        try:
            result = run_mine(settings, source, job_name=job_name, kind=kind, options=options,
                              retry_failed=retry_failed, until=until, model_profile=model_profile, wait=wait,
                              timeout_s=timeout, on_progress=progress)
        except (SourceError, JobConflict, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except outage_errors() as exc:  # before the follow loop or after it: not retried (it enqueues)
            rest = ("run the same command again to resume the job" if settings.embedded
                    else "a job already planned goes on on the workers: see `dataengine status`")
            raise click.ClickException(f"{outage_line(exc, 0).split(';')[0]}; {rest}") from None
    return _print_run(settings, result, wait, queue_hint=queue_hint)


@contextlib.contextmanager
def _mining_progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar of the items mined (on a terminal only), and the function that moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("mining"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("mine", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def _print_run(settings: Settings, result: RunResult, wait: bool, *, queue_hint: bool = True) -> JobSummary | None:
    plan = result.plan
    where = "in-process" if settings.embedded else "on Celery workers"
    click.echo(f"job {plan.name!r} (id {plan.job_id}): {plan.items} items listed, {plan.new_items} new, "
               f"{len(plan.pending)} to mine {where}")
    if not settings.embedded and not wait:
        click.echo("enqueued; follow it with `dataengine status " + plan.name + "`")
        return None
    _print_report(result.report, result if settings.embedded else None)
    if result.seconds:
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(result.seconds.items()))
        click.echo(f"mining time per step (summed): {steps}")
    summary = _retrying(lambda: _print_summary(settings, plan.job_id, queue_hint=queue_hint), plan.job_id)
    click.echo(f"wall time {result.wall_s:.1f}s")
    if not result.finished:
        raise click.ClickException("timed out waiting for workers; the job goes on in the background")
    return summary


def _retrying(read: Callable[[], T], job_id: int, within_s: float = 60.0) -> T:
    """Run ``read`` (database reads, then printing) again while the database is restarting, for up to
    ``within_s``; one line says so, never the error's text. Returns what ``read`` returned."""
    from pipelines.runner import outage_errors, outage_line

    deadline = time.monotonic() + within_s
    told = False
    while True:
        try:
            return read()
        except outage_errors() as exc:
            if not told:
                click.echo(outage_line(exc, job_id), err=True)
                told = True
            if time.monotonic() > deadline:
                raise click.ClickException(f"{outage_line(exc, job_id).split(';')[0]} for {within_s:.0f} s; "
                                           "see `dataengine status` later") from None
            time.sleep(1.0)


def _print_summary(settings: Settings, job_id: int, *, queue_hint: bool = True) -> JobSummary:
    """What the job produced, a warning where models with random weights produced it, and how many
    tasks wait for a human (with ``queue_hint``, where to judge them)."""
    from engine.db.session import session_scope
    from engine.services.summary import job_summary

    with session_scope(settings.db_url) as session:
        summary = job_summary(session, job_id)
    table = Table("images", "duplicates", "captions", "concepts", "pairs", "masks", "human tasks",
                  "failures", title="what this job produced")
    table.add_row(*(str(v) for v in (summary.images, summary.duplicates, summary.captions, summary.concepts,
                                      summary.pairs, summary.masks, summary.human_tasks, summary.failures)))
    console.print(table)
    if summary.random_weight_models:
        console.print(
            "[bold yellow]Note:[/] model outputs of this job come from RANDOM-WEIGHT tiny models "
            f"({', '.join(summary.random_weight_models)}): captions, phrases and masks from them "
            "are noise that only exercises the pipeline. Set DATAENGINE_MODEL_PROFILE=sam3 for real models.")
    if summary.human_tasks:
        console.print(f"{summary.human_tasks} tasks wait for a human (no calibrated verifier thresholds yet, "
                      "or uncertain, or in the audit sample)"
                      + (f": judge them in the queue (`dataengine serve`, then {base_url(settings)}/queue); "
                         "`dataengine calibrate` once humans have judged some." if queue_hint else "."))
    return summary


def base_url(settings: Settings, port: int | None = None) -> str:
    """The web server's address as a browser on this machine reaches it (serve.host, or loopback
    where the server binds every address)."""
    host = settings.serve.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or settings.serve.port}"


def _print_report(report: JobReport, run: RunResult | None = None) -> None:
    """Per stage, in pipeline order: the job's counts so far and, with ``run`` (an in-process run),
    what this run did — items finished, seconds and items/s; without, the items/s of the stage's
    processing so far (from the rows' times; '-' where they span under a second)."""
    columns = ["stage", "done", "duplicate", "near dup", "skipped", "failed", "pending", "total"]
    columns += ["run items", "run s", "items/s"] if run is not None else ["items/s"]
    title = escape(f"job {report.name} [{report.status}] {report.source_kind}: {report.source_uri}")
    table = Table(*columns, title=title,
                  caption="run …: this run only (items finished, seconds, items/s)" if run is not None else None)
    for stage in report.stages:
        c = stage.counts
        row = [stage.stage, str(c.get(ItemStatus.DONE, 0)), str(c.get(ItemStatus.DUPLICATE, 0)),
               str(c.get(ItemStatus.NEAR_DUPLICATE, 0)), str(c.get(StageStatus.SKIPPED, 0)),
               str(c.get(ItemStatus.FAILED, 0)), str(c.get(ItemStatus.PENDING, 0)), str(stage.total)]
        if run is not None:
            items, seconds = run.stage_items.get(stage.stage, 0), run.stage_seconds.get(stage.stage, 0.0)
            row += [str(items), f"{seconds:.2f}" if seconds else "-",
                    f"{items / seconds:.1f}" if items and seconds > 0 else "-"]
        else:
            row.append(f"{stage.items_per_s:.1f}" if stage.items_per_s else "-")
        table.add_row(*row)
    console.print(table)
    if report.failures:
        failures = Table("count", "reason", "example item", title="failed items by reason")
        for group in report.failures:
            # escaped: a reason may hold brackets (pip install 'dataengine[models]') that rich reads as markup
            failures.add_row(str(group.count), escape(group.reason), group.example_key)
        console.print(failures)
    if report.dropped_annotations:
        dropped = report.dropped_annotations
        console.print(f"{dropped.count} item(s) kept their good dataset annotations and left bad ones out, "
                      f"e.g. {dropped.example_key}: {escape(dropped.reason)} (all reasons: status --json, "
                      "source_meta.annotation_errors)")


@click.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def status(ctx: Context, job: str | None, as_json: bool) -> None:
    """Per-stage counts (done, failed, pending) and throughput of JOB, or of every job."""
    import dataclasses

    from engine.db.session import session_scope
    from engine.services import status as status_service

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        if job:
            reports = [status_service.job_report(session, _find_job(session, job), order=STAGE_NAMES)]
        else:
            reports = [status_service.job_report(session, j, order=STAGE_NAMES, max_failure_groups=3)
                       for j in status_service.list_jobs(session)]
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in reports], indent=2, default=str))
        return
    if not reports:
        click.echo("no jobs yet: start one with `dataengine mine SOURCE`")
    for report in reports:
        _print_report(report)


def _find_job(session: Session, name: str) -> MiningJob:
    """The job called ``name``, else the job with that id."""
    from engine.db.models import MiningJob
    from engine.repositories import jobs as jobs_repo

    found = jobs_repo.by_name(session, name)
    if found is None and name.isdigit():
        found = session.get(MiningJob, int(name))
    if found is None:
        raise click.ClickException(f"no job named {name!r}")
    return found


@click.command()
@click.option("--job", "job_name", default=None, help="Only this job (name or id).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def heal(ctx: Context, job_name: str | None, as_json: bool) -> None:
    """Send lost stage work again once (what the beat task does every pipeline.heal_interval_s):
    pending work handed to the broker longer than pipeline.stale_after_s ago that no worker holds,
    and items that failed because the media store was full once it has room. Without a broker the
    work runs here, in this process."""
    from engine.db.session import session_scope
    from pipelines.context import TaskContext
    from pipelines.dispatch import CeleryQueue, InProcessQueue
    from pipelines.healing import heal_once

    ensure_schema(ctx.settings)
    job_id = None
    if job_name:
        with session_scope(ctx.settings.db_url) as session:
            job_id = _find_job(session, job_name).id
    task_ctx = TaskContext.from_settings(ctx.settings)
    queue = InProcessQueue(task_ctx) if ctx.settings.embedded else CeleryQueue.for_settings(ctx.settings)
    report = heal_once(task_ctx, queue, job_id=job_id)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    resent = ", ".join(f"{n} {stage}" for stage, n in report.resent.items()) or "nothing"
    click.echo(f"sent again: {resent}; transient failures retried: {report.retried}; "
               f"jobs completed: {len(report.finished)}")
    for stage, n in report.waiting.items():
        click.echo(f"  {n} stale {stage} item(s) wait: their queue holds messages (sent again once it drains)")
