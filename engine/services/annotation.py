"""What an annotator sees of a task, and what their verdict does.

Labels per task kind (``LABELS``, engine/domain/vocabulary.py; the calibration of the verifiers
reads the same words):
  verify_mask          accept | reject | ungroundable
  check_exhaustivity   complete | missing | not_present
  correct              corrected (one or more masks) | not_present (zero masks)

A verdict is appended once per client id (a retried submission returns the first); the caller must
hold the task's lease. A gold task only measures the annotator. A task picked for multi-review goes
back to the queue until enough different people judged it; their majority decides, and a tie adds one
more review (up to ``max_reviews``). When the task is decided its labels are applied: mask states,
the pair's exhaustivity and polarity, new masks from corrections, and a correction task when an
annotator says instances are missing. A decided item is never overridden by the router.

What a submission may carry and its checks (``VerdictIn``, ``MaskIn``, ``VerdictError``) live in
engine/services/verdict_input.py and are re-exported here."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Caption, Concept, HumanTask, Image, ImageConcept, Mask, Verdict
from engine.domain import decisions as dm
from engine.domain.audit import in_audit_sample
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    LABEL_KEYS,
    LABELS,
    VERDICT_KIND,
    MaskState,
    MediaKind,
    TaskKind,
    TaskState,
    VerdictSource,
)
from engine.services import decide, video_correction, video_review
from engine.services.corrections import HUMAN_MASK_SOURCE, Correction, DrawnMasks
from engine.services.queue import LeaseLost
from engine.services.verdict_input import (
    MAX_ACTIVE_MS,
    MAX_MASKS,
    MaskIn,
    VerdictError,
    VerdictIn,
    check_masks,
    validate,
)
from engine.settings import QueueSettings

__all__ = ["HUMAN_MASK_SOURCE", "LABELS", "MAX_ACTIVE_MS", "MAX_MASKS", "VERDICT_KIND", "ClientIdConflict", "MaskIn",
           "Submitted", "TaskIncomplete", "VerdictError", "VerdictIn", "describe", "submit"]

class ClientIdConflict(ValueError):
    """The client id belongs to another verdict (HTTP 409)."""


class TaskIncomplete(LookupError):
    """The task lacks what its kind needs (a verify_mask task without its mask, a pair without its
    image): a fault of the stored data, not of the submission."""


@dataclass(frozen=True)
class Submitted:
    verdict_id: int
    task_state: str
    created: bool  # False when this was a retry of an earlier submission
    gold_correct: bool | None = None
    conflict: str | None = None  # the verdict was stored but conflicts with a decision made (not applied)


# ------------------------------------------------------------------------------------ describe
# Built once: the page asks for a task hundreds of times a second, and building a statement costs
# more than running it. Plain columns, not ORM objects (nothing here is changed).
_FIRST_CAPTION = (select(Caption.text).where(Caption.image_id == Image.id).order_by(Caption.id).limit(1)
                  .correlate(Image).scalar_subquery())
_DESCRIBE_PAIR = (
    select(ImageConcept.id, ImageConcept.video_id, Image.id.label("image_id"), Image.width, Image.height,
           Concept.text, _FIRST_CAPTION.label("caption"))
    .outerjoin(Image, Image.id == ImageConcept.image_id).join(Concept, Concept.id == ImageConcept.concept_id)
    .where(ImageConcept.id == bindparam("pair_id")))
_DESCRIBE_MASKS = (
    select(Mask.id, Mask.height, Mask.width, Mask.rle_counts, Mask.bbox_x, Mask.bbox_y, Mask.bbox_w, Mask.bbox_h,
           Mask.area, Mask.score, Mask.is_crowd, Mask.state)
    .where(Mask.pair_id == bindparam("pair_id"),
           or_(Mask.state != MaskState.REJECTED, Mask.id == bindparam("target_id")))
    .order_by(Mask.id))


def describe(session: Session, task: HumanTask) -> dict[str, Any]:
    """The task as the page needs it: image, phrase, caption and the pair's candidate masks (and the
    task's own mask even when it was rejected meanwhile). Gold tasks look exactly like others (no
    answer, no flag). Every value is a JSON type already. ``media`` says which: a video task's
    video, masklets and frames are described by engine/services/video_review.py."""
    pair = session.execute(_DESCRIBE_PAIR, {"pair_id": task.pair_id}).one()
    common = {
        "id": task.id, "kind": task.kind.value, "labels": list(LABELS[task.kind]),
        "keys": {str(label): key for label, key in LABEL_KEYS[task.kind].items()},
        "lease_expires_at": task.lease_expires_at.isoformat() if task.lease_expires_at else None,
        "phrase": pair.text, "target_mask_id": task.mask_id,
        "reason": task.reason,  # a gold copy carries the wording of an ordinary task of its kind
    }
    if pair.video_id is not None:
        return common | video_review.describe(session, task, pair.video_id)
    masks = session.execute(_DESCRIBE_MASKS, {"pair_id": task.pair_id, "target_id": task.mask_id}).all()
    # a gold copy's mask was decided (that is its known answer): shown as an open task's mask is
    asked = task.mask_id if task.is_gold else None
    return common | {
        "media": MediaKind.IMAGE.value, "caption": pair.caption,
        "image": {"id": pair.image_id, "width": pair.width, "height": pair.height,
                  "url": f"/api/v1/images/{pair.image_id}"},
        "masks": [{"id": m.id, "rle": {"size": [m.height, m.width], "counts": m.rle_counts},
                   "bbox": [m.bbox_x, m.bbox_y, m.bbox_w, m.bbox_h], "area": m.area, "score": m.score,
                   "is_crowd": m.is_crowd, "state": (MaskState.CANDIDATE if m.id == asked else m.state).value}
                  for m in masks],
    }


# -------------------------------------------------------------------------------------- submit
_PRIOR = (select(Verdict.id, Verdict.user_id, Verdict.task_id, Verdict.payload)
          .where(Verdict.client_id == bindparam("client_id")))


@dataclass(frozen=True)
class _Submission:
    """One verdict on its way in, with what every task kind's handler needs."""

    session: Session
    task: HumanTask  # locked
    pair_row: Row[Any]  # the pair's columns, read under its lock at the start of the submission
    user_id: int
    body: VerdictIn
    settings: QueueSettings
    now: dt.datetime
    source: VerdictSource
    supersedes_id: int | None

    @property
    def redecide(self) -> bool:
        """The verdict replaces an earlier one: its label is applied over the old one's."""
        return self.supersedes_id is not None


