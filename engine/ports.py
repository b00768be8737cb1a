"""Ports: the small interfaces the engine needs from the outside world.

Model adapters in ``annotators/`` implement the model ports; the engine sees only these
Protocols, PIL images, numpy arrays and plain dataclasses (no torch). The web layer reaches job
running and the click-to-segment model only through :class:`JobRunner` and :class:`ModelProvider`
(implemented in ``pipelines/``, wired in the app's composition root, ``dataengine/serve.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

if TYPE_CHECKING:
    from engine.services.mine import JobPlan


class TaskQueue(Protocol):
    """Runs a named task on a batch of ids: in this process, or on a Celery worker.

    Enqueue only after the transaction that created the ids has committed.
    """

    def enqueue(self, task: str, args: list[Any], *, queue: str) -> Any: ...


@dataclass(frozen=True)
class ModelStamp:
    """Who made an output: registered as a model version and referenced by every output."""

    kind: str  # a ModelKind value
    name: str  # hub id, local path or builder name
    version: str  # checkpoint hash or revision
    params: dict[str, Any] = field(default_factory=dict)  # what changes the output (thresholds, prompt)
    uri: str | None = None
    random_weights: bool = False


class Captioner(Protocol):
    stamp: ModelStamp

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image."""


class PhraseParser(Protocol):
    stamp: ModelStamp

    def parse(self, captions: Sequence[str]) -> list[list[str] | str]:
        """Per caption: the noun phrases found, or the raw model answer (a str) for the engine
        to repair into a list (LLM parsers)."""


@dataclass(frozen=True)
class Proposal:
    """One candidate mask for a phrase, at the image's size."""

    mask: NDArray[np.bool_]  # bool H×W
    score: float


class MaskProposer(Protocol):
    stamp: ModelStamp

    def propose(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Proposal]]:
        """Candidate masks per phrase for one image (the image is encoded once for all)."""


@dataclass(frozen=True)
class MaskQuery:
    """One mask to verify: is it a correct instance of the phrase?"""

    image: Image.Image
    phrase: str
    mask: NDArray[np.bool_]  # bool H×W at the image's size


@dataclass(frozen=True)
class PairQuery:
    """One (image, phrase) to check for exhaustivity, given the boxes of its current masks."""

    image: Image.Image
    phrase: str
    boxes: Sequence[tuple[float, float, float, float]]  # absolute x, y, w, h


class MaskVerifier(Protocol):
    stamp: ModelStamp
    labels: Sequence[str]  # the choices, e.g. accept, accept_as_text, flag_label, whole_image, reject

    def verify_masks(self, queries: Sequence[MaskQuery]) -> list[dict[str, float]]:
        """Per query: probability of each label (softmax over the choice tokens)."""


class ExhaustivityVerifier(Protocol):
    stamp: ModelStamp
    labels: Sequence[str]  # accept, reject_missing, reject_unseparated, flag_label, whole_image, ungroundable

    def verify_pairs(self, queries: Sequence[PairQuery]) -> list[dict[str, float]]:
        """Per query: probability of each label."""


class PhraseEmbedder(Protocol):
    stamp: ModelStamp

    def embed(self, phrases: Sequence[str]) -> NDArray[np.floating[Any]]:
        """One L2-normalised vector per phrase (n × d)."""


class ImageEmbedder(Protocol):
    """One vector per image for similarity search (pooled SAM 3 vision features, or a dedicated
    image model); stamped as its own model version."""

    stamp: ModelStamp

    def embed_images(self, images: Sequence[Image.Image]) -> NDArray[np.floating[Any]]:
        """One L2-normalised vector per image (n × d)."""


@runtime_checkable
class PooledEmbeddings(Protocol):
    """A proposer that can also give the image embedding of the image it last encoded (SAM 3: its vision
    features pooled), stamped exactly as the image embedder of the same checkpoint stamps its vectors, so the
    propose stage can store them and spare a separate embed step."""

    embedding_stamp: ModelStamp

    def pooled_embedding(self, image: Image.Image) -> NDArray[np.floating[Any]] | None:
        """The embedding of ``image`` if it is the image last encoded (the same object), else None; runs
        no encoder."""


class ExemplarProposer(Protocol):
    """SAM 3 with a phrase plus exemplar boxes on one image (its vision features cached by key)."""

    stamp: ModelStamp

    def propose_with_exemplars(self, key: str, image: Image.Image, phrase: str,
                               boxes: Sequence[tuple[float, float, float, float]],
                               labels: Sequence[int]) -> list[Proposal]:
        """Every instance like the positive boxes (and unlike the negative ones), masks at the image's size."""


class ExemplarRunner(Protocol):
    """Runs exemplar requests (committed as queued) off the web process: the gpu queue, or a thread of
    this process in embedded mode. The web process never loads SAM 3 for them."""

    def submit(self, request_id: int) -> None:
        """Hand the request over; returns at once. Raises JobNotEnqueued when it cannot be handed over."""


class ConceptSuggester(Protocol):
    stamp: ModelStamp

    def suggest(self, phrases: Sequence[str]) -> list[list[str] | str]:
        """Per phrase: visually similar but different concepts (or the raw answer to repair)."""


@dataclass(frozen=True)
class ClickMask:
    """The mask for one set of clicks, at the image's original size."""

    mask: NDArray[np.bool_]  # bool H×W
    score: float  # the model's predicted IoU


