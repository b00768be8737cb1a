"""``dataengine``: one program for operators. Every command has ``--help``.

The root group and its options live here; each command group is a module of this package
(dataengine/cli/*.py) that never imports this one: they share dataengine/cli/context.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from dataengine.cli import (
    calibrate,
    check,
    config,
    db,
    demo,
    export,
    jobs,
    labelstudio,
    models,
    predictions,
    queue,
    serve,
    similar,
    training,
    users,
    workers,
)
from dataengine.cli.context import Context
from dataengine.cli.extras import ExtrasGroup
from engine.logs import configure_logging
from engine.settings import CONFIG_FILE_ENV


@click.group(cls=ExtrasGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help=f"TOML settings file (same as {CONFIG_FILE_ENV}).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def cli(click_ctx: click.Context, config_file: str | None, verbose: bool) -> None:
    """Data Engine: mine images, propose and verify masks, review, export, retrain."""
    if config_file:
        os.environ[CONFIG_FILE_ENV] = str(Path(config_file).resolve())
    click_ctx.obj = Context()
    # one setup for every process (engine/logs.py); serve and worker switch to the settings' format and level
    configure_logging("text", logging.DEBUG if verbose else logging.WARNING)


models.models.add_command(training.models_promote)
for command in (
    config.config, db.db, users.users, models.models, queue.queue_group, labelstudio.labelstudio_group,
    jobs.mine, demo.demo, jobs.status, jobs.heal, workers.worker, workers.beat, serve.serve,
    calibrate.calibrate, export.export_cmd, export.snapshots_cmd, predictions.import_predictions,
    training.retrain, training.report, check.check_cmd, similar.similar_cmd, similar.index_group,
):
    cli.add_command(command)