def submit(session: Session, task_id: int, user_id: int, body: VerdictIn, settings: QueueSettings,
           now: dt.datetime | None = None, *, source: VerdictSource = VerdictSource.HUMAN,
           holder_id: int | None = None, supersedes_id: int | None = None) -> Submitted:
    """Store ``user_id``'s verdict on a task and, once the task is decided, apply it through the
    decision model (engine/domain/decisions.py).

    A verdict that conflicts with a person's decision of another task is stored all the same (with
    the conflict in its payload), changes nothing, and comes back with ``conflict`` set (HTTP 409).

    Verdicts that come through a bridge (Label Studio) pass their ``source`` and the bridge user that
    holds the lease (``holder_id``; default: the author holds it). A verdict that replaces an earlier
    one of the same task (an annotation edited in Label Studio) names it in ``supersedes_id``: the task
    need not be leased then, and the new label is applied over the old one.

    Checks common to every kind here; then the handler of the task's kind, handed what that kind
    needs (the mask a verify_mask task asks about; a correction's masks checked against its image or video)."""
    pair_row, task = _lock(session, task_id)
    retried = _retried(session, task, user_id, body.client_id)
    if retried is not None:
        return retried
    _check_turn(session, task, user_id, holder_id, supersedes_id)
    validate(task, body)
    sub = _Submission(session, task, pair_row, user_id, body, settings, now or utcnow(), source, supersedes_id)
    if task.kind == TaskKind.VERIFY_MASK:
        return _verify_mask(sub, _target_mask(task))
    if task.kind == TaskKind.CHECK_EXHAUSTIVITY:
        return _check_exhaustivity(sub)
    video = video_correction.video_of(session, task.pair_id)
    if video is not None:
        return _correct(sub, video_correction.check(session, task, video, body))
    image = _pair_image(session, task)
    return _correct(sub, DrawnMasks(image, check_masks(session, task, image, body)))


def _lock(session: Session, task_id: int) -> tuple[Row[Any], HumanTask]:
    """The task's pair (its columns) and the task, locked in one order everywhere: the pair, then its
    tasks (the router and a settling verdict lock the pair, then update its open tasks). The task's
    row lock serialises submissions for it: a double-clicked retry waits here, then finds the first
    one's verdict by its client id."""
    pair_row: Row[Any] | None = decide.lock_pair_of_task(session, task_id)
    if pair_row is None:
        raise LeaseLost(f"no task {task_id}")
    task = session.get(HumanTask, task_id, with_for_update=True, populate_existing=True)
    if task is None:
        raise LeaseLost(f"no task {task_id}")
    return pair_row, task


