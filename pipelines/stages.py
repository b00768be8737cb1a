"""The stage order, in one place. Later stages (caption, parse, propose, verify, route) join here."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.tasks import MINE_BATCH


@dataclass(frozen=True)
class Stage:
    name: str
    task: str
    queue: str | None  # None: chosen per job (io for URL sources, cpu for local files)


STAGES: tuple[Stage, ...] = (Stage("mine", MINE_BATCH, None),)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
