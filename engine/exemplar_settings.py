"""Settings of exemplar prompts in correction (``Settings.exemplars``; env ``DATAENGINE_EXEMPLARS__…``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ExemplarSettings(BaseModel):
    max_boxes: int = Field(8, ge=1, le=64, description="most exemplar boxes in one request")
    feature_cache_size: int = Field(
        16, ge=1, le=1024, description="images whose SAM 3 vision features the exemplar worker keeps (LRU)")
    score_threshold: float = Field(0.5, ge=0, le=1, description="instances scored below this are not returned")
    max_masks: int = Field(64, ge=1, le=500, description="most candidate masks one request returns")