def _retried(session: Session, task: HumanTask, user_id: int, client_id: str) -> Submitted | None:
    """What the first submission with this client id returned, when this is a retry of it."""
    prior = session.execute(_PRIOR, {"client_id": client_id}).first()
    if prior is None:
        return None
    if prior.user_id != user_id or prior.task_id != task.id:
        raise ClientIdConflict("this client id was used for another verdict; generate a new one")
    payload = prior.payload or {}
    return Submitted(prior.id, task.state.value, False, payload.get("gold_correct"),
                     (payload.get("conflict") or {}).get("message"))


def _check_turn(session: Session, task: HumanTask, user_id: int, holder_id: int | None,
                supersedes_id: int | None) -> None:
    """The submitter may judge the task now: it holds the lease, or replaces a verdict of the task."""
    if supersedes_id is not None:
        _check_superseded(session, task, supersedes_id)
    elif task.state != TaskState.LEASED or task.lease_owner_id != (holder_id or user_id):
        # an expired lease still counts as long as nobody else took the task: the sweep has not run
        raise LeaseLost(f"task {task.id} is not leased to you (it expired or was done)")


def _target_mask(task: HumanTask) -> int:
    """The mask a verify_mask task asks about."""
    if task.mask_id is None:
        raise TaskIncomplete(f"{task.kind.value} task {task.id} names no mask")
    return task.mask_id


def _pair_image(session: Session, task: HumanTask) -> Image:
    """The image of the task's pair (a correction's masks are drawn at its size)."""
    image = session.execute(select(Image).join(ImageConcept, ImageConcept.image_id == Image.id)
                            .where(ImageConcept.id == task.pair_id)).scalar_one_or_none()
    if image is None:
        raise TaskIncomplete(f"the pair of task {task.id} has no image")
    return image


# ----------------------------------------------------------------------------- one handler per kind
def _verify_mask(sub: _Submission, mask_id: int) -> Submitted:
    """verify_mask: the person accepts the task's mask, rejects it, or finds the phrase ungroundable."""
    label = _decided_label(sub)
    if label is None:
        return _store(sub, _payload(sub, []), None)
    facts = _facts(sub)
    return _store(sub, _payload(sub, []),
                  (facts, dm.judge_mask(facts, mask_id, label, task_id=sub.task.id, redecide=sub.redecide)))


def _check_exhaustivity(sub: _Submission) -> Submitted:
    """check_exhaustivity: the pair's masks are complete, instances are missing, or the phrase is absent."""
    label = _decided_label(sub)
    if label is None:
        return _store(sub, _payload(sub, []), None)
    facts = _facts(sub)
    return _store(sub, _payload(sub, []),
                  (facts, dm.judge_pair(facts, label, task_id=sub.task.id, redecide=sub.redecide)))


def _correct(sub: _Submission, plan: Correction) -> Submitted:
    """correct: exactly the kept candidates and the new masks are the pair's (none: not present).
    A kept mask keeps the crowd flag the person gave it; new masks (drawn; of a video: cut or
    tracked masklets) are stored as accepted. On a conflict nothing is lost: they stay in the verdict."""
    payload = _payload(sub, plan.recorded())
    label = _decided_label(sub)
    if label is None:
        return _store(sub, payload, None)
    facts = _facts(sub)
    outcome = dm.correct(facts, list(plan.kept), plan.n_new, task_id=sub.task.id, redecide=sub.redecide)
    if outcome.conflict is not None:
        if payload.get("masks"):
            payload["masks"] = plan.recorded(whole=True)
    else:
        for mask_id, is_crowd in plan.kept.items():
            sub.session.execute(update(Mask).where(Mask.id == mask_id).values(is_crowd=is_crowd)
                                .execution_options(synchronize_session="fetch"))
        payload["new_mask_ids"] = plan.add(sub.session, sub.task.pair_id)
    return _store(sub, payload, (facts, outcome))


