"""SQLAlchemy 2.0 typed models for the whole loop.

mining job ─< job item >─ image ─< caption
                           │
                           └─< image–concept pair >─ concept
                                  │
                                  ├─< candidate mask ─< verdict
                                  ├─< verdict (pair level: exhaustivity, presence)
                                  └─< human task
Every machine output (caption, pair from a parser, mask, AI verdict) references the model version
that produced it. Relations are ``lazy="raise"``: load explicitly what you need.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db.base import Base, portable_enum, utcnow
from engine.domain.vocabulary import (  # the vocabulary lives in the domain; the ORM stores it
    BridgeState,
    Decider,
    ItemStatus,
    JobStatus,
    MaskState,
    ModelKind,
    PairOrigin,
    Polarity,
    Role,
    RouteAction,
    StageStatus,
    TaskKind,
    TaskState,
    VerdictKind,
    VerdictSource,
)

_enum = portable_enum


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # task kinds this person is assigned in the queue (None: every kind their role allows)
    task_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuthSession(Base):
    """A browser session: the cookie carries a random token, the database keeps its sha256 and the
    CSRF token that state-changing requests must echo in a header."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()


class ApiToken(Base):
    """A bearer token for scripts; only its sha256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class LoginAttempt(Base):
    """Failed and successful log-ins, for rate limiting per user name and per client address."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_created_at", "username", "created_at"),
        Index("ix_login_attempts_ip_created_at", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """Registry of everything that produces labels: models, parsers, and the source itself."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("kind", "name", "version", "params_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(_enum(ModelKind, "model_kind"))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str | None] = mapped_column(Text)
    random_weights: Mapped[bool] = mapped_column(Boolean, default=False)
    is_promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    training_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_snapshots.id", ondelete="SET NULL")
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DatabaseIdentity(Base):
    """One row: a random id made when the schema was created. Every task message carries the id of
    the database its job was planned in; a worker whose database has another id refuses the task
    (pipelines/execution.py) instead of working on another database's rows of the same ids."""

    __tablename__ = "database_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MiningJob(Base):
    __tablename__ = "mining_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    source_uri: Mapped[str] = mapped_column(Text)
    source_kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class JobItem(Base):
    """One item of a source (a file, a URL, a tar sample, a COCO image) and its mining outcome."""

    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "key"),
        Index("ix_job_items_job_id_status", "job_id", "status"),
        Index("ix_job_items_retry_at", "retry_at", postgresql_where=text("retry_at IS NOT NULL"),
              sqlite_where=text("retry_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("mining_jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    locator: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus, "item_status"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # how many times a batch holding this item began (a worker that dies mid-batch leaves it
    # above the finished attempts: pipelines/execution.py splits and finally fails such items)
    starts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispatched_at: Mapped[dt.datetime | None] = mapped_column()  # last handed to the broker
    retry_at: Mapped[dt.datetime | None] = mapped_column()  # a transient failure: retried by the healer
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="SET NULL"))  # a video job's item
    duplicate_distance: Mapped[int | None] = mapped_column(Integer)
    # failure mining (``mine --prioritise-failures``): the item's image's similarity to recent model failures
    # and its place in the order the model stages took the pool in (0 first); None when not prioritised
    failure_score: Mapped[float | None] = mapped_column(Float)
    priority_rank: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column()

    image: Mapped[Image | None] = relationship(lazy="raise")


