"""The one vocabulary of the data engine: every kind, state, role and label word, as StrEnums.

The ORM stores these (``engine/db/models.py`` imports them), the decision model reasons in them, the
services, model adapters and routers import them from here, and the API sends the label words of each
task kind to the queue page (``LABELS``). Members are ``str``: they compare equal to their values, so
rows, JSON and form input need no conversion.

Pure: no imports of ours.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ML_ENGINEER = "ml_engineer"


class ModelKind(enum.StrEnum):
    SOURCE = "source"  # data that came with the source (alt-text, dataset annotations)
    CAPTIONER = "captioner"
    PARSER = "parser"
    PROPOSER = "proposer"
    MASK_VERIFIER = "mask_verifier"
    EXHAUSTIVITY_VERIFIER = "exhaustivity_verifier"
    TRACKER = "tracker"
    EXTERNAL = "external"  # predictions imported from another model


class JobStatus(enum.StrEnum):
    LISTING = "listing"
    RUNNING = "running"
    DONE = "done"


class ItemStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"  # a new image was stored
    DUPLICATE = "duplicate"  # byte-identical to a kept image (after normalisation)
    NEAR_DUPLICATE = "near_duplicate"  # perceptual-hash neighbour of a kept image
    FAILED = "failed"


class StageStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Polarity(enum.StrEnum):
    UNKNOWN = "unknown"
    POSITIVE = "positive"
    NEGATIVE = "negative"


class PairOrigin(enum.StrEnum):
    CAPTION = "caption"  # noun phrase parsed from a caption
    SOURCE_ANNOTATION = "source_annotation"  # category of an annotation that came with the source
    HARD_NEGATIVE = "hard_negative"
    EXTERNAL = "external"  # predictions imported from another model
    MANUAL = "manual"


class VerdictKind(enum.StrEnum):
    MASK = "mask_verification"
    EXHAUSTIVITY = "exhaustivity"
    CORRECTION = "correction"


class VerdictSource(enum.StrEnum):
    AI = "ai"
    HUMAN = "human"
    LABEL_STUDIO = "label_studio"


class TaskKind(enum.StrEnum):
    VERIFY_MASK = "verify_mask"
    CHECK_EXHAUSTIVITY = "check_exhaustivity"
    CORRECT = "correct"


class MaskState(enum.StrEnum):
    CANDIDATE = "candidate"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


#: the sources of people's verdicts (in our queue, or in Label Studio through the bridge)
HUMAN_SOURCES = (VerdictSource.HUMAN, VerdictSource.LABEL_STUDIO)


class Decider(enum.StrEnum):
    AI = "ai"
    HUMAN = "human"


class RouteAction(enum.StrEnum):
    AUTO_ACCEPT = "auto_accept"
    AUTO_REJECT = "auto_reject"
    HUMAN = "human"
    KEEP_HUMAN = "keep_human"


class TaskState(enum.StrEnum):
    OPEN = "open"
    LEASED = "leased"
    DONE = "done"
    CANCELLED = "cancelled"


class BridgeState(enum.StrEnum):
    PUSHED = "pushed"  # in Label Studio, waiting for an annotation
    DONE = "done"  # an annotation came back and was stored as a verdict
    FAILED = "failed"  # the latest annotation could not be used (the error says why)


class SourceKind(enum.StrEnum):
    """Where a mining job's items come from (engine/sources)."""

    FOLDER = "folder"  # a directory of image files
    URLS = "urls"  # a text file of image URLs
    WEBDATASET = "webdataset"  # WebDataset tar shards
    COCO = "coco"  # a COCO JSON with its images
    FRAMES = "frames"  # a directory of frame folders: one folder = one video, frames ordered by name


class MediaKind(enum.StrEnum):
    """What a job mines and a pair is about: a still image or a video (job option ``media``)."""

    IMAGE = "image"
    VIDEO = "video"


