"""``dataengine``: one program for operators. Every command has ``--help``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

import engine
from engine.settings import CONFIG_FILE_ENV, MODEL_PROFILES, Settings

console = Console(width=None if sys.stdout.isatty() else 120)
SAMPLE_IMAGES = Path(engine.__file__).resolve().parent / "sample_data" / "images"


class Context:
    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except Exception as exc:  # pydantic ValidationError, missing config file
                raise click.ClickException(f"invalid settings: {exc}") from None
        return self._settings


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help=f"TOML settings file (same as {CONFIG_FILE_ENV}).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def cli(click_ctx: click.Context, config_file: str | None, verbose: bool) -> None:
    """Data Engine: mine images, propose and verify masks, review, export, retrain."""
    if config_file:
        os.environ[CONFIG_FILE_ENV] = str(Path(config_file).resolve())
    click_ctx.obj = Context()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------------------- config
@cli.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the effective settings (passwords masked)."""
    data = ctx.settings.masked()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("setting", "value", title="effective settings")
    for key, value in _flatten(data):
        table.add_row(key, "" if value is None else str(value))
    table.add_row("execution", "in-process (no broker)" if ctx.settings.embedded else "Celery workers")
    console.print(table)


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


# ---------------------------------------------------------------------------- db
@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    import migrations

    migrations.upgrade(ctx.settings.db_url, revision)
    click.echo(f"database at revision {migrations.current(ctx.settings.db_url)}")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(ctx: Context, revision: str) -> None:
    """Migrate the database down to REVISION ('base' drops everything)."""
    import migrations

    migrations.downgrade(ctx.settings.db_url, revision)
    click.echo(f"database at revision {migrations.current(ctx.settings.db_url) or 'base (empty)'}")


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Print the database's revision and the code's head revision."""
    import migrations

    cur = migrations.current(ctx.settings.db_url)
    head = migrations.head()
    click.echo(f"current: {cur or 'none (empty database)'}\nhead:    {head}")
    if cur != head:
        click.echo("run `dataengine db upgrade` to migrate", err=True)


def ensure_schema(settings: Settings) -> None:
    """The embedded SQLite database is created on first use; anything else must be migrated."""
    import migrations

    url = settings.db_url
    try:
        cur = migrations.current(url)
    except Exception as exc:  # noqa: BLE001 - show the connection problem plainly
        raise click.ClickException(f"cannot connect to the database {settings.masked()['database_url']}: {exc}") from None
    head = migrations.head()
    if cur == head:
        return
    if cur is None and url.startswith("sqlite"):
        migrations.upgrade(url)
        return
    raise click.ClickException(
        f"the database is at revision {cur or 'none'} but this code needs {head}: "
        "run `dataengine db upgrade`"
    )


# ---------------------------------------------------------------------------- mine
@cli.command()
@click.argument("source")
@click.option("--job", "job_name", help="Job name (default: derived from the source). Re-use it to resume.")
@click.option("--kind", type=click.Choice(["folder", "urls", "webdataset", "coco"]),
              help="Source kind (default: detected from the path).")
@click.option("--images-dir", type=click.Path(file_okay=False), help="COCO: folder the file_names are relative to.")
@click.option("--retry-failed", is_flag=True, help="Try the job's failed items again (every stage).")
@click.option("--until", type=click.Choice(["mine", "caption", "parse", "propose", "negatives", "verify", "route"]),
              default=None,
              help="Last stage to run (default: all stages; a re-run keeps the job's own).")
@click.option("--profile", "model_profile", type=click.Choice(MODEL_PROFILES), default=None,
              help="Models this job's stages use (default: the model_profile setting; a re-run keeps the job's own).")
@click.option("--no-wait", is_flag=True, help="With a broker: enqueue and return without waiting.")
@click.option("--timeout", type=float, help="With a broker: stop waiting after this many seconds.")
@pass_ctx
def mine(ctx: Context, source: str, job_name: str | None, kind: str | None, images_dir: str | None,
         retry_failed: bool, until: str | None, model_profile: str | None, no_wait: bool,
         timeout: float | None) -> None:
    """Mine SOURCE: a folder, a URL list (.txt/.csv/.tsv), WebDataset .tar shards or a COCO .json.

    Items are fetched, validated, normalised, stored by sha256 and deduplicated (exact and
    perceptual); then captioned, parsed into noun phrases, given SAM 3 candidate masks, judged by
    the AI verifiers and routed to auto-accept, auto-reject or human tasks (--until stops earlier). Re-running the same job resumes it; nothing is stored twice.
    """
    _run_mine(ctx.settings, source, job_name=job_name, kind=kind,
              options={"images_dir": str(Path(images_dir).resolve()) if images_dir else None},
              retry_failed=retry_failed, until=until, model_profile=model_profile, wait=not no_wait,
              timeout=timeout)


def _run_mine(settings: Settings, source: str, **kwargs: object) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.services.mine import JobConflict
    from engine.sources import SourceError
    from pipelines.runner import outage_errors, outage_line, run_mine

    ensure_schema(settings)
    wait = bool(kwargs.pop("wait"))
    timeout = kwargs.pop("timeout")
    with Progress(TextColumn("mining"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("mine", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = run_mine(settings, source, wait=wait, timeout_s=timeout,  # type: ignore[arg-type]
                              on_progress=progress, **kwargs)  # type: ignore[arg-type]
        except (SourceError, JobConflict) as exc:
            raise click.ClickException(str(exc)) from None
        except outage_errors() as exc:  # before the follow loop or after it: not retried (it enqueues)
            rest = ("run the same command again to resume the job" if settings.embedded
                    else "a job already planned goes on on the workers: see `dataengine status`")
            raise click.ClickException(f"{outage_line(exc, 0).split(';')[0]}; {rest}") from None
    plan = result.plan
    where = "in-process" if settings.embedded else "on Celery workers"
    click.echo(f"job {plan.name!r} (id {plan.job_id}): {plan.items} items listed, {plan.new_items} new, "
               f"{len(plan.pending)} to mine {where}")
    if not settings.embedded and not wait:
        click.echo("enqueued; follow it with `dataengine status " + plan.name + "`")
        return
    _print_report(result.report)
    if result.seconds:
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(result.seconds.items()))
        click.echo(f"mining time per step (summed): {steps}")
    if result.stage_seconds:
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.stage_seconds.items())
        click.echo(f"time per stage: {stages}")
    _retrying(lambda: _print_summary(settings, result.plan.job_id, result.stage_seconds), result.plan.job_id)
    click.echo(f"wall time {result.wall_s:.1f}s")
    if not result.finished:
        raise click.ClickException("timed out waiting for workers; the job goes on in the background")


def _retrying(read: Callable[[], None], job_id: int, within_s: float = 60.0) -> None:
    """Run ``read`` (database reads, then printing) again while the database is restarting, for up to
    ``within_s``; one line says so, never the error's text."""
    from pipelines.runner import outage_errors, outage_line

    deadline = time.monotonic() + within_s
    told = False
    while True:
        try:
            read()
            return
        except outage_errors() as exc:
            if not told:
                click.echo(outage_line(exc, job_id), err=True)
                told = True
            if time.monotonic() > deadline:
                raise click.ClickException(f"{outage_line(exc, job_id).split(';')[0]} for {within_s:.0f} s; "
                                           "see `dataengine status` later") from None
            time.sleep(1.0)


