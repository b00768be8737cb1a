"""A host's similarity index follows the image_embeddings table incrementally: rows stored by another host
are added, the keys of deleted images removed, and only a missing, unreadable or other-dimension file is
rebuilt. Real parts: mined images in SQLite or PostgreSQL, the USearch index on disk; vectors are planted."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, select

from engine.db.models import Image as ImageRow
from engine.db.models import ImageEmbedding, ModelVersion
from engine.db.session import session_scope
from engine.domain.similarity import normalise, pack
from engine.index import SimilarityIndex, index_path
from engine.ports import ModelStamp
from engine.services import embeddings, mine
from engine.services.common import register
from engine.settings import DedupSettings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo

DIM = 8


def _vector(n: int) -> np.ndarray:
    """A planted vector of its own per n (seeded), so neighbours are ordered without ties."""
    return np.random.default_rng(1000 + n).normal(size=DIM).astype(np.float32)


@pytest.fixture
def stored(database_url, tmp_path):
    """Eight mined images; the first five have embeddings stored through this host (index built)."""
    settings = make_settings(database_url, tmp_path, dedup=DedupSettings(near_duplicates=False))
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(8):
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(200 + seed, (64, 48))))
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="sync")
    with session_scope(settings.db_url) as s:
        ids = sorted(mine.mine_batch(s, settings, store, plan.job_id, plan.pending).image_ids)
        version = register(s, ModelStamp(kind="proposer", name="planted (image embedding)", version="1")).id
        vectors = np.stack([_vector(n) for n in range(5)])
        assert embeddings.store_embeddings(s, version, ids[:5], vectors, data_dir=settings.data_dir) == 5
    assert len(ids) == 8
    return settings, version, ids


def _from_another_host(settings, version, ids, first):
    """Rows written straight into the table, as another host's propose stage would: this host's index
    file does not hear of them."""
    with session_scope(settings.db_url) as s:
        for n, image_id in enumerate(ids, start=first):
            unit = normalise(_vector(n)[None])[0]
            s.add(ImageEmbedding(image_id=image_id, model_version_id=version, dim=DIM, vector=pack(unit)))


def _no_rebuild(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the index was rebuilt whole")
    monkeypatch.setattr(embeddings, "_rebuild_locked", refuse)


def _neighbours(settings, version, image_id, k=7):
    with session_scope(settings.db_url) as s:
        found = embeddings.similar_to_image(s, image_id, k, model_version_id=version, data_dir=settings.data_dir)
    return [n.image_id for n in found or []]


def test_rows_of_another_host_are_added_and_deleted_images_removed(stored, monkeypatch):
    settings, version, ids = stored
    path = index_path(settings.data_dir, version)
    _from_another_host(settings, version, ids[5:7], first=5)
    _no_rebuild(monkeypatch)
    found = _neighbours(settings, version, ids[0])
    assert set(found) == set(ids[1:7])  # the other host's two rows are searchable here
    assert SimilarityIndex(path, DIM).keys() == set(ids[:7])  # and kept in this host's file
    with session_scope(settings.db_url) as s:  # an image deleted (its embedding rows go with it)
        s.execute(delete(ImageRow).where(ImageRow.id == ids[2]))
    assert ids[2] not in _neighbours(settings, version, ids[0])
    assert SimilarityIndex(path, DIM).keys() == set(ids[:7]) - {ids[2]}
    # one added and one deleted: the size is the table's, the key sum is not
    _from_another_host(settings, version, [ids[7]], first=7)
    with session_scope(settings.db_url) as s:
        s.execute(delete(ImageRow).where(ImageRow.id == ids[3]))
    found = _neighbours(settings, version, ids[7])
    assert ids[3] not in found and set(found) == {ids[0], ids[1], ids[4], ids[5], ids[6]}
    assert SimilarityIndex(path, DIM).keys() == {ids[0], ids[1], ids[4], ids[5], ids[6], ids[7]}


def test_a_synced_index_searches_as_a_rebuilt_one(stored):
    settings, version, ids = stored
    _from_another_host(settings, version, ids[5:], first=5)
    synced = {i: _neighbours(settings, version, i, 3) for i in ids}
    with session_scope(settings.db_url) as s:
        assert embeddings.rebuild_index(s, version, data_dir=settings.data_dir) == len(ids)
    assert {i: _neighbours(settings, version, i, 3) for i in ids} == synced
    unit = normalise(np.stack([_vector(n) for n in range(len(ids))]))
    nearest = [ids[int(np.argsort(-(unit @ unit[n]))[1])] for n in range(len(ids))]  # exact, itself left out
    assert [synced[i][0] for i in ids] == nearest


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_missing_corrupt_or_other_dimension_file_is_rebuilt(stored):
    settings, version, ids = stored
    path = index_path(settings.data_dir, version)
    expected = _neighbours(settings, version, ids[0])
    assert len(expected) == 4
    path.write_bytes(b"not an index" * 100)  # corrupt
    assert _neighbours(settings, version, ids[0]) == expected
    assert SimilarityIndex(path, DIM).keys() == set(ids[:5])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    assert _neighbours(settings, version, ids[0]) == expected
    other = SimilarityIndex(path.with_name("other.usearch"), DIM + 1)
    other.add([ids[0]], np.ones((1, DIM + 1), dtype=np.float32))
    other.save()
    other.path.replace(path)  # another dimension
    assert _neighbours(settings, version, ids[0]) == expected
    path.unlink()  # missing
    assert _neighbours(settings, version, ids[0]) == expected
    with session_scope(settings.db_url) as s:  # storing into an unreadable file rebuilds it with the new rows
        path.write_bytes(b"junk")
        assert embeddings.store_embeddings(s, version, ids[5:6], _vector(5)[None], data_dir=settings.data_dir) == 1
    assert SimilarityIndex(path, DIM).keys() == set(ids[:6])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_version_whose_rows_are_all_gone_has_no_index(stored):
    settings, version, ids = stored
    with session_scope(settings.db_url) as s:
        s.execute(delete(ImageEmbedding).where(ImageEmbedding.model_version_id == version))
        assert embeddings.open_index(s, version, data_dir=settings.data_dir) is None
        assert s.scalar(select(ModelVersion.id).where(ModelVersion.id == version)) == version
