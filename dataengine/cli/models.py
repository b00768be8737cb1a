"""``dataengine models list|download|verify``: configured checkpoints, checkpoints brought from a hub
or a folder (annotators/checkpoints.py) and the registry of model versions (``models promote`` is in
dataengine/cli/training.py)."""

from __future__ import annotations

from pathlib import Path

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

    from annotators.checkpoints import recorded
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
        registry.add_column("checkpoint sha256", no_wrap=True)  # a downloaded one's digest, first 12 hex
        for v in versions:
            record = recorded(v)
            registry.add_row(str(v.id), v.kind.value, v.name, v.version, "YES" if v.random_weights else "",
                             "yes" if v.is_promoted else "",
                             f"snapshot {v.training_snapshot_id}" if v.training_snapshot_id else "",
                             v.created_at.strftime("%Y-%m-%d %H:%M"),
                             f"{record['sha256'][:12]} ({record['source']})" if record else "")
    console.print(registry)


@models.command("download")
@click.argument("source", required=False)
@click.option("--role", type=click.Choice(["proposer", "captioner", "parser", "mask_verifier",
                                           "exhaustivity_verifier", "tracker"]), default="proposer",
              show_default=True, help="the registry kind the checkpoint is recorded under")
@click.option("--revision", default=None, help="branch, tag or commit (default: main; ModelScope: master)")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder to put it in (default: the HF cache; <models cache>/checkpoints for the others)")
@click.option("--link", is_flag=True, help="a local folder: symlink it into the cache instead of copying")
@pass_ctx
def models_download(ctx: Context, source: str | None, role: str, revision: str | None, dest: Path | None,
                    link: bool) -> None:
    """Bring a checkpoint here and record it (source, commit, sha256 manifest) in the model registry.

    SOURCE is `hf:<id>` or a bare Hugging Face id, `modelscope:<id>` (or `ms:<id>`), or a local
    folder (checked loadable, copied into the models cache). Hugging Face honours HF_ENDPOINT and
    `hf auth login` for gated models; ModelScope honours MODELSCOPE_ENDPOINT / MODELSCOPE_DOMAIN.
    An interrupted download continues where it stopped when run again. Without SOURCE: the
    configured checkpoints of the profile (SAM 3, Llama 3.2 Vision). Without internet: download
    elsewhere, copy the folder here and run `dataengine models download <folder>`.
    """
    from annotators.checkpoints import CheckpointError, parse_source

    if source is None:
        if revision or dest or link:
            raise click.UsageError("--revision, --dest and --link go with a SOURCE")
        _download_configured(ctx)
        return
    try:
        parsed = parse_source(source)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        _download_one(ctx, source, parsed, role, revision, dest, link)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc


def _download_one(ctx: Context, given: str, source: object, role: str, revision: str | None, dest: Path | None,
                  link: bool) -> None:
    from annotators.checkpoints import ROLES, Source, fetch, register
    from engine.db.session import session_scope
    from engine.extras import ExtraMissing

    assert isinstance(source, Source)
    cache_dir = ctx.settings.models.cache_dir
    assert cache_dir is not None
    click.echo(f"{given}: {'checking and copying' if source.kind == 'local' else 'downloading'} ...")
    try:
        checkpoint = fetch(source, revision=revision, dest=dest, cache_dir=cache_dir, link=link)
    except ExtraMissing as exc:
        raise click.ClickException(str(exc)) from exc
    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        row = register(session, ROLES[role], checkpoint)
        row_id, name, version = row.id, row.name, row.version
    fetched = "" if checkpoint.fetched is None else f", {checkpoint.fetched} fetched this run"
    click.echo(f"  {checkpoint.path}")
    click.echo(f"  {len(checkpoint.files)} files{fetched}, {checkpoint.size} bytes, sha256 {checkpoint.sha256}")
    click.echo(f"  registered {role} version {row_id}: {name} @ {version}")
    click.echo(f"  use it: dataengine models promote {row_id}, or point the {role}'s setting at {checkpoint.path}")


def _download_configured(ctx: Context) -> None:
    """The profile's configured hub checkpoints, each under its role."""
    from annotators.checkpoints import CheckpointError, Source
    from annotators.loading import is_local

    m = ctx.settings.models
    wanted: dict[str, str] = {}
    for role, ref in (("captioner", m.caption.model), ("parser", m.parse.llm_model), ("proposer", m.propose.model)):
        if not is_local(ref):
            wanted.setdefault(ref, role)
    missing = []
    for ref, role in wanted.items():
        try:
            _download_one(ctx, ref, Source("hf", ref), role, None, None, False)
        except (CheckpointError, click.ClickException) as exc:
            missing.append(str(exc.message if isinstance(exc, click.ClickException) else exc))
    if missing:
        raise click.ClickException("could not download:\n  " + "\n  ".join(missing) +
                                   "\nWithout internet: download elsewhere, copy the folders here and run "
                                   "`dataengine models download <folder> --role <role>`, or set "
                                   "DATAENGINE_MODELS__PROPOSE__MODEL / __CAPTION__MODEL to their paths.")


@models.command("verify")
@click.argument("version_ids", nargs=-1, type=int)
@pass_ctx
def models_verify(ctx: Context, version_ids: tuple[int, ...]) -> None:
    """Recompute the sha256 manifest of downloaded checkpoints (all, or the VERSION_IDS given) and
    compare it with the registry's; exits 1 when a file is missing, changed or unexpected."""
    from sqlalchemy import select

    from annotators.checkpoints import recorded, verify
    from engine.db.models import ModelVersion
    from engine.db.session import session_scope

    ensure_schema(ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        query = select(ModelVersion).order_by(ModelVersion.id)
        if version_ids:
            query = query.where(ModelVersion.id.in_(version_ids))
        rows = [(v.id, v.name, v.uri, recorded(v)) for v in session.scalars(query)]
    unknown = sorted(set(version_ids) - {row[0] for row in rows})
    if unknown:
        raise click.ClickException(f"no model version {', '.join(map(str, unknown))}")
    checked = [(vid, name, uri, record) for vid, name, uri, record in rows if record is not None and uri]
    if version_ids and len(checked) < len(rows):
        raise click.ClickException("not downloaded checkpoints (no recorded manifest): " +
                                   ", ".join(str(r[0]) for r in rows if r[3] is None or not r[2]))
    failed = 0
    for vid, name, uri, record in checked:
        problems = verify(Path(uri), record["files"])
        if problems:
            failed += 1
            click.echo(f"version {vid} {name}: MISMATCH ({len(problems)}) at {uri}")
            for problem in problems[:20]:
                click.echo(f"  {problem}")
        else:
            click.echo(f"version {vid} {name}: ok, {len(record['files'])} files, sha256 {record['sha256']}")
    if not checked:
        click.echo("no downloaded checkpoints in the registry")
    if failed:
        raise click.ClickException(f"{failed} of {len(checked)} checkpoints do not match their recorded sha256")