def _print_summary(settings: Settings, job_id: int, stage_seconds: dict[str, float]) -> None:
    """What the job produced, and a warning where models with random weights produced it."""
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
        console.print(f"{summary.human_tasks} items wait for a human (no calibrated verifier thresholds yet, "
                      "or uncertain, or in the audit sample); `dataengine calibrate` once humans have judged some.")


def _print_report(report: object) -> None:
    from engine.services.status import JobReport

    assert isinstance(report, JobReport)
    table = Table("stage", "done", "duplicate", "near dup", "skipped", "failed", "pending", "total",
                  "items/s",
                  title=f"job {report.name} [{report.status}] {report.source_kind}: {report.source_uri}")
    for stage in report.stages:
        c = stage.counts
        rate = f"{stage.items_per_s:.1f}" if stage.items_per_s else "-"
        table.add_row(stage.stage, str(c.get("done", 0)), str(c.get("duplicate", 0)),
                      str(c.get("near_duplicate", 0)), str(c.get("skipped", 0)),
                      str(c.get("failed", 0)), str(c.get("pending", 0)), str(stage.total), rate)
    console.print(table)
    if report.failures:
        failures = Table("count", "reason", "example item", title="failed items by reason")
        for group in report.failures:
            failures.add_row(str(group.count), group.reason, group.example_key)
        console.print(failures)
    if report.dropped_annotations:
        dropped = report.dropped_annotations
        console.print(f"{dropped.count} item(s) kept their good dataset annotations and left bad ones out, "
                      f"e.g. {dropped.example_key}: {dropped.reason} (all reasons: status --json, "
                      "source_meta.annotation_errors)")


