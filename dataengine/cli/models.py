"""``dataengine models list|download``: configured checkpoints and the registry of model versions
(``models promote`` is in dataengine/cli/training.py)."""

from __future__ import annotations

import click
from rich.table import Table

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx


@click.group()
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
