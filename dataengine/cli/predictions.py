"""``dataengine import-predictions``: candidate masks from any model's COCO results, for existing images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx


@click.command("import-predictions")
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
