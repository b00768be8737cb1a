"""Similarity search over stored image embeddings: the images most like one image (no model runs
here; the index file is this host's, kept in step with the database when searched)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from engine.services import embeddings
from web.deps import ImageReader, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Id

# Who may read images by id may see which images are like them (every role: the queue's task page shows an
# annotator the current image's neighbours; the answer holds image ids and similarities only).
router = APIRouter(route_class=UnitOfWorkRoute, prefix="/images", tags=["images"])


class NeighbourOut(BaseModel):
    image_id: int
    similarity: float


class SimilarOut(BaseModel):
    image_id: int
    model_version_id: int
    neighbours: list[NeighbourOut]


@router.get("/{image_id}/similar", response_model=SimilarOut)
def similar(image_id: Id, session: SessionDep, settings: SettingsDep, _: ImageReader,
            k: int = Query(10, ge=1, le=100, description="neighbours to return"),
            version: int | None = Query(None, ge=1, description="embedder model version (default: the latest)"),
            ) -> SimilarOut:
    """The ``k`` stored images most like this one, most similar first (cosine similarity)."""
    versions = embeddings.embedding_versions(session)
    chosen = version or (versions[-1] if versions else None)
    if chosen is None or chosen not in versions:
        raise HTTPException(404, "no image embeddings of that model version: run `dataengine index embed`")
    found = embeddings.similar_to_image(session, image_id, k, model_version_id=chosen, data_dir=settings.data_dir)
    if found is None:
        raise HTTPException(404, f"image {image_id} has no embedding of model version {chosen}")
    return SimilarOut(image_id=image_id, model_version_id=chosen,
                      neighbours=[NeighbourOut(image_id=n.image_id, similarity=n.similarity) for n in found])