# ---------------------------------------------------------------------------- users
@cli.group()
def users() -> None:
    """People who annotate, review and administer."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "annotator", "reviewer", "ml_engineer"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@click.option("--kinds", help="Task kinds they are assigned, comma-separated (default: all): "
                              "verify_mask,check_exhaustivity,correct")
@pass_ctx
def users_create(ctx: Context, username: str, role: str, password_stdin: bool, kinds: str | None) -> None:
    """Create USERNAME with a role; the password is asked for (or read with --password-stdin)."""
    from engine.domain.vocabulary import Role
    from engine.db.session import session_scope
    from engine.domain.passwords import WeakPassword
    from engine.services.users import UserError, create_user

    from engine.domain.vocabulary import TaskKind

    task_kinds = None
    if kinds:
        task_kinds = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = sorted(set(task_kinds) - {k.value for k in TaskKind})
        if unknown:
            raise click.ClickException(f"unknown task kind(s) {', '.join(unknown)}; "
                                       f"known: {', '.join(k.value for k in TaskKind)}")
    ensure_schema(ctx.settings)
    password = _read_password("password", password_stdin)
    try:
        with session_scope(ctx.settings.db_url) as session:
            user = create_user(session, username, password, Role(role))
            user.task_kinds = task_kinds
            click.echo(f"created {user.username} ({user.role.value})"
                       + (f", task kinds {', '.join(task_kinds)}" if task_kinds else ""))
    except (UserError, WeakPassword) as exc:
        raise click.ClickException(str(exc)) from None


def _read_password(prompt: str, from_stdin: bool) -> str:
    """A password from standard input (scripts) or typed twice, hidden."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users.command("list")
@pass_ctx
def users_list(ctx: Context) -> None:
    """Every user with role and state."""
    from engine.db.session import session_scope
    from engine.services.users import list_users

    ensure_schema(ctx.settings)
    table = Table("username", "role", "active", "created", title="users")
    with session_scope(ctx.settings.db_url) as session:
        for user in list_users(session):
            table.add_row(user.username, user.role.value, "yes" if user.is_active else "no",
                          user.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@users.command("disable")
@click.argument("username")
@pass_ctx
def users_disable(ctx: Context, username: str) -> None:
    """Disable USERNAME (their verdicts stay; they can no longer log in or take tasks)."""
    from engine.db.session import session_scope
    from engine.services.users import UserError, set_active

    ensure_schema(ctx.settings)
    try:
        with session_scope(ctx.settings.db_url) as session:
            set_active(session, username, False)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"disabled {username}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (scripts).")