class TrackState(enum.StrEnum):
    """A tracker request from the video page (a click on a frame → a masklet, propagated on a worker)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class LabelSource(enum.StrEnum):
    """Whose decisions count as ground truth (engine/domain/ground_truth.py)."""

    HUMAN = "human"
    AI = "ai"
    BOTH = "both"


class VerifierTask(enum.StrEnum):
    """The AI verifiers: the mask verifier and the exhaustivity verifier."""

    MV = "mv"  # answers the human task kind verify_mask
    EV = "ev"  # answers the human task kind check_exhaustivity


class MaskLabel(enum.StrEnum):
    """A person's verdict on one candidate mask (task kind ``verify_mask``)."""

    ACCEPT = "accept"
    REJECT = "reject"
    UNGROUNDABLE = "ungroundable"


class PairLabel(enum.StrEnum):
    """A person's verdict on a pair's exhaustivity (task kind ``check_exhaustivity``)."""

    COMPLETE = "complete"
    MISSING = "missing"
    NOT_PRESENT = "not_present"


class CorrectionLabel(enum.StrEnum):
    """A person's correction of a pair's masks (task kind ``correct``)."""

    CORRECTED = "corrected"
    NOT_PRESENT = "not_present"


class RouteMaskLabel(enum.StrEnum):
    """The router's automatic decision on a mask."""

    ACCEPT = "accept"
    REJECT = "reject"


class RoutePairLabel(enum.StrEnum):
    """The router's automatic decision on a pair."""

    EXHAUSTIVE = "exhaustive"
    NEGATIVE = "negative"


class MaskVerifierAnswer(enum.StrEnum):
    """The mask verifier's choices (annotators/verifiers.py ``MV_CHOICES``, in that order)."""

    ACCEPT = "accept"
    ACCEPT_AS_TEXT = "accept_as_text"
    FLAG_LABEL = "flag_label"
    WHOLE_IMAGE = "whole_image"
    REJECT = "reject"


class ExhaustivityVerifierAnswer(enum.StrEnum):
    """The exhaustivity verifier's choices (annotators/verifiers.py ``EV_CHOICES``, in that order)."""

    ACCEPT = "accept"
    REJECT_MISSING = "reject_missing"
    REJECT_UNSEPARATED = "reject_unseparated"
    FLAG_LABEL = "flag_label"
    WHOLE_IMAGE = "whole_image"
    UNGROUNDABLE = "ungroundable"


#: the label words a person may give, per task kind, in the order the queue page shows them
LABELS: dict[TaskKind, tuple[MaskLabel | PairLabel | CorrectionLabel, ...]] = {
    TaskKind.VERIFY_MASK: tuple(MaskLabel),
    TaskKind.CHECK_EXHAUSTIVITY: tuple(PairLabel),
    TaskKind.CORRECT: tuple(CorrectionLabel),
}

#: the kind of verdict a task of each kind records (the queue's verdicts; `dataengine check` holds them to it)
VERDICT_KIND: dict[TaskKind, VerdictKind] = {
    TaskKind.VERIFY_MASK: VerdictKind.MASK,
    TaskKind.CHECK_EXHAUSTIVITY: VerdictKind.EXHAUSTIVITY,
    TaskKind.CORRECT: VerdictKind.CORRECTION,
}

#: the keyboard key of each label word, per task kind (the API sends them with each task; the page's own
#: keys — navigation, zoom, crowd, digits selecting masks — are not among them)
LABEL_KEYS: dict[TaskKind, dict[str, str]] = {
    TaskKind.VERIFY_MASK: {MaskLabel.ACCEPT: "a", MaskLabel.REJECT: "r", MaskLabel.UNGROUNDABLE: "u"},
    TaskKind.CHECK_EXHAUSTIVITY: {PairLabel.COMPLETE: "c", PairLabel.MISSING: "m", PairLabel.NOT_PRESENT: "n"},
    TaskKind.CORRECT: {CorrectionLabel.CORRECTED: "s", CorrectionLabel.NOT_PRESENT: "n"},
}
