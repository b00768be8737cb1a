"""Reading a verifier export (``dataengine export verifier``) back as training examples.

Each JSONL record (contract: docs/architecture.md, "Exports") becomes the question the verifier
is asked at scoring time — MV: the image, the phrase and the judged mask; EV: the image, the
phrase and the boxes of the pair's masks — with the answer it should have given."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from engine.domain.exports import ANSWERS, VERIFIER_TASKS
from engine.domain.masks import MaskError, decode_mask, from_coco_segmentation
from engine.ports import MaskQuery, PairQuery, VerifierExample
from engine.storage import MediaStore

REQUIRED = ("task", "split", "pair_id", "phrase", "image", "masks", "answer", "target", "label_source")
HUMAN_SOURCES = ("human", "label_studio")


class RecordError(ValueError):
    """A verifier export that cannot be trained on (missing file, malformed record)."""


@dataclass(frozen=True)
class Loaded:
    record: dict[str, Any]
    example: VerifierExample


@dataclass
class LoadedSplit:
    examples: list[Loaded]
    skipped: list[str]  # per record that could not be used: why


def read_records(folder: Path, task: str, split: str) -> Iterator[dict[str, Any]]:
    """The records of ``<folder>/<task>.<split>.jsonl``, checked against the contract."""
    if task not in VERIFIER_TASKS:
        raise RecordError(f"unknown verifier task {task!r}; use mv or ev")
    path = folder / f"{task}.{split}.jsonl"
    if not path.is_file():
        raise RecordError(f"{path} is missing: is {folder} a verifier export?")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise RecordError(f"{path.name} line {number}: not JSON ({exc})") from None
            _check(record, task, f"{path.name} line {number}")
            yield record


def _check(record: Any, task: str, where: str) -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise RecordError(f"{where}: missing {', '.join(missing)}")
    if record["task"] != task:
        raise RecordError(f"{where}: task {record['task']!r} in the {task} file")
    if record["answer"] not in ANSWERS[task]:
        raise RecordError(f"{where}: {record['answer']!r} is not a {task} answer ({', '.join(ANSWERS[task])})")
    if task == "mv" and len(record["masks"]) != 1:
        raise RecordError(f"{where}: an mv record judges exactly one mask, not {len(record['masks'])}")


def load_split(folder: Path, task: str, split: str, store: MediaStore) -> LoadedSplit:
    """Examples of one split with their images; records whose image or masks cannot be read are
    skipped with the reason (images are read once each)."""
    images: dict[str, PILImage.Image | str] = {}
    out = LoadedSplit([], [])
    for record in read_records(folder, task, split):
        key = str(record["image"].get("file_name"))
        if key not in images:
            images[key] = _open(store, key)
        image = images[key]
        if isinstance(image, str):
            out.skipped.append(f"pair {record['pair_id']}: {image}")
            continue
        try:
            query = _query(task, record, image)
        except (MaskError, ValueError, KeyError, TypeError) as exc:
            out.skipped.append(f"pair {record['pair_id']}: bad mask: {exc}")
            continue
        out.examples.append(Loaded(record, VerifierExample(query, record["answer"])))
    return out


def _open(store: MediaStore, key: str) -> PILImage.Image | str:
    try:
        with PILImage.open(io.BytesIO(store.open_bytes(key))) as handle:
            return handle.convert("RGB")
    except (OSError, ValueError) as exc:
        return f"cannot read stored image {key}: {exc}"


def _query(task: str, record: dict[str, Any], image: PILImage.Image) -> MaskQuery | PairQuery:
    masks = [from_coco_segmentation(m, image.height, image.width) for m in record["masks"]]
    if task == "mv":
        return MaskQuery(image, record["phrase"], decode_mask(masks[0]))
    return PairQuery(image, record["phrase"], [m.bbox for m in masks])


def is_human(record: dict[str, Any]) -> bool:
    return record.get("label_source") in HUMAN_SOURCES
