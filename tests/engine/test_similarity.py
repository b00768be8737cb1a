"""Image embeddings and similarity search on real components: the tiny random-weight SAM 3's pooled
vision features, a real database, stored files and the USearch index on disk."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from annotators.image_embedder import Sam3ImageEmbedder
from engine.db.models import Image as ImageRow
from engine.db.models import ImageEmbedding
from engine.db.session import session_scope
from engine.domain.similarity import normalise, pack, unpack
from engine.index import SimilarityIndex, index_path
from engine.services import embeddings, mine
from engine.services.common import load_images, register
from engine.settings import DedupSettings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo

SEEDS = list(range(40, 52))
TWIN_OF = 45


@pytest.fixture(scope="module")
def embedder(models_cache_dir):
    return Sam3ImageEmbedder(str(models_cache_dir / "tiny" / "sam3"), device="cpu")


@pytest.fixture
def pool(database_url, tmp_path):
    """Twelve different pictures and a twin of one (resized and recompressed), mined."""
    settings = make_settings(database_url, tmp_path, dedup=DedupSettings(near_duplicates=False))
    src = tmp_path / "src"
    src.mkdir()
    for seed in SEEDS:
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed), quality=92))
    twin = photo(TWIN_OF).resize((300, 225))
    (src / "twin.jpg").write_bytes(jpeg_bytes(twin, quality=70))
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="sim")
    with session_scope(settings.db_url) as s:
        mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
    with session_scope(settings.db_url) as s:
        rows = list(s.scalars(select(ImageRow)))
        by_size = {(r.width, r.height): r.id for r in rows}
        ids = sorted(r.id for r in rows)
    assert len(ids) == len(SEEDS) + 1
    twin_id = by_size[(300, 225)]
    return settings, store, ids, twin_id


def _original_id(settings, store, twin_id, ids):
    """The stored picture of seed TWIN_OF, found by pixels (not by the embedder)."""
    target = np.asarray(photo(TWIN_OF), dtype=np.float32)
    with session_scope(settings.db_url) as s:
        images = load_images(s, store, [i for i in ids if i != twin_id])
    return min(images, key=lambda i: float(np.abs(np.asarray(images[i], dtype=np.float32) - target).mean()))


def test_the_planted_twin_is_found_first_both_ways(pool, embedder):
    settings, store, ids, twin_id = pool
    with session_scope(settings.db_url) as s:
        assert embeddings.embed_images(s, store, embedder, ids, data_dir=settings.data_dir) == len(ids)
    original = _original_id(settings, store, twin_id, ids)
    with session_scope(settings.db_url) as s:
        version = register(s, embedder.stamp).id
        from_twin = embeddings.similar_to_image(s, twin_id, 3, model_version_id=version, data_dir=settings.data_dir)
        from_original = embeddings.similar_to_image(s, original, 3, model_version_id=version,
                                                    data_dir=settings.data_dir)
        by_file = embeddings.similar_to_picture(s, photo(TWIN_OF), embedder, 2, data_dir=settings.data_dir)
    assert from_twin is not None and from_twin[0].image_id == original
    assert from_original is not None and from_original[0].image_id == twin_id
    assert twin_id not in [n.image_id for n in from_twin]  # the image itself is left out
    assert by_file[0].image_id in {original, twin_id}
    assert index_path(settings.data_dir, version).exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_incremental_adds_persist_and_equal_a_rebuild(pool, embedder):
    settings, store, ids, twin_id = pool
    half = len(ids) // 2
    with session_scope(settings.db_url) as s:
        assert embeddings.embed_images(s, store, embedder, ids[:half], data_dir=settings.data_dir) == half
    with session_scope(settings.db_url) as s:
        assert embeddings.embed_images(s, store, embedder, ids, data_dir=settings.data_dir) == len(ids) - half
        assert embeddings.embed_images(s, store, embedder, ids, data_dir=settings.data_dir) == 0  # idempotent
        version = register(s, embedder.stamp).id
        assert s.scalar(select(func.count()).select_from(ImageEmbedding)) == len(ids)
        assert embeddings.embedding_versions(s) == [version]
    path = index_path(settings.data_dir, version)
    reloaded = SimilarityIndex(path, embedder.embed_images([photo(1)]).shape[1])
    assert reloaded.keys() == set(ids)
    with session_scope(settings.db_url) as s:
        incremental = {i: embeddings.similar_to_image(s, i, 4, model_version_id=version,
                                                      data_dir=settings.data_dir) for i in ids}
        path.unlink()  # a host without the file: the next search rebuilds it from the table
        assert embeddings.similar_to_image(s, ids[0], 4, model_version_id=version,
                                           data_dir=settings.data_dir) == incremental[ids[0]]
        stale = SimilarityIndex(path, reloaded.dim)
        stale.add([ids[0]], np.zeros((1, reloaded.dim), dtype=np.float32) + 1)
        stale.clear()
        stale.save()  # an empty file, as on a host that missed the other hosts' rows: searched, it is rebuilt
        assert embeddings.similar_to_image(s, ids[0], 4, model_version_id=version,
                                           data_dir=settings.data_dir) == incremental[ids[0]]
        assert embeddings.rebuild_index(s, version, data_dir=settings.data_dir) == len(ids)
        rebuilt = {i: embeddings.similar_to_image(s, i, 4, model_version_id=version,
                                                  data_dir=settings.data_dir) for i in ids}
    assert [[n.image_id for n in incremental[i] or []] for i in ids] == \
        [[n.image_id for n in rebuilt[i] or []] for i in ids]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_vectors_pooled_elsewhere_are_stored_once_and_indexed(pool, embedder):
    settings, _, ids, _ = pool
    with session_scope(settings.db_url) as s:
        version = register(s, embedder.stamp).id
        vectors = np.eye(len(ids), dtype=np.float32) * 3
        assert embeddings.store_embeddings(s, version, ids, vectors, data_dir=settings.data_dir) == len(ids)
        assert embeddings.store_embeddings(s, version, ids, vectors, data_dir=settings.data_dir) == 0
        stored_ids, stored = embeddings.stored_vectors(s, version)
    assert stored_ids == sorted(ids) and np.allclose(np.linalg.norm(stored, axis=1), 1.0)
    assert SimilarityIndex(index_path(settings.data_dir, version), len(ids)).keys() == set(ids)


def test_vectors_pack_unpack_and_normalise():
    vectors = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(vectors, [[0.6, 0.8], [0.0, 0.0]])
    assert vectors.dtype == np.float32
    assert np.array_equal(unpack(pack(vectors[0]), 2), vectors[0])
    with pytest.raises(ValueError):
        unpack(pack(vectors[0]), 3)


def test_index_add_replaces_and_search_excludes(tmp_path):
    index = SimilarityIndex(tmp_path / "i.usearch", 3)
    index.add([1, 2], normalise(np.array([[1.0, 0, 0], [0, 1.0, 0]])))
    index.add([1], normalise(np.array([[0, 0, 1.0]])))  # replaced, not duplicated
    assert len(index) == 2 and 1 in index
    assert [n.image_id for n in index.search(np.array([0, 0, 1.0], dtype=np.float32), 1)] == [1]
    assert [n.image_id for n in index.search(np.array([0, 0, 1.0], dtype=np.float32), 1, exclude=1)] == [2]
    with pytest.raises(ValueError):
        index.save()
        SimilarityIndex(tmp_path / "i.usearch", 4)


def test_a_dedicated_vision_model_embeds_from_a_directory(tmp_path, models_cache_dir):
    """A tiny random-weight DINOv2 saved to a directory, loaded through the registry by its path."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from annotators.registry import make_image_embedder

    folder = tmp_path / "tiny-dinov2"
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=56, patch_size=14)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}).save_pretrained(folder)
    settings = make_settings("sqlite://", tmp_path, similarity={"embedder": "vision", "embedder_model": str(folder)},
                             models={"device": "cpu", "cache_dir": models_cache_dir})
    embedder = make_image_embedder(settings)
    vectors = embedder.embed_images([photo(1), photo(1).resize((300, 225)), photo(2)])
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])  # the twin is nearer
    assert embedder.stamp.name.endswith("(image embedding)")
    assert embedder.stamp.params == {"embedding": "vision-model"}
    with pytest.raises(ValueError):
        make_settings("sqlite://", tmp_path, similarity={"embedder": "vision"})