class Image(Base):
    """A stored, validated, upright image, content-addressed by the sha256 of its stored bytes."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    phash: Mapped[int] = mapped_column(BigInteger)
    # The 64-bit pHash cut into four 16-bit bands, indexed: the near-duplicate search asks for
    # images that share a band (within a small radius) and then checks the full distance.
    phash_b0: Mapped[int] = mapped_column(Integer, index=True)
    phash_b1: Mapped[int] = mapped_column(Integer, index=True)
    phash_b2: Mapped[int] = mapped_column(Integer, index=True)
    phash_b3: Mapped[int] = mapped_column(Integer, index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    byte_size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(255))
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    first_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("mining_jobs.id", ondelete="SET NULL")
    )
    source_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StageItem(Base):
    """Per-image status of a model stage (caption, parse, propose, …) in a job: which model
    version did it, how it ended, why it failed, what it dropped (``detail``)."""

    __tablename__ = "stage_items"
    __table_args__ = (
        UniqueConstraint("job_id", "stage", "subject_id"),
        Index("ix_stage_items_job_id_stage_status", "job_id", "stage", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("mining_jobs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(Integer)  # the image id
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    status: Mapped[StageStatus] = mapped_column(_enum(StageStatus, "stage_status"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seconds: Mapped[float | None] = mapped_column(Float)
    starts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # as JobItem.starts
    dispatched_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Caption(Base):
    """A caption of an image, or of a video (its captioner ran on a few keyframes)."""

    __tablename__ = "captions"
    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", "text_sha256"),
        UniqueConstraint("video_id", "model_version_id", "text_sha256"),
        CheckConstraint("(image_id IS NULL) <> (video_id IS NULL)", name="one_medium"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Concept(Base):
    """A unique normalised noun phrase."""

    __tablename__ = "concepts"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(512), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ImageConcept(Base):
    """A (medium, noun phrase) pair: the unit of work of every later stage. The medium is an image or
    a video (exactly one of ``image_id`` / ``video_id``); a video pair's masks are masklets."""

    __tablename__ = "image_concepts"
    __table_args__ = (
        UniqueConstraint("image_id", "concept_id"),
        UniqueConstraint("video_id", "concept_id"),
        CheckConstraint("(image_id IS NULL) <> (video_id IS NULL)", name="one_medium"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"), index=True)
    polarity: Mapped[Polarity] = mapped_column(_enum(Polarity, "polarity"))
    origin: Mapped[PairOrigin] = mapped_column(_enum(PairOrigin, "pair_origin"))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    caption_id: Mapped[int | None] = mapped_column(ForeignKey("captions.id", ondelete="SET NULL"))
    is_exhaustive: Mapped[bool | None] = mapped_column(Boolean)
    decided_by: Mapped[Decider | None] = mapped_column(_enum(Decider, "decider"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    concept: Mapped[Concept] = relationship(lazy="raise")


class Mask(Base):
    """A candidate mask for a pair: COCO compressed RLE with box, area and score."""

    __tablename__ = "masks"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("image_concepts.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    rle_counts: Mapped[str] = mapped_column(Text)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    bbox_x: Mapped[float] = mapped_column(Float)
    bbox_y: Mapped[float] = mapped_column(Float)
    bbox_w: Mapped[float] = mapped_column(Float)
    bbox_h: Mapped[float] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    is_crowd: Mapped[bool] = mapped_column(Boolean, default=False)
    # a masklet (a video pair's mask): the sampled frames it spans; its per-frame masks are
    # MaskletFrame rows and the columns above describe its largest frame. NULL for an image's mask.
    first_frame: Mapped[int | None] = mapped_column(Integer)
    last_frame: Mapped[int | None] = mapped_column(Integer)
    # what prompted a mask a person made with a model (an exemplar request): {"exemplars": {"request_id",
    # "boxes", "labels"}, "model_version_id"}; NULL for a proposed mask
    prompt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[MaskState] = mapped_column(_enum(MaskState, "mask_state"), default=MaskState.CANDIDATE,
                                             server_default=MaskState.CANDIDATE.value)
    decided_by: Mapped[Decider | None] = mapped_column(_enum(Decider, "decider"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HumanTask(Base):
    __tablename__ = "human_tasks"
    __table_args__ = (
        Index(
            "ix_human_tasks_open_queue",
            "kind",
            text("priority DESC"),
            "id",
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        # annotators assigned every kind: the queue's order across kinds
        Index(
            "ix_human_tasks_open_order",
            text("priority DESC"),
            "id",
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        Index("ix_human_tasks_state_lease_expires_at", "state", "lease_expires_at"),
        # the lease cap: a person's live leases, counted per lease (0007)
        Index("ix_human_tasks_leased_owner", "lease_owner_id",
              postgresql_where=text("state = 'leased'"), sqlite_where=text("state = 'leased'")),
        # a gold item's copies, made ahead of time and refilled as used (0007)
        Index("ix_human_tasks_gold_item_id_state", "gold_item_id", "state",
              postgresql_where=text("gold_item_id IS NOT NULL"), sqlite_where=text("gold_item_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind, "task_kind"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("image_concepts.id", ondelete="CASCADE"), index=True)
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="CASCADE"))
    state: Mapped[TaskState] = mapped_column(_enum(TaskState, "task_state"))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    lease_owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gold_item_id: Mapped[int | None] = mapped_column(ForeignKey("gold_items.id", ondelete="SET NULL"))
    # multi-review: how many different people must judge the task, and how many have
    reviews_required: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    reviews_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskSkip(Base):
    """An annotator skipped a task: it goes back to the queue for everyone else."""

    __tablename__ = "task_skips"
    __table_args__ = (UniqueConstraint("user_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GoldItem(Base):
    """A honeypot: an item with a known answer. Mixed into annotators' queues as a fresh leased
    task each time (never twice to one person); their answers measure their accuracy and never
    change the item's labels."""

    __tablename__ = "gold_items"
    __table_args__ = (Index("ix_gold_items_active_kind", "is_active", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind, "task_kind"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("image_concepts.id", ondelete="CASCADE"), index=True)
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="CASCADE"))
    answer: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Verdict(Base):
    """A judgement by a person or a model version. Append-only: the database refuses updates
    and deletes (triggers in the migration); a correction is a new row that supersedes."""

    __tablename__ = "verdicts"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NOT NULL) OR (model_version_id IS NOT NULL)", name="has_author"
        ),
        Index("ix_verdicts_pair_id_kind", "pair_id", "kind"),
        # the queue: "not judged by this person yet" (every lease) and the verdicts of a task
        Index("ix_verdicts_user_id_pair_id", "user_id", "pair_id",
              postgresql_where=text("user_id IS NOT NULL"), sqlite_where=text("user_id IS NOT NULL")),
        Index("ix_verdicts_task_id", "task_id",
              postgresql_where=text("task_id IS NOT NULL"), sqlite_where=text("task_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    kind: Mapped[VerdictKind] = mapped_column(_enum(VerdictKind, "verdict_kind"))
    source: Mapped[VerdictSource] = mapped_column(_enum(VerdictSource, "verdict_source"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("image_concepts.id", ondelete="CASCADE"))
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    label: Mapped[str] = mapped_column(String(64))
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSON)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id", ondelete="RESTRICT"))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RouteRecord(Base):
    """The stored record of one routing decision (engine.domain.routing.RouteDecision): why a mask or a
    pair went where it went (append-only log; the latest per target counts)."""

    __tablename__ = "route_decisions"
    __table_args__ = (Index("ix_route_decisions_pair_id_mask_id", "pair_id", "mask_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("image_concepts.id", ondelete="CASCADE"))
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="CASCADE"))
    action: Mapped[RouteAction] = mapped_column(_enum(RouteAction, "route_action"))
    task_kind: Mapped[TaskKind | None] = mapped_column(_enum(TaskKind, "task_kind"))
    label: Mapped[str | None] = mapped_column(String(64))
    probability: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    audit: Mapped[bool] = mapped_column(Boolean, default=False)
    verifier_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Calibration(Base):
    """Calibrated probabilities and routing thresholds of one verifier version for one task kind."""

    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_model_version_id_task_kind", "model_version_id", "task_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    task_kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind, "task_kind"))
    # "all", or for exhaustivity "with_masks" / "presence" (pairs with no surviving mask, where
    # EV's answer decides whether the phrase is there at all)
    scope: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    method: Mapped[str] = mapped_column(String(32))
    calibrator: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    target_precision: Mapped[float] = mapped_column(Float)
    accept_threshold: Mapped[float | None] = mapped_column(Float)
    reject_threshold: Mapped[float | None] = mapped_column(Float)
    n_verdicts: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DatasetSnapshot(Base):
    """An immutable export: filters, manifest with file hashes, who made it."""

    __tablename__ = "dataset_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    format: Mapped[str] = mapped_column(String(32))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LabelStudioTask(Base):
    """A task of ours pushed to a Label Studio server: its task id there. The task is leased to the
    bridge user while it is there, so our own queue does not hand it out."""

    __tablename__ = "label_studio_tasks"
    __table_args__ = (UniqueConstraint("server", "ls_task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server: Mapped[str] = mapped_column(String(255))  # the server's base URL, normalised
    project_id: Mapped[int] = mapped_column(Integer)
    ls_task_id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"), index=True)
    state: Mapped[BridgeState] = mapped_column(_enum(BridgeState, "bridge_state"))
    error: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LabelStudioAnnotation(Base):
    """One version (annotation id, its updated_at) of a Label Studio annotation that was pulled:
    the verdict it became, or why it could not become one. A version is handled once."""

    __tablename__ = "label_studio_annotations"
    __table_args__ = (UniqueConstraint("link_id", "annotation_id", "ls_updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("label_studio_tasks.id", ondelete="CASCADE"))
    annotation_id: Mapped[int] = mapped_column(Integer)
    ls_updated_at: Mapped[str] = mapped_column(String(64))
    ls_user: Mapped[str | None] = mapped_column(String(255))
    verdict_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id", ondelete="CASCADE"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PredictionImage(Base):
    """An image an imported predictions version (kind ``external``) ran on: the images of its
    rows and those the import named (``--images``, ``--job``: it ran there and found nothing). The
    version is scored on every instance-exhaustive ground-truth pair of these images."""

    __tablename__ = "prediction_images"
    __table_args__ = (UniqueConstraint("model_version_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# the video tables (engine/db/video.py) register on the same metadata; re-exported for the ORM's users
from engine.db.embeddings import ImageEmbedding as ImageEmbedding  # noqa: E402
from engine.db.exemplars import ExemplarRequest as ExemplarRequest  # noqa: E402
from engine.db.video import MaskletFrame as MaskletFrame  # noqa: E402
from engine.db.video import TrackFrame as TrackFrame  # noqa: E402
from engine.db.video import TrackRequest as TrackRequest  # noqa: E402
from engine.db.video import Video as Video  # noqa: E402
from engine.db.video import VideoFrame as VideoFrame  # noqa: E402
