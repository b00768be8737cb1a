"""``dataengine similar`` (the images most like a stored image or a picture file) and ``dataengine index``
(embed images, rebuild this host's nearest-neighbour index from the ``image_embeddings`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dataengine.cli.context import Context, console, ensure_schema, pass_ctx

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from engine.ports import ImageEmbedder


@click.command("similar")
@click.argument("target")
@click.option("--k", "k", type=click.IntRange(1, 100), default=None, help="Neighbours to show (default 10).")
@click.option("--version", "version", type=int, help="Embedder model version (default: the latest with embeddings).")
@pass_ctx
def similar_cmd(ctx: Context, target: str, k: int | None, version: int | None) -> None:
    """The stored images most like TARGET: an image id, or a picture file (embedded on the fly)."""
    from rich.table import Table

    from engine.db.session import session_scope
    from engine.services import embeddings

    settings = ctx.settings
    ensure_schema(settings)
    k = k or settings.similarity.default_k
    with session_scope(settings.db_url) as session:
        if target.isdigit():
            version = version or _latest_version(embeddings.embedding_versions(session))
            found = embeddings.similar_to_image(session, int(target), k, model_version_id=version,
                                                data_dir=settings.data_dir)
            if found is None:
                raise click.ClickException(f"image {target} has no embedding of model version {version}: "
                                           "run `dataengine index embed`")
        else:
            found = embeddings.similar_to_picture(session, _picture(target), _embedder(ctx), k,
                                                  data_dir=settings.data_dir)
    table = Table("image", "similarity")
    for neighbour in found:
        table.add_row(str(neighbour.image_id), f"{neighbour.similarity:.4f}")
    console.print(table)


def _latest_version(versions: list[int]) -> int:
    if not versions:
        raise click.ClickException("no image has an embedding yet: run `dataengine index embed`")
    return versions[-1]


def _picture(target: str) -> PILImage.Image:
    from PIL import Image, UnidentifiedImageError

    path = Path(target)
    if not path.is_file():
        raise click.ClickException(f"{target} is neither an image id nor a file")
    try:
        with Image.open(path) as handle:
            return handle.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise click.ClickException(f"cannot read {target}: {exc}") from None


def _embedder(ctx: Context) -> ImageEmbedder:
    from annotators.registry import make_image_embedder

    return make_image_embedder(ctx.settings)


@click.group("index")
def index_group() -> None:
    """This host's similarity index: <data_dir>/index/<model version>.usearch, built from the database."""


@index_group.command("embed")
@click.option("--batch", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="Images embedded and committed at a time.")
@pass_ctx
def index_embed(ctx: Context, batch: int) -> None:
    """Embed every image that the configured embedder has not embedded yet (and index them)."""
    from sqlalchemy import select

    from engine.db.models import Image
    from engine.db.session import session_scope
    from engine.services import embeddings
    from engine.stores import make_store

    settings = ctx.settings
    ensure_schema(settings)
    embedder = _embedder(ctx)
    store = make_store(settings)
    with session_scope(settings.db_url) as session:
        ids = list(session.scalars(select(Image.id).order_by(Image.id)))
    added = 0
    for start in range(0, len(ids), batch):
        with session_scope(settings.db_url) as session:
            added += embeddings.embed_images(session, store, embedder, ids[start:start + batch],
                                             data_dir=settings.data_dir, max_side=settings.similarity.max_side)
    click.echo(f"{added} images embedded ({len(ids)} images in all)")


@index_group.command("rebuild")
@click.option("--version", "version", type=int, help="Only this embedder model version (default: all).")
@pass_ctx
def index_rebuild(ctx: Context, version: int | None) -> None:
    """Rebuild the index file(s) from the image_embeddings table."""
    from engine.db.session import session_scope
    from engine.services import embeddings

    settings = ctx.settings
    ensure_schema(settings)
    with session_scope(settings.db_url) as session:
        versions = [version] if version else embeddings.embedding_versions(session)
        for v in versions:
            count = embeddings.rebuild_index(session, v, data_dir=settings.data_dir)
            click.echo(f"model version {v}: {count} vectors indexed")
    if not versions:
        click.echo("no embeddings stored: nothing to index")
