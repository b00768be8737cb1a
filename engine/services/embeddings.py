"""Image embeddings: compute and store them per embedder model version, keep the host's USearch
index up to date incrementally, rebuild it from the table, and search it.

The ``image_embeddings`` table is the source of truth; the index (``<data_dir>/index/<version>.usearch``)
is a per-host cache of it. Searching syncs it incrementally (:func:`open_index`): a host adds the rows other
hosts stored and drops the keys whose rows are gone (images deleted), compared cheaply first by count and
key sum; only a missing, unreadable or other-dimension file is rebuilt whole (:func:`rebuild_index`, also
the ``dataengine index rebuild`` command).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db.models import ImageEmbedding
from engine.domain.similarity import normalise, pack, unpack
from engine.index import Neighbour, SimilarityIndex, index_path, writing
from engine.ports import ImageEmbedder
from engine.services.common import load_images, register
from engine.storage import MediaStore

SYNC_CHUNK = 1000  # image ids per query when a sync reads the vectors an index lacks


log = logging.getLogger(__name__)

def embed_images(session: Session, store: MediaStore, embedder: ImageEmbedder, image_ids: Sequence[int], *,
                 data_dir: Path, max_side: int | None = 1024) -> int:
    """Embed the images not embedded yet by this embedder's version, store the rows and add them to
    the index; returns how many were embedded (unreadable images are skipped)."""
    version_id = register(session, embedder.stamp).id
    done = set(session.scalars(select(ImageEmbedding.image_id).where(
        ImageEmbedding.model_version_id == version_id, ImageEmbedding.image_id.in_(image_ids))))
    todo = [i for i in dict.fromkeys(image_ids) if i not in done]
    loaded = load_images(session, store, todo, max_side=max_side)
    images = {i: img for i, img in loaded.items() if isinstance(img, PILImage.Image)}
    if not images:
        return 0
    ids = list(images)
    return store_embeddings(session, version_id, ids, embedder.embed_images([images[i] for i in ids]),
                            data_dir=data_dir)


def store_embeddings(session: Session, model_version_id: int, image_ids: Sequence[int],
                     vectors: NDArray[np.floating[Any]], *, data_dir: Path) -> int:
    """Store vectors computed elsewhere (e.g. pooled by the propose stage from the SAM 3 vision features it
    already has) as rows of ``model_version_id`` and add them to this host's index (one lock and save for
    the lot); returns the count. Images that already have a row of that version are left as they are."""
    image_ids = list(image_ids)
    if not image_ids:
        return 0
    done = set(session.scalars(select(ImageEmbedding.image_id).where(
        ImageEmbedding.model_version_id == model_version_id, ImageEmbedding.image_id.in_(image_ids))))
    keep = [n for n, i in enumerate(image_ids) if i not in done]
    if not keep:
        return 0
    ids = [image_ids[n] for n in keep]
    unit = normalise(np.asarray(vectors)[keep])
    dim = int(unit.shape[1])
    session.add_all([ImageEmbedding(image_id=i, model_version_id=model_version_id, dim=dim, vector=pack(v))
                     for i, v in zip(ids, unit, strict=True)])
    session.flush()
    path = index_path(data_dir, model_version_id)
    try:
        with writing(path):
            index = SimilarityIndex.readable(path, dim)
            if index is None:  # none on this host yet, or unreadable: made from the table (which has these rows)
                _rebuild_locked(session, model_version_id, path)
            else:
                index.add(ids, unit)
                index.save()
    except OSError as exc:  # a full or read-only disk: the rows are the truth; the next search syncs the index
        log.warning("could not update the similarity index %s (%s); it is synced from the table when next "
                    "searched", path, exc)
    return len(ids)


def stored_vectors(session: Session, model_version_id: int,
                   image_ids: Sequence[int] | None = None) -> tuple[list[int], NDArray[np.float32]]:
    """The stored (image id, vector) of a version, in id order: all of them, or those of ``image_ids``."""
    query = select(ImageEmbedding.image_id, ImageEmbedding.dim, ImageEmbedding.vector).where(
        ImageEmbedding.model_version_id == model_version_id)
    if image_ids is not None:
        query = query.where(ImageEmbedding.image_id.in_(list(image_ids)))
    rows = session.execute(query.order_by(ImageEmbedding.image_id)).all()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r.image_id for r in rows], np.stack([unpack(r.vector, r.dim) for r in rows])


def rebuild_index(session: Session, model_version_id: int, *, data_dir: Path) -> int:
    """Recreate the version's index file from the table; returns the number of vectors."""
    path = index_path(data_dir, model_version_id)
    with writing(path):
        index = _rebuild_locked(session, model_version_id, path)
    return len(index) if index is not None else 0


