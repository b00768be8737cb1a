"""Similarity search over stored image embeddings: the images most like one image (no model runs
here; the index file is this host's, rebuilt from the database when missing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from engine.domain.vocabulary import Role
from engine.services import embeddings
from engine.services.auth import Principal
from web.deps import PrincipalDep, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Id

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/images", tags=["images"])
SEARCHERS = frozenset({Role.REVIEWER, Role.ADMIN, Role.ML_ENGINEER})


async def searcher(principal: PrincipalDep) -> Principal:
    """Reviewers, ML engineers and admins (403 for anyone else)."""
    if Role(principal.role) not in SEARCHERS:
        raise HTTPException(403, f"the {principal.role.value} role may not search similar images")
    return principal


Searcher = Annotated[Principal, Depends(searcher)]


class NeighbourOut(BaseModel):
    image_id: int
    similarity: float


class SimilarOut(BaseModel):
    image_id: int
    model_version_id: int
    neighbours: list[NeighbourOut]


@router.get("/{image_id}/similar", response_model=SimilarOut)
def similar(image_id: Id, session: SessionDep, settings: SettingsDep, _: Searcher,
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
