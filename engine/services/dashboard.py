"""What the dashboard shows: queue depth, human throughput and speed, annotator quality, and how
often the AI verifiers agree with people.

Every function aggregates in SQL (GROUP BY, window functions) and returns a bounded number of rows,
so the cost does not grow with what is transferred; all of them run on PostgreSQL and SQLite.

Definitions
- queue depth: open and leased human tasks per kind, gold tasks excluded.
- throughput: human verdicts (sources human and label_studio, gold answers included: they are
  work) per clock hour (UTC), the last ``hours`` hours, the current hour last, zero-filled.
- median active seconds: ``duration_ms`` of human verdicts of the last 7 days per task kind, gold
  answers excluded (the task kind is that of the verdict: mask verification → verify_mask, …).
- per annotator: every human verdict they gave; gold answered / correct (the verdict's
  ``gold_correct``); agreement: among their verdicts on tasks that at least two people judged
  (gold excluded), the share equal to the task's majority label (their own vote counts). A task
  whose top labels tie has no majority and is left out until a further review breaks the tie.
- AI–human agreement per verifier version, as ``dataengine calibrate`` pairs them: per target
  (mask for MV, pair for EV) the version's latest AI verdict against the latest human verdict
  (gold answers excluded). Positive: AI label accept; human MV accept; human EV complete (or
  accept / exhaustive) — and not_present where EV judged the pair without boxes (the "presence"
  scope: nothing there, nothing missing); missing, reject, ungroundable are negative. EV rows are
  split by scope (with_masks | presence) as calibration splits them. ``precision`` is
  P(human positive | AI accept), ``recall`` P(AI accept | human positive).
- concept coverage: per concept (at most ``concept_stats.MAX_CONCEPTS``, most accepted masks first) the
  statistics of engine/services/concept_stats.py and whether the balancing policy
  (engine/domain/balancing.py, ``Settings.balancing``) counts it saturated: the long tail.
- video proposers: cgF1, pmF1 and IL_MCC per proposer version on the instance-exhaustive video
  pairs people decided, as engine/services/video_metrics.py defines them (it reads each scored
  pair's masklets; pHOTA needs the official evaluator and is in ``dataengine report`` only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import CTE, ColumnElement, Integer, Subquery, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from engine.balancing_settings import BalancingSettings
from engine.db.base import utcnow
from engine.db.models import HumanTask, ModelVersion, User, Verdict
from engine.domain.vocabulary import (
    HUMAN_SOURCES,
    ModelKind,
    PairLabel,
    TaskKind,
    TaskState,
    VerdictKind,
    VerdictSource,
)
from engine.services.calibrate import KINDS, POSITIVE_LABELS
from engine.services.concept_stats import ConceptCoverage, concept_coverage
from engine.services.export_rows import standing
from engine.services.video_metrics import VideoProposerQuality, video_quality

TASK_KIND_OF = {
    VerdictKind.MASK: TaskKind.VERIFY_MASK,
    VerdictKind.EXHAUSTIVITY: TaskKind.CHECK_EXHAUSTIVITY,
    VerdictKind.CORRECTION: TaskKind.CORRECT,
}
MAX_HOURS = 168
TIMING_DAYS = 7
MAX_ANNOTATORS = 500
MAX_VERIFIER_ROWS = 200
PRESENCE_POSITIVE = PairLabel.NOT_PRESENT  # a human EV label that is positive in the presence scope


@dataclass(frozen=True)
class QueueDepth:
    kind: str
    open: int
    leased: int
    oldest_open_at: dt.datetime | None


@dataclass(frozen=True)
class HourCount:
    hour: dt.datetime  # start of the hour, UTC
    verdicts: int


@dataclass(frozen=True)
class KindTiming:
    kind: str
    median_s: float | None
    n: int


@dataclass(frozen=True)
class AnnotatorStats:
    user_id: int
    username: str
    role: str
    verdicts: int
    active_s: float
    last_verdict_at: dt.datetime | None
    gold_answered: int
    gold_correct: int
    gold_accuracy: float | None
    multi_reviewed: int  # verdicts on tasks with ≥ 2 human verdicts and a majority label
    agreed: int
    agreement: float | None


@dataclass(frozen=True)
class VerifierAgreement:
    model_version_id: int
    verifier: str  # name:version
    model_kind: str  # mask_verifier | exhaustivity_verifier
    task_kind: str
    scope: str  # all (MV) | with_masks | presence (EV)
    n: int  # targets judged by this version and by a person
    agreed: int
    agreement: float | None
    ai_accepts: int
    human_accepts: int
    both_accept: int
    precision: float | None  # P(human positive | AI accept)
    recall: float | None  # P(AI accept | human positive)


@dataclass(frozen=True)
class Dashboard:
    generated_at: dt.datetime
    hours: int
    queue: list[QueueDepth]
    throughput: list[HourCount]
    timings: list[KindTiming]
    annotators: list[AnnotatorStats]
    verifiers: list[VerifierAgreement] = field(default_factory=list)
    # video proposers on instance-exhaustive video pairs decided by people (engine/services/video_metrics.py:
    # cgF1, pmF1, IL_MCC computed here; pHOTA only from the official evaluator, in `dataengine report`)
    video_proposers: list[VideoProposerQuality] = field(default_factory=list)
    concepts: list[ConceptCoverage] = field(default_factory=list)  # the long tail, most accepted masks first


def dashboard(session: Session, *, hours: int = 24, now: dt.datetime | None = None,
              balancing: BalancingSettings | None = None) -> Dashboard:
    now = now or utcnow()
    return Dashboard(generated_at=now, hours=hours, queue=queue_depth(session),
                     throughput=throughput(session, hours=hours, now=now),
                     timings=median_active_seconds(session, now=now), annotators=annotator_stats(session),
                     verifiers=verifier_agreement(session), video_proposers=video_quality(session),
                     concepts=concept_coverage(session, balancing or BalancingSettings()))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _not_gold() -> ColumnElement[bool]:
    """For verdicts outer-joined to their task: no task (e.g. imported) or a task that is not gold."""
    return or_(HumanTask.id.is_(None), HumanTask.is_gold.is_(False))


# ------------------------------------------------------------------------------------- queue
def queue_depth(session: Session) -> list[QueueDepth]:
    """Open and leased tasks per kind (every kind listed, zeros included), gold excluded."""
    rows = session.execute(
        select(HumanTask.kind,
               func.sum(case((HumanTask.state == TaskState.OPEN, 1), else_=0)),
               func.sum(case((HumanTask.state == TaskState.LEASED, 1), else_=0)),
               func.min(case((HumanTask.state == TaskState.OPEN, HumanTask.created_at), else_=None)))
        .where(HumanTask.state.in_([TaskState.OPEN, TaskState.LEASED]), HumanTask.is_gold.is_(False))
        .group_by(HumanTask.kind)
    ).all()
    found = {TaskKind(kind): (int(o or 0), int(leased or 0), _utc(oldest)) for kind, o, leased, oldest in rows}
    return [QueueDepth(kind.value, *found.get(kind, (0, 0, None))) for kind in TaskKind]


# -------------------------------------------------------------------------------- throughput
def throughput(session: Session, *, hours: int = 24, now: dt.datetime | None = None) -> list[HourCount]:
    """Human verdicts per clock hour (UTC) over the last ``hours`` hours, oldest first, the
    current (partial) hour last; hours without verdicts are 0."""
    hours = max(1, min(int(hours), MAX_HOURS))
    now = (now or utcnow()).astimezone(dt.UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours - 1)
    start_epoch = int(start.timestamp())
    epoch: ColumnElement[int]
    bucket: ColumnElement[int]
    if session.get_bind().dialect.name == "postgresql":
        epoch = func.extract("epoch", Verdict.created_at)
        bucket = cast(func.floor((epoch - start_epoch) / 3600), Integer)
    else:  # SQLite stores UTC text; strftime('%s') gives whole seconds since the epoch
        epoch = cast(func.strftime("%s", Verdict.created_at), Integer)
        bucket = (epoch - start_epoch) // 3600
    # bucket in a subquery: GROUP BY a column, not a second copy of a parameterised expression
    buckets = (select(bucket.label("bucket"))
               .where(Verdict.source.in_(HUMAN_SOURCES), Verdict.created_at >= start).subquery())
    rows = session.execute(select(buckets.c.bucket, func.count()).group_by(buckets.c.bucket)).all()
    counts = {int(b): int(n) for b, n in rows if b is not None}
    return [HourCount(start + dt.timedelta(hours=i), counts.get(i, 0)) for i in range(hours)]


# ----------------------------------------------------------------------------------- timings
def median_active_seconds(session: Session, *, days: int = TIMING_DAYS,
                          now: dt.datetime | None = None) -> list[KindTiming]:
    """Median ``duration_ms`` (as seconds) of human verdicts of the last ``days`` days per task
    kind, gold answers excluded. One query: rank per kind with window functions, then average the
    middle one or two values."""
    since = (now or utcnow()) - dt.timedelta(days=days)
    ranked = (
        select(Verdict.kind.label("kind"), Verdict.duration_ms.label("ms"),
               func.row_number().over(partition_by=Verdict.kind, order_by=Verdict.duration_ms).label("rn"),
               func.count().over(partition_by=Verdict.kind).label("n"))
        .select_from(Verdict).outerjoin(HumanTask, HumanTask.id == Verdict.task_id)
        .where(Verdict.source.in_(HUMAN_SOURCES), Verdict.duration_ms.is_not(None),
               Verdict.created_at >= since, _not_gold())
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.kind, func.avg(ranked.c.ms), func.max(ranked.c.n))
        .where(ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
        .group_by(ranked.c.kind)
    ).all()
    found = {TASK_KIND_OF[VerdictKind(kind)]: (float(ms) / 1000.0, int(n)) for kind, ms, n in rows}
    return [KindTiming(kind.value, *found.get(kind, (None, 0))) for kind in TaskKind]


# -------------------------------------------------------------------------------- annotators
def annotator_stats(session: Session, *, limit: int = MAX_ANNOTATORS) -> list[AnnotatorStats]:
    """One row per person with human verdicts, most verdicts first (at most ``limit``)."""
    human = Verdict.source.in_(HUMAN_SOURCES)
    base = session.execute(
        select(User.id, User.username, User.role, func.count(Verdict.id), func.sum(Verdict.duration_ms),
               func.max(Verdict.created_at))
        .join(Verdict, Verdict.user_id == User.id).where(human)
        .group_by(User.id, User.username, User.role)
        .order_by(func.count(Verdict.id).desc(), User.username).limit(limit)
    ).all()
    if not base:
        return []
    ids = [row[0] for row in base]
    correct = case((Verdict.payload["gold_correct"].as_boolean(), 1), else_=0)
    gold = {uid: (int(n), int(ok or 0)) for uid, n, ok in session.execute(
        select(Verdict.user_id, func.count(), func.sum(correct))
        .join(HumanTask, HumanTask.id == Verdict.task_id)
        .where(human, HumanTask.is_gold.is_(True), Verdict.user_id.in_(ids))
        .group_by(Verdict.user_id))}
    agreement = _agreement(session, ids)
    out = []
    for uid, username, role, n, ms, last in base:
        g_n, g_ok = gold.get(uid, (0, 0))
        m_n, m_ok = agreement.get(uid, (0, 0))
        out.append(AnnotatorStats(
            user_id=uid, username=username, role=str(getattr(role, "value", role)), verdicts=int(n),
            active_s=float(ms or 0) / 1000.0, last_verdict_at=_utc(last), gold_answered=g_n, gold_correct=g_ok,
            gold_accuracy=_ratio(g_ok, g_n), multi_reviewed=m_n, agreed=m_ok, agreement=_ratio(m_ok, m_n)))
    return out


def _agreement(session: Session, user_ids: list[int]) -> dict[int, tuple[int, int]]:
    """user id → (their verdicts on multi-reviewed tasks with a majority, how many equal it)."""
    human = Verdict.source.in_(HUMAN_SOURCES)
    per_label = (
        select(Verdict.task_id.label("task_id"), Verdict.label.label("label"), func.count().label("c"))
        .join(HumanTask, HumanTask.id == Verdict.task_id)
        .where(human, HumanTask.is_gold.is_(False), standing())
        .group_by(Verdict.task_id, Verdict.label)
        .cte("per_label")
    )
    totals = (
        select(per_label.c.task_id, func.max(per_label.c.c).label("top"))
        .group_by(per_label.c.task_id).having(func.sum(per_label.c.c) >= 2)
        .cte("totals")
    )
    majority = (
        select(per_label.c.task_id, func.min(per_label.c.label).label("label"))
        .join(totals, and_(totals.c.task_id == per_label.c.task_id, totals.c.top == per_label.c.c))
        .group_by(per_label.c.task_id).having(func.count() == 1)  # a tie at the top: no majority
        .cte("majority")
    )
    rows = session.execute(
        select(Verdict.user_id, func.count(), func.sum(case((Verdict.label == majority.c.label, 1), else_=0)))
        .join(majority, majority.c.task_id == Verdict.task_id)
        .where(human, Verdict.user_id.in_(user_ids))
        .group_by(Verdict.user_id)
    ).all()
    return {uid: (int(n), int(ok or 0)) for uid, n, ok in rows}


# --------------------------------------------------------------------------------- verifiers
def verifier_agreement(session: Session, *, limit: int = MAX_VERIFIER_ROWS) -> list[VerifierAgreement]:
    """Per MV / EV verifier version (and EV scope): how its latest verdict per target compares
    with the latest human verdict on the same target."""
    out: list[VerifierAgreement] = []
    for task_kind, (model_kind, verdict_kind) in KINDS.items():
        pairs = _agreement_pairs(task_kind, verdict_kind)
        out.extend(_verifier_counts(session, pairs, task_kind, model_kind, limit))
    return out


def _latest_human_labels(task_kind: TaskKind, verdict_kind: VerdictKind) -> CTE:
    """The latest human label per target, gold answers excluded (a CTE used twice: PostgreSQL
    materialises it once)."""
    latest_human = (
        select(func.max(Verdict.id).label("id")).select_from(Verdict)
        .outerjoin(HumanTask, HumanTask.id == Verdict.task_id)
        .where(Verdict.kind == verdict_kind, Verdict.source.in_(HUMAN_SOURCES), _not_gold(), standing())
        .group_by(Verdict.pair_id, Verdict.mask_id).subquery()
    )
    return (select(Verdict.pair_id, Verdict.mask_id, Verdict.label)
            .join(latest_human, latest_human.c.id == Verdict.id).cte(f"human_{task_kind.value}"))


def _target_terms(task_kind: TaskKind, av: type[Verdict], human: CTE,
                  positive: list[str]) -> tuple[ColumnElement[bool], ColumnElement[str], ColumnElement[int]]:
    """(an AI verdict ``av`` is on the human label's target, its scope, the person's positive as 1 / 0):
    MV per mask, scope all; EV per pair, scope presence (judged without boxes, where the person's
    not_present is positive too) or with_masks."""
    if task_kind == TaskKind.VERIFY_MASK:
        same_target = av.mask_id == human.c.mask_id  # a mask belongs to one pair
        scope: ColumnElement[str] = literal("all")
        human_pos = case((human.c.label.in_(positive), 1), else_=0)
        return same_target, scope, human_pos
    no_boxes = func.coalesce(av.payload["boxes"].as_integer(), 0) == 0
    return (and_(av.pair_id == human.c.pair_id, av.mask_id.is_(None), human.c.mask_id.is_(None)),
            case((no_boxes, "presence"), else_="with_masks"),
            case((human.c.label.in_(positive), 1), (and_(human.c.label == PRESENCE_POSITIVE, no_boxes), 1), else_=0))


def _agreement_pairs(task_kind: TaskKind, verdict_kind: VerdictKind) -> Subquery:
    """One row per target that people judged and a verifier version too: the version, the scope and
    the AI's and the person's positive (1 / 0), of the version's latest verdict and the latest human
    one. Only the AI verdicts on those targets are read: people judge a sample, so this stays small."""
    positive = sorted(POSITIVE_LABELS[task_kind])
    human = _latest_human_labels(task_kind, verdict_kind)
    av = aliased(Verdict)
    same_target, scope, human_pos = _target_terms(task_kind, av, human, positive)
    latest_ai = (
        select(func.max(av.id).label("id")).select_from(av).join(human, same_target)
        .where(av.kind == verdict_kind, av.source == VerdictSource.AI, av.model_version_id.is_not(None))
        .group_by(av.model_version_id, av.pair_id, av.mask_id).subquery()
    )
    ai_pos = case((av.label.in_(positive), 1), else_=0)
    return (
        select(av.model_version_id.label("version_id"), scope.label("scope"), ai_pos.label("ai"),
               human_pos.label("human"))
        .select_from(av)
        .join(latest_ai, latest_ai.c.id == av.id)
        .join(human, same_target)
        .subquery()
    )


def _verifier_counts(session: Session, pairs: Subquery, task_kind: TaskKind, model_kind: ModelKind,
                     limit: int) -> list[VerifierAgreement]:
    """The compared ``pairs`` counted per version of ``model_kind`` and scope (at most ``limit`` rows)."""
    rows = session.execute(
        select(pairs.c.version_id, ModelVersion.name, ModelVersion.version, pairs.c.scope, func.count(),
               func.sum(case((pairs.c.ai == pairs.c.human, 1), else_=0)), func.sum(pairs.c.ai),
               func.sum(pairs.c.human), func.sum(pairs.c.ai * pairs.c.human))
        .join(ModelVersion, ModelVersion.id == pairs.c.version_id)
        .where(ModelVersion.kind == model_kind)
        .group_by(pairs.c.version_id, ModelVersion.name, ModelVersion.version, pairs.c.scope)
        .order_by(pairs.c.version_id, pairs.c.scope).limit(limit)
    ).all()
    out: list[VerifierAgreement] = []
    for version_id, name, version, scope_value, n, agreed, ai_acc, human_acc, both in rows:
        n, agreed, ai_acc, human_acc, both = (int(x or 0) for x in (n, agreed, ai_acc, human_acc, both))
        out.append(VerifierAgreement(
            model_version_id=version_id, verifier=f"{name}:{version}", model_kind=model_kind.value,
            task_kind=task_kind.value, scope=str(scope_value), n=n, agreed=agreed, agreement=_ratio(agreed, n),
            ai_accepts=ai_acc, human_accepts=human_acc, both_accept=both, precision=_ratio(both, ai_acc),
            recall=_ratio(both, human_acc)))
    return out
