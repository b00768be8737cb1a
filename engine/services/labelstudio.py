"""The database side of the Label Studio bridge: which tasks go out, what they look like there, and
what a pulled annotation does here.

Push: open tasks of one kind are leased to the bridge user (``labelstudio-bridge``, no password) for
``labelstudio.lease_s``, so our own queue does not hand them out while they sit in Label Studio;
each becomes a Label Studio task (a signed image URL, the phrase, a hint, our task id) whose
prediction carries the candidate masks as brush regions; the link (server, Label Studio task id →
our task) is recorded. A task goes to one server once.

Pull and webhook: an annotation (id, updated_at) is read once. Its choice and regions become a
verdict through the same function as a verdict from our own pages (engine/services/annotation.py:
submit), with source ``label_studio``, the Label Studio person as author (a user ``ls-<id>@<host>``,
no password) and the annotation's lead time as duration; its client id is derived from the server,
the annotation id and updated_at, so nothing is stored twice. An annotation edited in Label Studio
appends a verdict that supersedes the previous one. An annotation that cannot be used (unknown label,
wrong-size mask, the task no longer held by the bridge) is recorded with the reason, and nothing of it
is stored; a later edit is read again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db.base import utcnow
from engine.db.models import Concept, HumanTask, Image, ImageConcept, LabelStudioAnnotation, LabelStudioTask, Mask, User
from engine.domain import labelstudio as lsf
from engine.domain.masks import RleMask, decode_mask
from engine.domain.signing import signed_image_url
from engine.domain.vocabulary import LABELS, BridgeState, MaskState, Role, TaskKind, TaskState, VerdictSource
from engine.services.annotation import MAX_ACTIVE_MS, ClientIdConflict, MaskIn, VerdictError, VerdictIn, submit
from engine.services.queue import LeaseLost
from engine.settings import QueueSettings

BRIDGE_USER = "labelstudio-bridge"
MODEL_VERSION = "dataengine"  # the predictions' model version (the project pre-labels with it)
HINTS = {
    TaskKind.VERIFY_MASK: "Is the highlighted region one whole instance of the phrase? accept, reject, or "
                          "ungroundable when the phrase cannot be shown as a region.",
    TaskKind.CHECK_EXHAUSTIVITY: "Do the regions cover every instance of the phrase? complete, missing (some "
                                 "are not covered), or not_present (the phrase is not in the image).",
    TaskKind.CORRECT: "Make the regions exactly the instances of the phrase (edit, delete, draw with brush or "
                      "polygon), then choose corrected, or not_present when there is none.",
}


class BridgeError(ValueError):
    """A request the bridge cannot carry out (the message says why)."""


def normalise_server(url: str) -> str:
    """The identity of a Label Studio server: scheme://host[:port][/path], lower-case host, no slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BridgeError(f"Label Studio URL {url!r} is not an http(s) URL")
    netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def default_project(kind: TaskKind) -> str:
    return f"dataengine-{kind.value}"


def labels_for(kind: TaskKind) -> tuple[str, ...]:
    return LABELS[kind]


# ------------------------------------------------------------------------------------- people
def bridge_user(session: Session) -> User:
    return _service_user(session, BRIDGE_USER)


def person(session: Session, server: str, ls_user_id: int) -> User:
    """Our user for a Label Studio person (made on first sight; cannot sign in here)."""
    host = (urlsplit(server).netloc or "label-studio").lower().replace(":", "-")
    return _service_user(session, f"ls-{int(ls_user_id)}@{host}"[:64])


def _service_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = User(username=username, password_hash=None, role=Role.ANNOTATOR, is_active=True)
            session.add(user)
    except IntegrityError:  # made at the same moment by another pull or webhook call
        return session.scalars(select(User).where(User.username == username)).one()
    return user


# --------------------------------------------------------------------------------------- push
@dataclass
class Outgoing:
    """A task leased to the bridge, with what its Label Studio task shows."""

    task_id: int
    kind: TaskKind
    image_id: int
    width: int
    height: int
    phrase: str
    masks: list[tuple[int, RleMask, float | None]]  # (mask id, mask, score)