# -------------------------------------------------------------------------- what every kind shares
def _payload(sub: _Submission, masks: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict's payload: the comment, a gold task's answer check, the correction's masks."""
    task, body = sub.task, sub.body
    payload: dict[str, Any] = {}
    if body.comment:
        payload["comment"] = body.comment[:2000]
    if task.is_gold:
        expected = (task.gold_answer or {}).get("label")
        payload.update(gold=True, gold_item_id=task.gold_item_id, expected=expected,
                       gold_correct=body.label == expected)
    if masks:
        payload["masks"] = masks
    return payload


def _facts(sub: _Submission) -> dm.PairFacts:
    """The pair as the decision model sees it, from the columns read under its lock."""
    return decide.facts(sub.session, sub.task.pair_id, mask_id=sub.task.mask_id, row=sub.pair_row)


def _store(sub: _Submission, payload: dict[str, Any], judged: tuple[dm.PairFacts, dm.Outcome] | None) -> Submitted:
    """Store the verdict, apply what its decided label does (``judged``: the facts it was judged on
    and the outcome; None while the task is undecided) and release or reopen the task."""
    session, task = sub.session, sub.task
    conflict = judged[1].conflict if judged is not None else None
    if conflict is not None:
        payload["conflict"] = conflict.to_dict()
    if judged is not None:
        payload["prior"] = dm.record(*judged)  # what the verdict changed: its undo restores it
    verdict = Verdict(client_id=sub.body.client_id, kind=VERDICT_KIND[task.kind], source=sub.source,
                      pair_id=task.pair_id, mask_id=task.mask_id, task_id=task.id, user_id=sub.user_id,
                      label=sub.body.label, payload=payload or None, duration_ms=sub.body.active_ms,
                      started_at=sub.body.started_at, supersedes_id=sub.supersedes_id, created_at=sub.now)
    session.add(verdict)
    session.flush()
    if judged is not None:
        before, outcome = judged
        decide.write(session, task.pair_id, outcome, task_id=task.id, priority=task.priority, now=sub.now,
                     before=before)
    if sub.supersedes_id is None:
        task.lease_owner_id, task.lease_expires_at, task.updated_at = None, None, sub.now
        task.state = TaskState.DONE if (task.is_gold or judged is not None) else TaskState.OPEN
    session.flush()
    return Submitted(verdict.id, task.state.value, True, payload.get("gold_correct"),
                     conflict.message if conflict is not None else None)


def _decided_label(sub: _Submission) -> str | None:
    """The task's label once this verdict is counted, or None (a gold task decides nothing; a
    multi-review task waits for more people; a replacement on an undecided task waits too)."""
    task, settings, label, supersedes_id = sub.task, sub.settings, sub.body.label, sub.supersedes_id
    if task.is_gold:
        task.reviews_done += 1
        return None
    if supersedes_id is not None:
        if task.state != TaskState.DONE:
            return None
        return label if task.reviews_required == 1 else _decision(sub.session, task, settings, label, supersedes_id,
                                                                  extend=False)
    task.reviews_done += 1
    if task.reviews_done == 1 and task.kind != TaskKind.CORRECT and in_audit_sample(
            f"review:{task.id}", settings.multi_review_rate, settings.review_seed):
        task.reviews_required = max(task.reviews_required, 2)
    return label if task.reviews_required == 1 else _decision(sub.session, task, settings, label, None)


def _check_superseded(session: Session, task: HumanTask, supersedes_id: int) -> None:
    old = session.execute(select(Verdict.task_id).where(Verdict.id == supersedes_id)).first()
    if old is None or old.task_id != task.id:
        raise VerdictError(f"verdict {supersedes_id} is not a verdict of task {task.id}")
    if task.is_gold:
        raise VerdictError("a gold task's verdict cannot be replaced")
    if session.scalars(select(Verdict.id).where(Verdict.supersedes_id == supersedes_id)).first() is not None:
        raise VerdictError(f"verdict {supersedes_id} was already replaced")


def _decision(session: Session, task: HumanTask, settings: QueueSettings, label: str,
              supersedes_id: int | None, extend: bool = True) -> str | None:
    """The task's label once enough people judged it (majority; a tie asks one more), else None.
    ``label`` is the verdict being submitted (not stored yet; it replaces ``supersedes_id``).
    Replaced verdicts do not count; their replacements do."""
    if task.reviews_done < task.reviews_required:
        return None
    replaced = select(Verdict.supersedes_id).where(Verdict.task_id == task.id, Verdict.supersedes_id.is_not(None))
    stored = session.execute(select(Verdict.id, Verdict.label).where(
        Verdict.task_id == task.id, Verdict.source.in_(HUMAN_SOURCES), Verdict.id.not_in(replaced),
        Verdict.label != dm.UNDONE)
        .order_by(Verdict.id))
    labels: list[str] = [v.label for v in stored if v.id != supersedes_id] + [label]
    counts = Counter(labels).most_common()
    tied = len(counts) > 1 and counts[0][1] == counts[1][1]
    if tied and extend and task.reviews_required < settings.max_reviews:
        task.reviews_required += 1
        return None
    if tied:
        return labels[-1]
    return counts[0][0]
