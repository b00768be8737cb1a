"""The propose stage stores each proposed image's embedding (the tiny random-weight SAM 3's vision features,
pooled) under the image embedder's model version, so similarity search finds proposed images with no
separate embed step. Real parts: the tiny SAM 3, SQLite, stored files, the USearch index on disk."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from annotators.image_embedder import Sam3ImageEmbedder
from annotators.sam3 import Sam3Proposer
from engine.db.models import Image as ImageRow
from engine.db.models import ImageEmbedding
from engine.db.session import session_scope
from engine.domain.similarity import normalise
from engine.index import SimilarityIndex
from engine.ports import PooledEmbeddings
from engine.services import caption, embeddings, flow, mine, parse, propose
from engine.services.common import register
from engine.settings import DedupSettings, ProposeSettings
from engine.similarity_settings import SimilaritySettings
from engine.storage import LocalMediaStore
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo
from tests.fakes import FakeCaptioner, FakeParser

ORDER = ("mine", "caption", "parse", "propose")
TWIN_OF = 61


@pytest.fixture(scope="module")
def sam3_ref(models_cache_dir):
    return str(models_cache_dir / "tiny" / "sam3")


@pytest.fixture(scope="module")
def proposer(sam3_ref):
    # a high threshold: the random weights' masks are not the point here, few are stored
    return Sam3Proposer(sam3_ref, score_threshold=0.95, mask_threshold=0.5, device="cpu")


@pytest.fixture(scope="module")
def embedder(sam3_ref):
    return Sam3ImageEmbedder(sam3_ref, device="cpu")


@pytest.fixture
def to_propose(database_url, tmp_path):
    """Four different pictures and a twin of one (resized, recompressed), mined, captioned and parsed:
    each waits in the propose stage with its phrases."""
    settings = make_settings(database_url, tmp_path, dedup=DedupSettings(near_duplicates=False))
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(60, 64):
        (src / f"p{seed}.jpg").write_bytes(jpeg_bytes(photo(seed)))
    (src / "twin.jpg").write_bytes(jpeg_bytes(photo(TWIN_OF).resize((300, 225)), quality=70))
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="propose-embed")
    with session_scope(settings.db_url) as s:
        report = mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
        flow.hand_over(s, plan.job_id, "mine", report.image_ids, ORDER)
        ids = sorted(report.image_ids)
    with session_scope(settings.db_url) as s:
        report = caption.caption_batch(s, store, FakeCaptioner(default="a cat and a sofa"), plan.job_id, ids)
        flow.hand_over(s, plan.job_id, "caption", report.image_ids, ORDER)
    with session_scope(settings.db_url) as s:
        report = parse.parse_batch(s, FakeParser(), plan.job_id, ids)
        flow.hand_over(s, plan.job_id, "parse", report.image_ids, ORDER)
    with session_scope(settings.db_url) as s:
        twin = s.scalar(select(ImageRow.id).where(ImageRow.width == 300))
    assert len(ids) == 5
    return settings, store, plan.job_id, ids, twin


def test_the_proposer_pools_and_stamps_as_the_embedder(proposer, embedder):
    assert isinstance(proposer, PooledEmbeddings)
    assert proposer.embedding_stamp == embedder.stamp  # the same model version: found without recomputing
    assert proposer.embedding_stamp != proposer.stamp
    picture, other = photo(3), photo(4)
    assert proposer.pooled_embedding(picture) is None  # not encoded yet: no encoder runs for it
    proposer.propose(picture, ["a cat"])
    pooled = proposer.pooled_embedding(picture)
    assert pooled is not None
    assert np.allclose(normalise(pooled[None])[0], embedder.embed_images([picture])[0], atol=1e-5)
    assert proposer.pooled_embedding(other) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_proposed_image_is_found_with_no_embed_step(to_propose, proposer, embedder, monkeypatch):
    settings, store, job_id, ids, twin = to_propose
    saves = []
    real_save = SimilarityIndex.save
    monkeypatch.setattr(SimilarityIndex, "save", lambda self: (saves.append(self.path), real_save(self))[1])
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, ids,
                                       embed_to=settings.data_dir)
    assert report.counts["done"] == len(ids) and report.counts["embeddings"] == len(ids)
    assert len(saves) == 1  # one index save for the batch
    with session_scope(settings.db_url) as s:
        version = register(s, embedder.stamp).id  # the embedder's version, registered by the stage
        assert s.scalar(select(func.count()).select_from(ImageEmbedding).where(
            ImageEmbedding.model_version_id == version)) == len(ids)
        from_twin = embeddings.similar_to_image(s, twin, 2, model_version_id=version, data_dir=settings.data_dir)
        # the embedder computes nothing: it finds the stage's vectors by its own stamp
        by_file = embeddings.similar_to_picture(s, photo(TWIN_OF), embedder, 1, data_dir=settings.data_dir)
    assert from_twin is not None and len(from_twin) == 2 and twin not in [n.image_id for n in from_twin]
    assert by_file[0].image_id in {from_twin[0].image_id, twin}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_embed_to_nothing_is_stored(to_propose, proposer):
    settings, store, job_id, ids, _ = to_propose
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, ids)
        assert report.counts["embeddings"] == 0
        assert s.scalar(select(func.count()).select_from(ImageEmbedding)) == 0
    assert not (settings.data_dir / "index").exists()


def test_the_stage_pools_only_for_the_proposers_own_checkpoint(tmp_path):
    folder = tmp_path / "sam3"
    folder.mkdir()
    relative = str(folder / ".." / "sam3")
    default = SimilaritySettings()
    assert default.from_propose is True
    assert default.pools_from_propose(str(folder), default_ref=relative)  # the same directory, spelt otherwise
    assert default.pools_from_propose("facebook/sam3", default_ref="facebook/sam3")
    assert not default.pools_from_propose("facebook/sam3", default_ref=str(folder))  # a promoted checkpoint
    assert not default.pools_from_propose(None, default_ref="facebook/sam3")
    assert SimilaritySettings(embedder_model=str(folder)).pools_from_propose(str(folder), default_ref="x")
    assert not SimilaritySettings(embedder_model="other/sam3").pools_from_propose(str(folder), default_ref=str(folder))
    assert not SimilaritySettings(from_propose=False).pools_from_propose("facebook/sam3", default_ref="facebook/sam3")
    vision = SimilaritySettings(embedder="vision", embedder_model=str(folder))
    assert not vision.pools_from_propose(str(folder), default_ref=str(folder))
