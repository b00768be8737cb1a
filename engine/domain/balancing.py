"""Concept balancing policy (pure): given per-concept statistics and the settings, which concepts
are saturated, and whether one pair of a saturated concept is still proposed (explored).

The explore decision is a seeded hash of the pair id, so the same pairs are explored on every run
and on every worker, and the explored share converges to ``explore_rate``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class BalancingSettings(Protocol):
    """What the policy reads of the settings (engine/balancing_settings.py; the domain imports no settings)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def min_accepted_masks(self) -> int: ...
    @property
    def min_agreement(self) -> float: ...
    @property
    def min_human_decided(self) -> int: ...
    @property
    def explore_rate(self) -> float: ...
    @property
    def seed(self) -> int: ...

SKIP_REASON = "concept saturated"


@dataclass(frozen=True)
class ConceptStats:
    concept_id: int
    text: str
    accepted_masks: int = 0  # ground-truth masks
    positive_pairs: int = 0  # pairs with a ground-truth mask
    negative_pairs: int = 0  # confirmed negatives
    decided_masks: int = 0  # masks accepted or rejected
    human_decided: int = 0  # masks and pairs a person decided
    compared: int = 0  # items with an AI verifier verdict and a human one
    agreed: int = 0  # of those, where both say the same

    @property
    def model_acceptance(self) -> float | None:
        """Share of the decided masks that were accepted (the proposer's precision as judged)."""
        return self.accepted_masks / self.decided_masks if self.decided_masks else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def is_saturated(stats: ConceptStats, settings: BalancingSettings) -> bool:
    """Enough accepted masks, and the verifiers agree with people often enough on enough human decisions."""
    agreement = stats.agreement
    return (stats.accepted_masks >= settings.min_accepted_masks
            and stats.human_decided >= settings.min_human_decided
            and agreement is not None and agreement >= settings.min_agreement)


def saturated_concepts(stats: Iterable[ConceptStats], settings: BalancingSettings) -> frozenset[int]:
    """The ids of the saturated concepts (none when balancing is disabled)."""
    if not settings.enabled:
        return frozenset()
    return frozenset(s.concept_id for s in stats if is_saturated(s, settings))


def explored(pair_id: int, settings: BalancingSettings) -> bool:
    """Whether a saturated concept's pair is proposed anyway: a seeded hash of the pair id below
    ``explore_rate``."""
    digest = hashlib.blake2b(f"{settings.seed}:{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64 < settings.explore_rate


def skip_pair(pair_id: int, concept_id: int, saturated: frozenset[int], settings: BalancingSettings) -> bool:
    """The propose stage leaves this pair out: its concept is saturated and the pair is not explored."""
    return concept_id in saturated and not explored(pair_id, settings)
