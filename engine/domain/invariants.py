"""The written invariants of the label and task state: what must hold in every committed database.

``dataengine check`` (:mod:`engine.services.check`) runs one query per invariant and prints every row
that breaks it; ``--repair`` fixes only the invariants listed here with a ``repair``, where the fix
is mechanical (bookkeeping left behind, never a label someone has to judge). Label contradictions
(the P invariants) need a person: the check names them with their ids and leaves them alone. The F
invariants compare the media store's files with the image rows (checked when a media root is given).

docs/architecture.md ("Labels: the decision model, its invariants, one ground truth") carries the
same list, word for word (a test compares them).

Vocabulary (engine/domain/decisions.py): a pair's *claim* is (``is_exhaustive``, ``decided_by``) with
its polarity: none (NULL, NULL); *instances missing* (false, decider); *exhaustive* (true, decider);
*negative* (true, decider, polarity ``negative``).

Pure: frozen dataclasses, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

MASK, PAIR, TASK, VERDICT = "mask", "pair", "task", "verdict"
FILE, IMAGE = "file", "image"  # the media store: files under the media root, image rows


@dataclass(frozen=True)
class Invariant:
    code: str  # "M1", "P1", "T1", "F1", …: masks, pairs, tasks and their verdicts, media files
    subject: str  # what a violation is reported on: mask | pair | task | verdict | file | image
    statement: str  # one sentence, as docs/architecture.md writes it
    repair: str | None = None  # what ``check --repair`` does; None: a person must decide

    @property
    def repairable(self) -> bool:
        return self.repair is not None


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "M1", MASK, "a mask's `decided_by` is set exactly when its state is not `candidate`.",
        "a candidate's `decided_by` is cleared (a decided mask without a decider is left: who decided "
        "is not known)."),
    Invariant(
        "M2", MASK,
        "a stored mask's RLE is valid for its size: counts well-formed, non-negative and summing to "
        "`height` × `width`."),
    Invariant("P1", PAIR, "a negative pair has no accepted mask."),
    Invariant("P2", PAIR, "a negative pair carries a decided negative claim (`is_exhaustive` true, `decided_by` set)."),
    Invariant("P3", PAIR, "an exhaustive positive pair has at least one accepted mask."),
    Invariant("P4", PAIR, "an accepted mask's pair is positive (on a negative pair that is P1)."),
    Invariant(
        "P5", PAIR,
        "a positive pair has an accepted mask or the claim *instances missing* (an exhaustive one "
        "without is P3), and a pair with that claim is positive."),
    Invariant("P6", PAIR, "a pair's `decided_by` is set exactly when `is_exhaustive` is not NULL."),
    Invariant(
        "T1", TASK,
        "a task has at most one live lease: it is `leased` exactly when it has an owner and an expiry.",
        "a task not `leased` loses its owner and expiry; a `leased` one without an owner goes back to "
        "`open` (a gold copy: `cancelled`, the sweep makes a new one); a `leased` one without an expiry gets "
        "the time of the repair (lapsed: its owner may still submit until the sweep returns it)."),
    Invariant(
        "T2", VERDICT,
        "one person never gives two verdicts on one task: per (task, person) at most one verdict that no "
        "other verdict supersedes (a superseding edit replaces, it does not add; an undo takes back, it "
        "judges nothing and is not counted)."),
    Invariant(
        "T3", VERDICT,
        "a verdict's kind matches its task's kind, its pair and mask are the task's, and a verdict it "
        "supersedes is of the same task."),
    Invariant("T4", TASK, "a verify_mask task names a mask of its pair, other kinds none."),
    Invariant(
        "T5", TASK, "at most one open or leased non-gold task per (kind, pair, mask).",
        "the duplicates that are `open` are cancelled, the reason says of which task; the one kept is "
        "the leased one, else the oldest (two leased duplicates are left to their holders)."),
    Invariant(
        "T6", TASK,
        "no more people judged a task than its review count: people with a verdict on it that no other "
        "verdict supersedes and that is no undo ≤ `reviews_required`."),
    Invariant(
        "F1", FILE,
        "every file under the media root older than the grace period (a leftover `.tmp-*` file included) is "
        "the stored file of an image row.",
        "the orphan file is removed, after checking again that it is still old and no image row names it."),
    Invariant(
        "F2", IMAGE,
        "every image row's stored file exists under the media root (reported with the image's source URI, so "
        "a person can mine it again)."),
)
MEDIA_CODES: tuple[str, ...] = ("F1", "F2")  # need the media root: checked when it is given

BY_CODE: dict[str, Invariant] = {inv.code: inv for inv in INVARIANTS}
REPAIRABLE: tuple[str, ...] = tuple(inv.code for inv in INVARIANTS if inv.repairable)


def invariant(code: str) -> Invariant:
    try:
        return BY_CODE[code.upper()]
    except KeyError:
        raise KeyError(f"no invariant {code!r}; known: {', '.join(BY_CODE)}") from None