def claim(session: Session, server: str, kind: TaskKind, limit: int, lease_s: int,
          now: dt.datetime | None = None) -> list[Outgoing]:
    """Lease up to ``limit`` open tasks of ``kind`` that never went to ``server`` to the bridge user,
    highest priority first; what each shows. The caller commits only once they are in Label Studio."""
    now = now or utcnow()
    holder = bridge_user(session)
    sent = exists().where(LabelStudioTask.task_id == HumanTask.id, LabelStudioTask.server == server)
    candidates = (select(HumanTask.id).where(HumanTask.state == TaskState.OPEN, HumanTask.kind == kind,
                                             HumanTask.is_gold.is_(False), ~sent)
                  .order_by(HumanTask.priority.desc(), HumanTask.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    leased = list(session.scalars(
        update(HumanTask).where(HumanTask.id.in_(ids), HumanTask.state == TaskState.OPEN)
        .values(state=TaskState.LEASED, lease_owner_id=holder.id,
                lease_expires_at=now + dt.timedelta(seconds=lease_s), attempts=HumanTask.attempts + 1,
                updated_at=now)
        .returning(HumanTask.id).execution_options(synchronize_session=False)))
    order = {task_id: n for n, task_id in enumerate(ids)}
    return describe_outgoing(session, sorted(leased, key=order.__getitem__))


def describe_outgoing(session: Session, task_ids: list[int]) -> list[Outgoing]:
    """What each task shows in Label Studio (image, phrase, masks), in the order of ``task_ids``."""
    rows = session.execute(
        select(HumanTask.id, HumanTask.kind, HumanTask.pair_id, HumanTask.mask_id, Image.id, Image.width,
               Image.height, Concept.text)
        .join(ImageConcept, ImageConcept.id == HumanTask.pair_id).join(Image, Image.id == ImageConcept.image_id)
        .join(Concept, Concept.id == ImageConcept.concept_id).where(HumanTask.id.in_(task_ids))).all()
    pair_ids = {r[2] for r in rows}
    masks: dict[int, list[Mask]] = {}
    for m in session.scalars(select(Mask).where(Mask.pair_id.in_(pair_ids), Mask.state != MaskState.REJECTED)
                             .order_by(Mask.id)):
        masks.setdefault(m.pair_id, []).append(m)
    by_id = {}
    for task_id, kind, pair_id, mask_id, image_id, width, height, phrase in rows:
        shown = [m for m in masks.get(pair_id, []) if mask_id is None or m.id == mask_id]
        if mask_id is not None and not shown:  # the target mask was rejected meanwhile: still show it
            shown = list(session.scalars(select(Mask).where(Mask.id == mask_id)))
        by_id[task_id] = Outgoing(task_id, kind, image_id, width, height, phrase,
                                  [(m.id, _rle(m), m.score) for m in shown])
    return [by_id[i] for i in task_ids]


def _rle(mask: Mask) -> RleMask:
    return RleMask(mask.rle_counts, mask.height, mask.width, (mask.bbox_x, mask.bbox_y, mask.bbox_w, mask.bbox_h),
                   mask.area)


def ls_task(item: Outgoing, public_url: str, secret: str, expires: int) -> dict[str, Any]:
    """The Label Studio task for an outgoing task: data, and a prediction holding its masks."""
    regions = [lsf.brush_result(decode_mask(rle), f"m{mask_id}") for mask_id, rle, _ in item.masks]
    scores = [s for _, _, s in item.masks if s is not None]
    task: dict[str, Any] = {"data": {
        lsf.IMAGE: signed_image_url(public_url, item.image_id, secret, expires), lsf.PHRASE: item.phrase,
        lsf.HINT: HINTS[item.kind], "de_task_id": item.task_id, "de_kind": item.kind.value}}
    if regions:
        prediction: dict[str, Any] = {"model_version": MODEL_VERSION, "result": regions}
        if scores:
            prediction["score"] = float(max(scores))
        task["predictions"] = [prediction]
    return task


def record_links(session: Session, server: str, project_id: int, pairs: Sequence[tuple[int, int]],
                 now: dt.datetime | None = None) -> None:
    """Remember (our task id, Label Studio task id) pairs pushed to ``project_id``."""
    now = now or utcnow()
    session.add_all([LabelStudioTask(server=server, project_id=project_id, ls_task_id=ls_id, task_id=task_id,
                                     state=BridgeState.PUSHED, pushed_at=now, updated_at=now)
                     for task_id, ls_id in pairs])
    session.flush()


def linked_projects(session: Session, server: str) -> list[int]:
    return list(session.scalars(select(LabelStudioTask.project_id).where(LabelStudioTask.server == server)
                                .distinct().order_by(LabelStudioTask.project_id)))


# --------------------------------------------------------------------------------------- pull
@dataclass
class Outcome:
    """What one pulled annotation did: stored | replaced | conflict (stored, not applied: it disagrees
    with a decision a person made meanwhile) | unchanged | skipped | failed | unknown."""

    status: str
    ls_task_id: int
    annotation_id: int | None = None
    verdict_id: int | None = None
    error: str | None = None


@dataclass
class PullReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def client_id(server: str, annotation_id: int, updated_at: str) -> str:
    digest = hashlib.sha256(f"{server}|{annotation_id}|{updated_at}".encode()).hexdigest()[:40]
    return f"ls-{digest}"


def store_annotation(session: Session, server: str, ls_task_id: int, annotation: dict[str, Any],
                     settings: QueueSettings, *, user_email: str | None = None,
                     now: dt.datetime | None = None) -> Outcome:
    """Turn one Label Studio annotation of a linked task into a verdict (see the module's text)."""
    now = now or utcnow()
    link = session.scalars(select(LabelStudioTask).where(
        LabelStudioTask.server == server, LabelStudioTask.ls_task_id == ls_task_id).with_for_update()).first()
    if link is None:
        return Outcome("unknown", ls_task_id, error="not a task the bridge pushed to this server")
    try:
        annotation_id, updated_at = int(annotation["id"]), str(annotation["updated_at"])
        author_field = annotation.get("completed_by")
        if isinstance(author_field, dict):  # some serializers nest the user
            author_field = author_field.get("id")
        author = int(author_field) if author_field is not None else None
    except (KeyError, TypeError, ValueError):
        return _failed(session, link, None, "", None, "the annotation lacks id, updated_at or completed_by", now)
    if session.scalars(select(LabelStudioAnnotation.id).where(
            LabelStudioAnnotation.link_id == link.id, LabelStudioAnnotation.annotation_id == annotation_id,
            LabelStudioAnnotation.ls_updated_at == updated_at)).first() is not None:
        return Outcome("unchanged", ls_task_id, annotation_id)
    if annotation.get("was_cancelled"):
        session.add(LabelStudioAnnotation(link_id=link.id, annotation_id=annotation_id, ls_updated_at=updated_at,
                                          ls_user=user_email, error="skipped in Label Studio", created_at=now))
        session.flush()
        return Outcome("skipped", ls_task_id, annotation_id)
    previous = session.scalars(select(LabelStudioAnnotation.verdict_id).where(
        LabelStudioAnnotation.link_id == link.id, LabelStudioAnnotation.annotation_id == annotation_id,
        LabelStudioAnnotation.verdict_id.is_not(None)).order_by(LabelStudioAnnotation.id.desc())).first()
    try:
        with session.begin_nested():
            if author is None:
                raise VerdictError("the annotation names no author (completed_by)")
            body = _verdict_in(session, link, annotation, client_id(server, annotation_id, updated_at))
            user = person(session, server, author)
            done = submit(session, link.task_id, user.id, body, settings, now, source=VerdictSource.LABEL_STUDIO,
                          holder_id=bridge_user(session).id, supersedes_id=previous)
            if not done.created:
                raise ClientIdConflict("this annotation version was stored before")
    except (lsf.LabelStudioFormatError, VerdictError, LeaseLost, ClientIdConflict) as exc:
        return _failed(session, link, annotation_id, updated_at, user_email, str(exc), now)
    # a verdict that conflicts with a decision a person made meanwhile is stored, not applied: say so
    session.add(LabelStudioAnnotation(link_id=link.id, annotation_id=annotation_id, ls_updated_at=updated_at,
                                      ls_user=user_email, verdict_id=done.verdict_id, error=done.conflict,
                                      created_at=now))
    link.state, link.error, link.updated_at = BridgeState.DONE, done.conflict, now
    session.flush()
    if done.conflict:
        return Outcome("conflict", ls_task_id, annotation_id, done.verdict_id, error=done.conflict)
    return Outcome("replaced" if previous else "stored", ls_task_id, annotation_id, done.verdict_id)


def _failed(session: Session, link: LabelStudioTask, annotation_id: int | None, updated_at: str,
            user_email: str | None, error: str, now: dt.datetime) -> Outcome:
    if annotation_id is not None:
        session.add(LabelStudioAnnotation(link_id=link.id, annotation_id=annotation_id, ls_updated_at=updated_at,
                                          ls_user=user_email, error=error[:2000], created_at=now))
    if link.state != BridgeState.DONE:
        link.state = BridgeState.FAILED
    link.error, link.updated_at = error[:2000], now
    session.flush()
    return Outcome("failed", link.ls_task_id, annotation_id, error=error)


def _verdict_in(session: Session, link: LabelStudioTask, annotation: dict[str, Any], cid: str) -> VerdictIn:
    task = session.get(HumanTask, link.task_id)
    if task is None:
        raise VerdictError(f"our task {link.task_id} is gone")
    height, width = session.execute(select(Image.height, Image.width).join(
        ImageConcept, ImageConcept.image_id == Image.id).where(ImageConcept.id == task.pair_id)).one()
    regions = lsf.read_results(annotation.get("result"), LABELS[task.kind], height, width)
    if regions.label is None:
        raise VerdictError(f"no choice made (one of {', '.join(LABELS[task.kind])})")
    masks: list[MaskIn] = []
    if task.kind == TaskKind.CORRECT:
        own = {m.rle_counts: m.id for m in session.scalars(select(Mask).where(Mask.pair_id == task.pair_id))}
        for rle, tool in zip(regions.masks, regions.tools, strict=True):
            kept = own.get(rle.counts)  # a candidate left as it was: kept, not drawn again
            masks.append(MaskIn(mask_id=kept, tool="existing") if kept is not None
                         else MaskIn(rle=rle.to_coco(), tool=tool))
    lead = annotation.get("lead_time")
    active_ms = int(round(float(lead) * 1000)) if isinstance(lead, int | float) and lead >= 0 else 0
    active_ms = min(active_ms, MAX_ACTIVE_MS)
    submitted = _parse_time(annotation.get("created_at"))
    started = submitted - dt.timedelta(milliseconds=active_ms) if submitted is not None else None
    return VerdictIn(client_id=cid, label=regions.label, active_ms=active_ms, started_at=started, masks=masks)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
