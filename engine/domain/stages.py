"""The stages of a mining job, in the order they run (pipelines/stages.py binds each to its service,
queue and batch size; this is the order alone, for those that only name stages: the web API, reports)."""

from __future__ import annotations

STAGE_NAMES: tuple[str, ...] = ("mine", "caption", "parse", "propose", "negatives", "verify", "route")


def planned_stages(until: str | None) -> list[str]:
    """The stages a job runs: up to and including ``until`` (every stage when None or unknown)."""
    if until in STAGE_NAMES:
        return list(STAGE_NAMES[: STAGE_NAMES.index(until) + 1])
    return list(STAGE_NAMES)