@pass_ctx
def users_passwd(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (the policy of the web app) and end every session and API token they had."""
    from engine.db.session import session_scope
    from engine.domain.passwords import WeakPassword
    from engine.services.users import UserError, find_user, set_password

    ensure_schema(ctx.settings)
    password = _read_password("new password", password_stdin)
    try:
        with session_scope(ctx.settings.db_url) as session:
            set_password(session, find_user(session, username), password)
    except (UserError, WeakPassword) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new password for {username.strip().lower()}; their sessions and API tokens are ended "
               f"(servers forget them within serve.auth_cache_s)")


# ---------------------------------------------------------------------------- calibrate
@cli.command()
@click.option("--kind", type=click.Choice(["mv", "ev", "all"]), default="all", show_default=True,
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
    from engine.domain.vocabulary import TaskKind
    from engine.db.session import session_scope
    from engine.services.calibrate import calibrate as run_calibration

    ensure_schema(ctx.settings)
    routing = ctx.settings.routing
    target = routing.target_precision if target is None else target
    if not 0.5 < target < 1:
        raise click.ClickException("--target must lie between 0.5 and 1")
    kinds = {"mv": (TaskKind.VERIFY_MASK,), "ev": (TaskKind.CHECK_EXHAUSTIVITY,),
             "all": (TaskKind.VERIFY_MASK, TaskKind.CHECK_EXHAUSTIVITY)}[kind]
    with session_scope(ctx.settings.db_url) as session:
        results = run_calibration(session, target_precision=target, method=method or routing.calibration_method,
                                  kinds=kinds, routing=routing)
    if not results:
        click.echo("no verifier has judged anything yet: run a job through --until verify first")
        return
    table = Table("verifier", "task", "scope", "human verdicts", "accept ≥", "reject ≤", "coverage", "precision (95% CI)",
                  "agreement", title=f"calibration at target precision {target}")
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


# ---------------------------------------------------------------------------------- exports
@cli.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["coco", "saco", "verifier"]))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write (must be empty or absent unless --force).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder (only once the export succeeded).")
@click.option("--job", "jobs", multiple=True, help="Only images of this mining job (name or id; repeatable).")
@click.option("--concept", "concepts", multiple=True, help="Only this concept (exact text; repeatable).")
@click.option("--since", type=click.DateTime(), help="Only images mined at or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="Only images mined before this time (UTC).")
@click.option("--label-source", type=click.Choice(["human", "ai", "both"]), default="both", show_default=True,
              help="Labels decided by people, by the router on the AI verifiers' word, or both.")
@click.option("--min-agreement", type=click.FloatRange(0, 1),
              help="Leave out items whose judgements agree with their final state less than this share.")
@click.option("--exhaustive-only", is_flag=True, help="Only pairs declared exhaustive (and negatives).")
@click.option("--val-percent", type=click.IntRange(0, 100), default=10, show_default=True,
              help="Share of images (by sha256) in the val split.")
@click.option("--name", help="Snapshot name (default: FORMAT-<manifest hash>).")
@pass_ctx
def export_cmd(ctx: Context, fmt: str, out_dir: str, force: bool, jobs: tuple[str, ...], concepts: tuple[str, ...],
               since: object, until: object, label_source: str, min_agreement: float | None,
               exhaustive_only: bool, val_percent: int, name: str | None) -> None:
    """Write a training set (COCO, SA-Co or verifier JSONL) and record it as a dataset snapshot.

    Same filters on unchanged data give byte-identical files (and the same snapshot). A failed
    export leaves no files and no snapshot.
    """
    from engine.db.session import session_factory
    from engine.domain.exports import ExportSpecError
    from engine.services.export import ExportError, ExportFilters, commit_or_discard, export_dataset, resolve_jobs

    ensure_schema(ctx.settings)
    session = session_factory(ctx.settings.db_url)()
    try:
        filters = ExportFilters(jobs=resolve_jobs(session, jobs), concepts=concepts, since=since, until=until,
                                label_source=label_source, min_agreement=min_agreement,
                                exhaustive_only=exhaustive_only, val_percent=val_percent)  # type: ignore[arg-type]
        result = export_dataset(session, ctx.settings, fmt, Path(out_dir), filters, force=force, name=name)
        commit_or_discard(session, result)
    except (ExportSpecError, ExportError) as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    finally:
        session.close()
    keys = sorted({k for c in result.manifest["counts"].values() for k in c})
    table = Table("split", *keys, title=f"{fmt} export → {result.out_dir}")
    for split, counts in sorted(result.manifest["counts"].items()):
        table.add_row(split, *(str(counts.get(k, 0)) for k in keys))
    console.print(table)
    state = "unchanged data: existing snapshot" if result.reused else "snapshot"
    click.echo(f"{state} {result.snapshot_id} {result.name} (manifest sha256 {result.manifest_sha256})")


@cli.command("snapshots")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def snapshots_cmd(ctx: Context, as_json: bool) -> None:
    """List dataset snapshots (exports), newest first."""
    from sqlalchemy import select

    from engine.db.models import DatasetSnapshot
    from engine.db.session import session_scope

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        rows = session.scalars(select(DatasetSnapshot).order_by(DatasetSnapshot.id.desc())).all()
        data = [{"id": r.id, "name": r.name, "format": r.format, "created_at": r.created_at.isoformat(),
                 "manifest_sha256": r.manifest_sha256, "counts": r.manifest.get("counts", {}),
                 "filters": r.filters} for r in rows]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("id", "name", "format", "created", "files sha256 (manifest)", title="dataset snapshots")
    for r in data:
        table.add_row(str(r["id"]), r["name"], r["format"], r["created_at"][:19], r["manifest_sha256"][:16])
    console.print(table)


# ---------------------------------------------------------------------------- predictions
@cli.command("import-predictions")
@click.argument("results", type=click.Path(dir_okay=False, exists=True))
@click.option("--model", "model_name", required=True, help="Name of the model that made them.")
@click.option("--version", "version", help="Its version (default: sha256 of the file).")
@click.option("--categories", type=click.Path(dir_okay=False, exists=True),
              help="COCO JSON whose categories name the rows' category_id.")
@click.option("--strict", is_flag=True, help="Import nothing when any row is bad.")
@click.option("--images", "images_file", type=click.Path(dir_okay=False, exists=True),
              help="Images the model ran on (found nothing there too): one image id per line, or a JSON list.")
@click.option("--job", "jobs", multiple=True,
              help="The model ran on this mining job's images (name or id; repeatable).")
@pass_ctx
def import_predictions(ctx: Context, results: str, model_name: str, version: str | None,
                       categories: str | None, strict: bool, images_file: str | None, jobs: tuple[str, ...]) -> None:
    """Import a COCO results JSON from any model as candidate masks for existing images.

    Rows need image_id (our image id), segmentation (RLE or polygons at the image's size),
    optional score, and the phrase as 'phrase'/'text_input' or a category_id (--categories).
    The version is scored by `dataengine report` on every ground-truth pair of the images of its
    rows and of those given with --images / --job.
    """
    from engine.db.session import session_scope
    from engine.domain.exports import ExportSpecError
    from engine.services import predictions
    from engine.services.export import resolve_jobs

    ensure_schema(ctx.settings)
    path = Path(results)
    try:
        rows = predictions.load_rows(path)
        names = None
        if categories:
            cats = json.loads(Path(categories).read_text()).get("categories") or []
            names = {c["id"]: c["name"] for c in cats if isinstance(c, dict) and "id" in c and "name" in c}
        ran_on = predictions.load_image_ids(Path(images_file)) if images_file else []
    except (predictions.PredictionFileError, ValueError, AttributeError) as exc:
        raise click.ClickException(str(exc)) from None
    with session_scope(ctx.settings.db_url) as session:
        try:
            ran_on += predictions.job_image_ids(session, resolve_jobs(session, jobs))
            report = predictions.import_predictions(
                session, rows, model_name=model_name, version=version or predictions.file_version(path),
                categories=names, strict=strict, ran_on=ran_on)
        except (predictions.PredictionFileError, ExportSpecError) as exc:
            raise click.ClickException(str(exc)) from None
        if strict and report.errors:
            session.rollback()
    for index, reason in report.errors[:20]:
        click.echo(f"row {index}: {reason}", err=True)
    if len(report.errors) > 20:
        click.echo(f"... and {len(report.errors) - 20} more bad rows", err=True)
    if strict and report.errors:
        raise click.ClickException(f"{len(report.errors)} bad rows: nothing imported (--strict)")
    click.echo(f"{report.rows} rows: {report.masks} masks imported on {report.pairs} pairs, "
               f"{report.skipped_existing} already there, {len(report.errors)} bad rows; "
               f"ran on {report.images} images")


# ---------------------------------------------------------------------------- models
@cli.group()
def models() -> None:
    """Model checkpoints and the registry of model versions."""


@models.command("list")
@pass_ctx
def models_list(ctx: Context) -> None:
    """Configured checkpoints (and whether they are here) and registered model versions."""
    from sqlalchemy import select

    from annotators.loading import is_local
    from engine.db.models import ModelVersion
    from engine.db.session import session_scope

    m = ctx.settings.models
    table = Table("role", "checkpoint", "here?", title=f"model profile {ctx.settings.model_profile}")
    if ctx.settings.model_profile == "tiny":
        table.add_row("all", f"tiny random-weight models under {m.cache_dir}/tiny", "built on first use")
    else:
        for role, ref in (("captioner", m.caption.model), ("llm parser", m.parse.llm_model),
                          ("proposer", m.propose.model)):
            table.add_row(role, ref, "local directory" if is_local(ref) else "hub id (cache or download)")
    table.add_row("spaCy parser", m.parse.spacy_pipeline, "installed package")
    console.print(table)
    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        versions = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        registry = Table("id", "kind", "name", "version", "random weights", "promoted", "trained on", "created",
                         title="registered model versions")
        for v in versions:
            registry.add_row(str(v.id), v.kind.value, v.name, v.version, "YES" if v.random_weights else "",
                             "yes" if v.is_promoted else "",
                             f"snapshot {v.training_snapshot_id}" if v.training_snapshot_id else "",
                             v.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(registry)


@models.command("download")
@pass_ctx
def models_download(ctx: Context) -> None:
    """Fetch the profile-sam3 checkpoints (SAM 3, Llama 3.2 Vision) into the Hugging Face cache.

    Needs internet and, for gated models, `huggingface-cli login`. Where there is no internet,
    download elsewhere, copy the directories here and point DATAENGINE_MODELS__*__MODEL at them.
    """
    from huggingface_hub import snapshot_download

    from annotators.loading import is_local

    m = ctx.settings.models
    wanted = dict.fromkeys(ref for ref in (m.caption.model, m.parse.llm_model, m.propose.model) if not is_local(ref))
    missing = []
    for ref in wanted:
        click.echo(f"downloading {ref} ...")
        try:
            path = snapshot_download(ref)
        except Exception as exc:  # noqa: BLE001 - network, auth and gating errors alike
            missing.append(f"{ref}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        else:
            click.echo(f"  {ref} -> {path}")
    if missing:
        raise click.ClickException("could not download:\n  " + "\n  ".join(missing) +
                                   "\nWithout internet: download elsewhere, copy the directories here and "
                                   "set DATAENGINE_MODELS__PROPOSE__MODEL / __CAPTION__MODEL to their paths.")


# ---------------------------------------------------------------------------- status
@cli.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def status(ctx: Context, job: str | None, as_json: bool) -> None:
    """Per-stage counts (done, failed, pending) and throughput of JOB, or of every job."""
    import dataclasses

    from engine.db.session import session_scope
    from engine.repositories import jobs as jobs_repo
    from engine.services import status as status_service
    from pipelines.stages import STAGE_NAMES

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        if job:
            found = jobs_repo.by_name(session, job)
            if found is None and job.isdigit():
                from engine.db.models import MiningJob

                found = session.get(MiningJob, int(job))
            if found is None:
                raise click.ClickException(f"no job named {job!r}")
            reports = [status_service.job_report(session, found, order=STAGE_NAMES)]
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


# ---------------------------------------------------------------------------- workers
@cli.command()
@click.option("--queues", "-Q", default="io,cpu,gpu", show_default=True, help="Comma-separated queues.")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: cores).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--loglevel", default=None, help="Log level (default: the log_level setting).")
@click.option("--hostname", "-n", default=None, help="Worker node name.")
@pass_ctx
def worker(ctx: Context, queues: str, concurrency: int | None, pool: str, loglevel: str,
           hostname: str | None) -> None:
    """Start a Celery worker consuming QUEUES from the configured broker."""
    if ctx.settings.embedded:
        raise click.ClickException("no broker configured: set DATAENGINE_BROKER_URL (redis:// or amqp://)")
    from pipelines.celery_app import QUEUES, app

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown:
        raise click.ClickException(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    argv = ["worker", f"--queues={','.join(wanted)}", f"--pool={pool}",
            f"--loglevel={loglevel or ctx.settings.log_level}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


@cli.command()
@click.option("--loglevel", default=None, help="Log level (default: the log_level setting).")
@pass_ctx
def beat(ctx: Context, loglevel: str | None) -> None:
    """Start the Celery beat scheduler (periodic maintenance tasks)."""
    if ctx.settings.embedded:
        raise click.ClickException("no broker configured: set DATAENGINE_BROKER_URL")
    from pipelines.celery_app import app

    app.start(["beat", f"--loglevel={loglevel or ctx.settings.log_level}"])


@cli.command()
@click.option("--job", "job_name", default=None, help="Only this job (name or id).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def heal(ctx: Context, job_name: str | None, as_json: bool) -> None:
    """Send lost stage work again once (what the beat task does every pipeline.heal_interval_s):
    pending work handed to the broker longer than pipeline.stale_after_s ago that no worker holds,
    and items that failed because the media store was full once it has room. Without a broker the
    work runs here, in this process."""
    from engine.db.models import MiningJob
    from engine.db.session import session_scope
    from engine.repositories import jobs as jobs_repo
    from pipelines.context import TaskContext
    from pipelines.dispatch import CeleryQueue, InProcessQueue
    from pipelines.healing import heal_once

    ensure_schema(ctx.settings)
    job_id = None
    if job_name:
        with session_scope(ctx.settings.db_url) as session:
            found = jobs_repo.by_name(session, job_name)
            if found is None and job_name.isdigit():
                found = session.get(MiningJob, int(job_name))
            if found is None:
                raise click.ClickException(f"no job named {job_name!r}")
            job_id = found.id
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


# ---------------------------------------------------------------------------- serve
@cli.command()
@click.option("--host", help="Address to bind (default: settings serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: settings serve.port, 8000).")
@click.option("--workers", type=click.IntRange(1, 64), help="Server processes (default: settings serve.workers).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the web server: the annotators' queue, dashboards, operators' pages and the REST API
    under /api/v1 (OpenAPI at /docs). With several workers each process reads the same settings
    (environment and --config)."""
    import uvicorn

    from dataengine.serve import create_app

    s = ctx.settings.serve
    host, port, workers = host or s.host, port or s.port, workers or s.workers
    ensure_schema(ctx.settings)
    click.echo(f"serving on http://{host}:{port}/ ({workers} worker{'s' if workers > 1 else ''}); "
               f"create a user first: dataengine users create NAME --role admin")
    if workers == 1:
        uvicorn.run(create_app(ctx.settings), host=host, port=port, log_level="warning", access_log=False)
    else:
        uvicorn.run("dataengine.serve:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)


@cli.group("queue")
def queue_group() -> None:
    """The human task queue."""


@queue_group.command("expire")
@pass_ctx
def queue_expire(ctx: Context) -> None:
    """Return every task whose lease ran out to the queue now (the beat task does it every minute)."""
    from engine.db.session import session_scope
    from engine.services.queue import expire_leases

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        click.echo(f"{expire_leases(session)} expired lease(s) returned to the queue")


@queue_group.command("stats")
@pass_ctx
def queue_stats(ctx: Context) -> None:
    """Open and leased tasks per kind."""
    from sqlalchemy import func, select

    from engine.db.models import HumanTask, TaskState
    from engine.db.session import session_scope

    ensure_schema(ctx.settings)
    table = Table("kind", "open", "leased", "done", title="human tasks")
    with session_scope(ctx.settings.db_url) as session:
        counts: dict[str, dict[str, int]] = {}
        for kind, state, n in session.execute(
                select(HumanTask.kind, HumanTask.state, func.count()).where(HumanTask.is_gold.is_(False))
                .group_by(HumanTask.kind, HumanTask.state)):
            counts.setdefault(kind.value, {})[state.value] = n
    for kind, c in sorted(counts.items()):
        table.add_row(kind, str(c.get(TaskState.OPEN.value, 0)), str(c.get(TaskState.LEASED.value, 0)),
                      str(c.get(TaskState.DONE.value, 0)))
    console.print(table)


# ---------------------------------------------------------------------------- labelstudio
LS_KINDS = {"verify": "verify_mask", "exhaustivity": "check_exhaustivity", "correct": "correct"}


@cli.group("labelstudio")
def labelstudio_group() -> None:
    """Work the queue from Label Studio: push tasks to a project, pull annotations back as verdicts."""


def _ls_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--token", help="Label Studio API token (default: labelstudio.token).")(func)
    return click.option("--url", help="Label Studio base URL (default: labelstudio.url).")(func)


@labelstudio_group.command("push")
@_ls_options
@click.option("--kind", type=click.Choice(sorted(LS_KINDS)), required=True, help="Which tasks to push.")
@click.option("--project", help="Project title (default: labelstudio.project, else dataengine-<task kind>); "
                                "made when missing, reused when its labeling config matches.")
@click.option("--limit", type=click.IntRange(min=1), help="Push at most this many tasks (default: every open one).")
@click.option("--webhook-url", help="Also register our webhook on the project, e.g. "
                                    "http://HOST:8000/api/v1/labelstudio/webhook (needs labelstudio.webhook_secret).")
@pass_ctx
def labelstudio_push(ctx: Context, url: str | None, token: str | None, kind: str, project: str | None,
                     limit: int | None, webhook_url: str | None) -> None:
    """Lease open tasks of --kind to the bridge and import them, with their masks as predictions."""
    from annotators.label_studio import LabelStudioError, connect, push
    from engine.domain.vocabulary import TaskKind

    ensure_schema(ctx.settings)
    try:
        client = connect(ctx.settings, url, token)
        report = push(ctx.settings, client, TaskKind(LS_KINDS[kind]), project=project, limit=limit,
                      webhook_url=webhook_url)
    except LabelStudioError as exc:
        raise click.ClickException(str(exc)) from None
    rate = report.pushed / report.seconds if report.seconds else 0.0
    click.echo(f"project {report.project!r} (id {report.project_id}{', created' if report.created else ''}) on "
               f"{client.server}: pushed {report.pushed} task(s) in {report.batches} batch(es), "
               f"{report.seconds:.1f} s ({rate:.0f} tasks/s)" + ("; webhook registered" if report.webhook else ""))


@labelstudio_group.command("pull")
@_ls_options
@click.option("--project", help="Only this project (default: every project we pushed to on the server).")
@pass_ctx
def labelstudio_pull(ctx: Context, url: str | None, token: str | None, project: str | None) -> None:
    """Store new and edited annotations as verdicts (source label_studio); pulling again stores nothing twice."""
    from annotators.label_studio import LabelStudioError, connect, pull

    ensure_schema(ctx.settings)
    try:
        client = connect(ctx.settings, url, token)
        summary = pull(ctx.settings, client, project=project)
    except LabelStudioError as exc:
        raise click.ClickException(str(exc)) from None
    report = summary.report
    click.echo(f"{summary.tasks} annotated task(s) in {len(summary.projects)} project(s), {summary.seconds:.1f} s: "
               f"{report.count('stored')} stored, {report.count('replaced')} replaced an earlier verdict, "
               f"{report.count('unchanged')} already stored, {report.count('skipped')} skipped in Label Studio, "
               f"{report.count('unknown')} not ours, {report.count('conflict')} stored but in conflict with a "
               f"decision made meanwhile (not applied), {len(report.failures)} failed")
    for conflict in [o for o in report.outcomes if o.status == "conflict"][:20]:
        click.echo(f"  task {conflict.ls_task_id} annotation {conflict.annotation_id}: {conflict.error}", err=True)
    for failure in report.failures[:20]:
        click.echo(f"  task {failure.ls_task_id} annotation {failure.annotation_id}: {failure.error}", err=True)
    if len(report.failures) > 20:
        click.echo(f"  … and {len(report.failures) - 20} more (label_studio_annotations.error)", err=True)


# ---------------------------------------------------------------------------- demo
@cli.command()
@pass_ctx
def demo(ctx: Context) -> None:
    """Mine the bundled sample images through every stage (tiny models unless the settings say
    otherwise) into the embedded database, and print what it produced."""
    settings = ctx.settings
    if settings.model_profile == "tiny":
        # random weights score every candidate below the usual 0.5: keep them all for the demo
        settings.models.propose.score_threshold = 0.0
        click.echo("model profile tiny: random-weight models, proposal score threshold 0 for the demo")
    click.echo(f"database: {settings.masked()['database_url']}\nmedia:    {settings.media_path}")
    _run_mine(settings, str(SAMPLE_IMAGES), job_name="demo", kind="folder", options={},
              retry_failed=False, until=None, wait=True, timeout=None)


# ---------------------------------------------------------------------------- retraining, quality
# dataengine/cli/training.py: retrain verifier|sam3, models promote, report
from dataengine.cli import training as _training  # noqa: E402  (imports this module's helpers)

cli.add_command(_training.retrain)
cli.add_command(_training.report)
models.add_command(_training.models_promote)

# ---------------------------------------------------------------------------- check
# dataengine/cli/check.py: the database against its written invariants
from dataengine.cli import check as _check  # noqa: E402  (imports this module's helpers)

cli.add_command(_check.check_cmd)