def _rebuild_locked(session: Session, model_version_id: int, path: Path) -> SimilarityIndex | None:
    """The index made anew from every row of the version (the caller holds the file's lock)."""
    ids, vectors = stored_vectors(session, model_version_id)
    path.unlink(missing_ok=True)
    if not ids:
        return None
    index = SimilarityIndex(path, int(vectors.shape[1]))
    index.add(ids, vectors)
    index.save()
    return index


def embedding_versions(session: Session) -> list[int]:
    """The model versions that have stored embeddings."""
    return list(session.scalars(select(ImageEmbedding.model_version_id).distinct()
                                .order_by(ImageEmbedding.model_version_id)))


def open_index(session: Session, model_version_id: int, *, data_dir: Path) -> SimilarityIndex | None:
    """The version's index, in step with the table; None without rows. An index whose size and key sum
    equal the table's is used as it is (no lock, one aggregate query); otherwise it is synced under the
    file's lock (:func:`sync_index`)."""
    rows, key_sum, dim = _table_state(session, model_version_id)
    if not rows or not dim:
        return None
    path = index_path(data_dir, model_version_id)
    index = SimilarityIndex.readable(path, dim)
    if index is not None and len(index) == rows and index.key_sum() == key_sum:
        return index
    return sync_index(session, model_version_id, data_dir=data_dir)


def sync_index(session: Session, model_version_id: int, *, data_dir: Path) -> SimilarityIndex | None:
    """Bring this host's index in step with the table: add the rows it lacks (stored by other hosts),
    remove the keys the table no longer has (images deleted); rebuild it whole only when the file is
    missing, unreadable or of another dimension. None when the version has no rows."""
    path = index_path(data_dir, model_version_id)
    with writing(path):
        rows, _, dim = _table_state(session, model_version_id)
        if not rows or not dim:
            return None
        index = SimilarityIndex.readable(path, dim)
        if index is None:
            return _rebuild_locked(session, model_version_id, path)
        table = set(session.scalars(select(ImageEmbedding.image_id).where(
            ImageEmbedding.model_version_id == model_version_id)))
        have = index.keys()
        gone, missing = sorted(have - table), sorted(table - have)
        if not gone and not missing:
            return index
        index.remove(gone)
        for start in range(0, len(missing), SYNC_CHUNK):
            ids, vectors = stored_vectors(session, model_version_id, missing[start:start + SYNC_CHUNK])
            index.add(ids, vectors)
        index.save()
        return index


def _table_state(session: Session, model_version_id: int) -> tuple[int, int, int | None]:
    """The version's row count, sum of image ids and dimension, in one query."""
    count, key_sum, dim = session.execute(select(
        func.count(), func.coalesce(func.sum(ImageEmbedding.image_id), 0), func.max(ImageEmbedding.dim),
    ).where(ImageEmbedding.model_version_id == model_version_id)).one()
    return int(count or 0), int(key_sum or 0), (int(dim) if dim else None)


def similar_to_image(session: Session, image_id: int, k: int, *, model_version_id: int,
                     data_dir: Path) -> list[Neighbour] | None:
    """The ``k`` images most like a stored image (itself left out); None when it has no embedding."""
    row = session.scalar(select(ImageEmbedding).where(ImageEmbedding.model_version_id == model_version_id,
                                                      ImageEmbedding.image_id == image_id))
    index = open_index(session, model_version_id, data_dir=data_dir)
    if row is None or index is None:
        return None
    return index.search(unpack(row.vector, row.dim), k, exclude=image_id)


def similar_to_picture(session: Session, picture: PILImage.Image, embedder: ImageEmbedder, k: int, *,
                       data_dir: Path) -> list[Neighbour]:
    """The ``k`` stored images most like a picture that need not be in the database."""
    version_id = register(session, embedder.stamp).id
    index = open_index(session, version_id, data_dir=data_dir)
    if index is None:
        return []
    return index.search(normalise(embedder.embed_images([picture]))[0], k)
