"""GET /api/v1/models/state: which models this server process holds or is loading (engine/model_states.py).

The correction page asks it while a click-to-segment waits, to say "loading the model" rather than a
bare "Segmenting…" when the wait is the model's first load (the warm-up's, or the click's own). Any
signed-in person may read it: roles and states only, nothing about the data."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from engine import model_states
from web.deps import PrincipalDep

router = APIRouter(tags=["models"])


class ModelStateOut(BaseModel):
    state: str = Field(description="loading, ready or failed (the model is tried again on its next use)")
    seconds: float | None = Field(None, description="how long the load took (ready or failed)")


class ModelStatesOut(BaseModel):
    models: dict[str, ModelStateOut] = Field(
        description="by role (segmenter, exemplar_proposer, video_tracker, …); a role absent: not loaded yet "
                    "in this process (with a broker, the page runners' models live on the gpu workers)")


@router.get("/models/state", response_model=ModelStatesOut)
async def model_state(_principal: PrincipalDep) -> ModelStatesOut:
    return ModelStatesOut(models={role: ModelStateOut(state=s.state, seconds=s.seconds)
                                  for role, s in model_states.snapshot().items()})
