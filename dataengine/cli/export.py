"""``dataengine export`` and ``dataengine snapshots``: training sets written from the labels, and the
dataset snapshots that record them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx
from engine.domain.vocabulary import LabelSource


@click.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["coco", "saco", "verifier", "saco_veval", "ytvis"]))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write (must be empty or absent unless --force).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder (only once the export succeeded).")
@click.option("--job", "jobs", multiple=True, help="Only images of this mining job (name or id; repeatable).")
@click.option("--concept", "concepts", multiple=True, help="Only this concept (exact text; repeatable).")
@click.option("--since", type=click.DateTime(), help="Only images mined at or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="Only images mined before this time (UTC).")
@click.option("--label-source", type=click.Choice([s.value for s in LabelSource]), default=LabelSource.BOTH.value,
              show_default=True, help="Labels decided by people, by the router on the AI verifiers' word, or both.")
@click.option("--min-agreement", type=click.FloatRange(0, 1),
              help="Leave out items whose judgements agree with their final state less than this share.")
@click.option("--exhaustive-only", is_flag=True, help="Only pairs declared exhaustive (and negatives).")
@click.option("--val-percent", type=click.IntRange(0, 100), default=10, show_default=True,
              help="Share of images (by sha256) in the val split.")
@click.option("--name", help="Snapshot name (default: FORMAT-<manifest hash>).")
@pass_ctx
def export_cmd(ctx: Context, fmt: str, out_dir: str, force: bool, jobs: tuple[str, ...], concepts: tuple[str, ...],
               since: dt.datetime | None, until: dt.datetime | None, label_source: str, min_agreement: float | None,
               exhaustive_only: bool, val_percent: int, name: str | None) -> None:
    """Write a training set (COCO, SA-Co or verifier JSONL; for videos SA-Co/VEval with each proposer
    version's predictions, or YTVIS instances) and record it as a dataset snapshot.

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
                                exhaustive_only=exhaustive_only, val_percent=val_percent)
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


@click.command("snapshots")
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
