"""A database with pairs in every label state, and what ground truth is in each under each label
source, written out by hand from docs/architecture.md ("Labels: … one ground truth").

States are written straight into the columns the definition reads (masks.state, decided_by,
is_crowd; image_concepts.polarity, is_exhaustive, decided_by), as the decision model leaves them.
Each pair has its own (image, phrase), so COCO categories map back to pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

A, H = "ai", "human"
SOURCES = ("human", "ai", "both")


@dataclass(frozen=True)
class PairSpec:
    """A pair's stored state: its claim (None | missing | exhaustive | negative) with decider and
    polarity, and its masks as (state, decided_by, is_crowd)."""

    claim: str | None
    decider: str | None
    polarity: str
    masks: tuple[tuple[str, str | None, bool], ...]


def acc(by: str, crowd: bool = False) -> tuple[str, str | None, bool]:
    return ("accepted", by, crowd)


def rej(by: str) -> tuple[str, str | None, bool]:
    return ("rejected", by, False)


CAND = ("candidate", None, False)

STATES: dict[str, PairSpec] = {
    "neg_h": PairSpec("negative", H, "negative", (rej(H), rej(H))),
    "neg_ai": PairSpec("negative", A, "negative", (rej(A), rej(A))),
    # exhaustive by a person, one of its masks accepted by the router: both are ground truth
    "exh_h": PairSpec("exhaustive", H, "positive", (acc(H), acc(A), rej(H))),
    "exh_ai": PairSpec("exhaustive", A, "positive", (acc(A), acc(H))),
    "missing_h": PairSpec("missing", H, "positive", (acc(H), acc(A))),
    "no_claim": PairSpec(None, None, "positive", (acc(A), CAND)),
    "crowd_h": PairSpec("exhaustive", H, "positive", (acc(H, crowd=True), acc(H))),
    "exh_h_ai_crowd": PairSpec("exhaustive", H, "positive", (acc(A, crowd=True), acc(H))),
    "exh_ai_ai_crowd": PairSpec("exhaustive", A, "positive", (acc(A, crowd=True), acc(H))),
    "undecided": PairSpec(None, None, "unknown", (CAND, CAND)),
    # "complete" said while the masks were candidates: waits for them, not ground truth yet
    "pending_h": PairSpec("exhaustive", H, "unknown", (CAND, CAND)),
    # a person said instances are missing and rejected every proposal: nothing to show yet
    "missing_h_empty": PairSpec("missing", H, "positive", (rej(H), rej(H))),
}


@dataclass(frozen=True)
class Truth:
    kind: str  # negative | exhaustive | partial
    masks: tuple[int, ...]  # indexes into the spec's masks
    instance_exhaustive: bool


# ground truth per label source: pair name → Truth (pairs not listed are not ground truth)
EXPECTED: dict[str, dict[str, Truth]] = {
    "human": {
        "neg_h": Truth("negative", (), True),
        "exh_h": Truth("exhaustive", (0, 1), True),  # the AI-accepted mask too (bug 3)
        "exh_ai": Truth("partial", (1,), False),
        "missing_h": Truth("partial", (0,), False),
        "crowd_h": Truth("exhaustive", (0, 1), False),
        "exh_h_ai_crowd": Truth("exhaustive", (0, 1), False),
        "exh_ai_ai_crowd": Truth("partial", (1,), False),
    },
    "ai": {
        "neg_ai": Truth("negative", (), True),
        "exh_h": Truth("partial", (1,), False),
        "exh_ai": Truth("exhaustive", (0, 1), True),
        "missing_h": Truth("partial", (1,), False),
        "no_claim": Truth("partial", (0,), False),
        "exh_h_ai_crowd": Truth("partial", (0,), False),
        "exh_ai_ai_crowd": Truth("exhaustive", (0, 1), False),
    },
    "both": {
        "neg_h": Truth("negative", (), True),
        "neg_ai": Truth("negative", (), True),
        "exh_h": Truth("exhaustive", (0, 1), True),
        "exh_ai": Truth("exhaustive", (0, 1), True),
        "missing_h": Truth("partial", (0, 1), False),
        "no_claim": Truth("partial", (0,), False),
        "crowd_h": Truth("exhaustive", (0, 1), False),
        "exh_h_ai_crowd": Truth("exhaustive", (0, 1), False),
        "exh_ai_ai_crowd": Truth("exhaustive", (0, 1), False),
    },
}


def decided_by(source: str, who: str | None) -> bool:
    return who is not None and (source == "both" or source == who)


@dataclass
class Seeded:
    pairs: dict[str, int]  # name → pair id
    masks: dict[str, list[int]]  # name → mask ids, in the spec's order
    images: dict[str, int]
    concepts: dict[str, int]  # name → concept id
    mv_version: int
    ev_version: int
    user: int

    def name_of(self, pair_id: int) -> str:
        return {v: k for k, v in self.pairs.items()}[pair_id]

    def truth(self, source: str) -> dict[int, Truth]:
        return {self.pairs[name]: t for name, t in EXPECTED[source].items()}

    def gt_masks(self, source: str) -> dict[int, set[int]]:
        """Pair id → its ground-truth mask ids under ``source`` (ground-truth pairs only)."""
        return {self.pairs[name]: {self.masks[name][i] for i in t.masks} for name, t in EXPECTED[source].items()}

    def rejections(self, source: str) -> set[int]:
        """Masks rejected by a decider ``source`` allows."""
        return {self.masks[name][i] for name, spec in STATES.items() for i, (state, who, _) in enumerate(spec.masks)
                if state == "rejected" and decided_by(source, who)}

    def claims(self, source: str) -> set[int]:
        """Pairs whose claim a decider ``source`` allows made."""
        return {self.pairs[name] for name, spec in STATES.items() if spec.claim and decided_by(source, spec.decider)}


def seed_states(session, media_root: Path) -> Seeded:
    """Every state of :data:`STATES` on its own image, plus verdicts that gave them (people's and the
    verifiers'), and two people's verdicts that are not the truth any more (see the tests)."""
    import numpy as np

    from engine.db.models import (
        Decider,
        ImageConcept,
        Mask,
        MaskState,
        ModelKind,
        Polarity,
        User,
        Verdict,
        VerdictKind,
        VerdictSource,
    )
    from engine.domain.masks import encode_mask
    from engine.repositories.labels import add_mask
    from engine.repositories.model_versions import get_or_create
    from tests.factories import seed_review_items

    names = list(STATES)
    made = seed_review_items(session, media_root, n_images=len(names), phrases=("thing",), masks_per_pair=0,
                             kinds=())
    proposer = get_or_create(session, ModelKind.PROPOSER, "test-proposer", "1")
    mv = get_or_create(session, ModelKind.MASK_VERIFIER, "test-mv", "1")
    ev = get_or_create(session, ModelKind.EXHAUSTIVITY_VERIFIER, "test-ev", "1")
    user = User(username="gt-judge", role="annotator")
    session.add(user)
    session.flush()
    # one concept per state, so that COCO's categories tell the pairs apart
    from engine.db.models import Concept

    pairs, masks, images, concepts = {}, {}, {}, {}
    for n, (name, pair_id) in enumerate(zip(names, made["pairs"], strict=True)):
        spec = STATES[name]
        pair = session.get(ImageConcept, pair_id)
        concept = Concept(text=f"thing {name}")
        session.add(concept)
        session.flush()
        pair.concept_id = concept.id
        pair.polarity = Polarity(spec.polarity)
        pair.is_exhaustive = None if spec.claim is None else spec.claim != "missing"
        pair.decided_by = Decider(spec.decider) if spec.decider else None
        pairs[name], images[name], concepts[name] = pair.id, pair.image_id, concept.id
        masks[name] = []
        for i, (state, who, crowd) in enumerate(spec.masks):
            grid = np.zeros((64, 96), dtype=bool)
            grid[4 + 6 * i: 20 + 6 * i, 4 + 9 * i + n: 30 + 9 * i + n] = True
            row = add_mask(session, pair.id, proposer.id, encode_mask(grid), score=0.9, is_crowd=crowd)
            row.state, row.decided_by = MaskState(state), Decider(who) if who else None
            session.flush()
            masks[name].append(row.id)

    def human(kind: VerdictKind, name: str, label: str, mask: int | None = None) -> None:
        session.add(Verdict(kind=kind, source=VerdictSource.HUMAN, pair_id=pairs[name],
                            mask_id=masks[name][mask] if mask is not None else None, user_id=user.id, label=label))

    def ai(kind: VerdictKind, name: str, label: str, mask: int | None = None, **payload: object) -> None:
        session.add(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pairs[name],
                            mask_id=masks[name][mask] if mask is not None else None,
                            model_version_id=(mv if kind == VerdictKind.MASK else ev).id, label=label,
                            probabilities={"accept": 0.9 if label == "accept" else 0.1}, payload=payload or None))

    M, E = VerdictKind.MASK, VerdictKind.EXHAUSTIVITY
    # the verdicts behind the states
    for name, spec in STATES.items():
        for i, (state, who, _) in enumerate(spec.masks):
            if state == "candidate":
                continue
            label = "accept" if state == "accepted" else "reject"
            (human if who == H else ai)(M, name, label, i)
    human(E, "neg_h", "not_present")
    ai(E, "neg_ai", "accept", boxes=0, mask_ids=[])
    human(E, "exh_h", "complete")
    ai(E, "exh_ai", "accept", boxes=2, mask_ids=masks["exh_ai"])
    human(E, "missing_h", "missing")
    human(E, "crowd_h", "complete")
    human(E, "exh_h_ai_crowd", "complete")
    ai(E, "exh_ai_ai_crowd", "accept", boxes=2, mask_ids=masks["exh_ai_ai_crowd"])
    human(E, "pending_h", "complete")
    human(E, "missing_h_empty", "missing")
    # no longer the truth: a person accepted a mask that a later decision rejected, and said
    # "complete" on a pair whose claim was cleared since
    human(M, "missing_h_empty", "accept", 0)
    human(E, "undecided", "complete")
    ai(M, "undecided", "accept", 0)  # the router sent it to people: no decision yet
    session.flush()
    assert session.query(Mask).count() == sum(len(v) for v in masks.values())
    return Seeded(pairs, masks, images, concepts, mv.id, ev.id, user.id)