class PointSegmenter(Protocol):
    """Click to segment: the image is embedded once per key (cached), each click only decodes."""

    stamp: ModelStamp

    def segment(self, image_key: str, load_image: Callable[[], Image.Image],
                points: Sequence[tuple[float, float, int]],
                box: tuple[float, float, float, float] | None = None) -> ClickMask:
        """The mask for positive (label 1) and negative (label 0) points (x, y in the original
        image's pixels) and an optional box (x0, y0, x1, y1). ``load_image`` is called only when
        the key's embedding is not cached."""

    def cache_info(self) -> dict[str, int]:
        """Embedding cache counters: hits, misses, size, capacity."""


@dataclass(frozen=True)
class VerifierExample:
    """One training example for a verifier: the question (as the verifier sees it at scoring time)
    and the choice label that is right for it."""

    query: MaskQuery | PairQuery
    answer: str  # one of the verifier's labels


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 50
    learning_rate: float = 1e-4
    batch_size: int = 4
    lora_rank: int | None = None  # None: LoRA only for large models; 0: full fine-tune; r > 0: LoRA rank r
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class TrainResult:
    stamp: ModelStamp  # the saved checkpoint as the verifier adapters will stamp it when they load it
    output_dir: str
    losses: list[float]  # training loss per step
    val_probabilities: list[dict[str, float]]  # the trained model's answers on the validation queries
    trainable_params: int
    total_params: int
    mode: str  # "full" or "lora(r=…)"


class VerifierTrainer(Protocol):
    """Fine-tunes a verifier checkpoint on examples, saves it, and scores validation queries with it."""

    def train(self, task: str, base_ref: str, train: Sequence[VerifierExample],
              val: Sequence[MaskQuery | PairQuery], config: TrainConfig, output_root: str) -> TrainResult:
        """``task`` "mv" or "ev"; the checkpoint is saved into a new folder under ``output_root``
        (named by its weights' hash), written atomically."""


# ----------------------------------------------------------------------- what the web layer needs
@dataclass(frozen=True)
class JobRequest:
    """A mining job to list (create, or reopen by name) and start: its source already checked
    (engine/sources/roots.py) or the one an existing job was created with."""

    source: str
    kind: str  # a SourceKind value
    name: str | None = None
    images_dir: str | None = None
    until: str | None = None  # the last stage to run (engine/domain/stages.py); None: all
    model_profile: str | None = None  # None: the server's
    retry_failed: bool = False  # put the job's failed items back to pending
    prioritise_failures: bool = False  # take the pool most-like-recent-failures first (engine/services/failures.py)


@dataclass(frozen=True)
class RunnerState:
    """Where this process's runner is with a job it started (embedded mode only)."""

    state: str  # queued, running, finished or failed
    error: str | None
    since: dt.datetime


class JobRefused(ValueError):
    """The job cannot be listed as asked (422)."""


class JobNotEnqueued(RuntimeError):
    """The job is listed but its work could not be handed to the broker (503: try again)."""


class JobRunner(Protocol):
    """Lists a mining job (committed, so the caller has its id) and runs it without the caller
    waiting: on Celery workers, or in a background thread of this process (embedded mode)."""

    @property
    def mode(self) -> str:
        """How jobs run: "in-process" (a thread of this process) or "celery" (workers)."""

    def start(self, request: JobRequest) -> JobPlan:
        """The listed job; raises JobConflict (the name belongs to another source), SourceError,
        JobRefused or JobNotEnqueued."""

    def state(self, job_id: int) -> RunnerState | None:
        """This process's runner state of the job (None: not started here, or not embedded)."""


class ModelProvider(Protocol):
    """The models the web app runs itself, each built on first use and kept for the process."""

    def segmenter(self) -> PointSegmenter: ...


class TrackRunner(Protocol):
    """Runs the video page's tracker requests (``track_requests`` rows, committed as queued) off the
    web process: on a worker's gpu queue, or in a background thread of this process (embedded mode).
    The web process never loads a video model itself."""

    def submit(self, request_id: int) -> None:
        """Hand the request over; returns at once. Raises JobNotEnqueued when it cannot be handed over."""


# --- video (SAM 3 on video: masklet proposals, the video page's tracker) ---------------------------


class FrameSource(Protocol):
    """The sampled frames of one video, read one at a time (never all in memory)."""

    @property
    def frame_count(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""

    def frame(self, index: int) -> Image.Image:
        """Frame ``index`` (0-based among the sampled frames), RGB."""


@dataclass(frozen=True)
class TrackedObject:
    """One object on one frame: ``object_id`` names the masklet across the video's frames."""

    object_id: int
    mask: NDArray[np.bool_]  # bool H×W at the frame's size
    score: float
    phrase_index: int = 0  # which of the phrases prompted it (the proposer); 0 for a click


@dataclass(frozen=True)
class FrameObjects:
    """What a video model found on one frame."""

    frame_index: int
    objects: list[TrackedObject]


class MaskletProposer(Protocol):
    """SAM 3 on video: every phrase of a video as a text prompt of one session (vision features shared),
    propagated over the frames."""

    stamp: ModelStamp

    def propose_video(self, frames: FrameSource, phrases: Sequence[str]) -> Iterator[FrameObjects]:
        """Per sampled frame, in frame order: the objects found for the phrases. Object ids are stable
        over the whole video (windows are stitched). Memory does not grow with the video's length."""


class VideoTracker(Protocol):
    """Click to segment on a video frame, then propagate (SAM 3 tracker on video)."""

    stamp: ModelStamp

    def track(self, frames: FrameSource, frame_index: int, points: Sequence[tuple[float, float, int]],
              *, window: tuple[int, int]) -> Iterator[FrameObjects]:
        """The clicked frame first (its mask at once), then the frames after it, then those before it,
        within ``window`` = (first, last) sampled frame, inclusive. Points: (x, y, label) in the
        frame's pixels, label 1 positive / 0 negative; one object, id 1."""
