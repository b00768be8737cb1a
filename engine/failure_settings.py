"""Settings of failure mining (``Settings.failure_mining``; env ``DATAENGINE_FAILURE_MINING__…``).

A job mined with ``--prioritise-failures`` (job option ``prioritise_failures``) embeds its candidate
pool in the mine stage with the configured image embedder (``Settings.similarity``), and once the pool
is mined hands it to the model stages most-like-recent-failures first (engine/services/failures.py).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class FailureMiningSettings(BaseModel):
    max_failure_images: int = Field(
        500, ge=1, le=100_000,
        description="the most recent images where people found the model wrong that the pool is compared with")
    explore_rate: float = Field(
        0.1, ge=0, le=1,
        description="share of the order given to pool images in a seeded random order, so that failures unlike "
                    "any found so far are still met (0: strictly most similar first)")
    seed: int = Field(0, description="seed of the explore draw: the same job ranks its pool the same way")
