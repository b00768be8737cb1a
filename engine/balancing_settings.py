"""Settings of concept balancing (``Settings.balancing``; env ``DATAENGINE_BALANCING__…``): when a
concept has enough data and the model is good at it, the propose stage stops proposing it on new
images, except a deterministic ``explore_rate`` share of its pairs, so that drift is still noticed.

A concept is *saturated* when all three hold (engine/domain/balancing.py applies them to the
statistics of engine/services/concept_stats.py):

- at least ``min_accepted_masks`` accepted ground-truth masks (default 1,000);
- verifier–human agreement on the concept at least ``min_agreement`` (default 0.95), measured on
  at least ``min_human_decided`` items people decided (default 50), so that a handful of easy
  items cannot saturate a concept.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class BalancingSettings(BaseModel):
    enabled: bool = Field(True, description="skip saturated concepts' pairs in the propose stage")
    min_accepted_masks: int = Field(1_000, ge=1, description="accepted masks a concept needs to be saturated")
    min_agreement: float = Field(0.95, ge=0, le=1, description="verifier–human agreement it needs")
    min_human_decided: int = Field(50, ge=1, description="items people decided that the agreement rests on")
    explore_rate: float = Field(
        0.05, ge=0, le=1, description="share of a saturated concept's pairs still proposed (by a seeded hash)")
    seed: int = Field(0, description="seed of the explore hash: the same pairs are explored on every run")
    label_source: Literal["human", "ai", "both"] = Field(
        "both", description="whose decisions count as ground truth for the accepted-mask and negative counts")
