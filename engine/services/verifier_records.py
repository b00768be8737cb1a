"""Reading a verifier export (``dataengine export verifier``) back as training examples.

Each JSONL record (contract: docs/architecture.md, "Exports") becomes the question the verifier
is asked at scoring time — MV: the image, the phrase and the judged mask; EV: the image, the
phrase and the boxes of the pair's masks — with the answer it should have given."""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from PIL import Image as PILImage

from engine.domain.exports import ANSWERS
from engine.domain.ground_truth import VERIFIER_TASKS
from engine.domain.masks import MaskError, RleMask, decode_mask, from_coco_segmentation
from engine.domain.vocabulary import HUMAN_SOURCES, VerifierTask
from engine.ports import MaskQuery, PairQuery, VerifierExample
from engine.storage import MediaStore

REQUIRED = ("task", "split", "pair_id", "phrase", "image", "masks", "answer", "target", "label_source")


class RecordError(ValueError):
    """A verifier export that cannot be trained on (missing file, malformed record)."""


class ExampleSet(Sequence[VerifierExample]):
    """The examples of a split, built when they are read: records keep their masks as RLE, the
    image of the last few images read is cached, so memory does not grow with the export."""

    def __init__(self, task: str, records: list[dict[str, Any]], store: MediaStore, images_cached: int = 8) -> None:
        self.task, self.records, self.store = task, records, store
        self._images: OrderedDict[str, PILImage.Image] = OrderedDict()
        self._capacity = images_cached

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> VerifierExample: ...

    @overload
    def __getitem__(self, index: slice) -> list[VerifierExample]: ...

    def __getitem__(self, index: int | slice) -> VerifierExample | list[VerifierExample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        record = self.records[index]
        return VerifierExample(_query(self.task, record, self._image(record)), record["answer"])

    @property
    def queries(self) -> Sequence[MaskQuery | PairQuery]:
        return _Queries(self)

    def _image(self, record: dict[str, Any]) -> PILImage.Image:
        key = str(record["image"]["file_name"])
        if key in self._images:
            self._images.move_to_end(key)
        else:
            image = _open(self.store, key)
            if isinstance(image, str):
                raise RecordError(image)
            self._images[key] = image
            if len(self._images) > self._capacity:
                self._images.popitem(last=False)
        return self._images[key]


class _Queries(Sequence[MaskQuery | PairQuery]):
    def __init__(self, examples: ExampleSet) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    @overload
    def __getitem__(self, index: int) -> MaskQuery | PairQuery: ...
    @overload
    def __getitem__(self, index: slice) -> list[MaskQuery | PairQuery]: ...
    def __getitem__(self, index: int | slice) -> MaskQuery | PairQuery | list[MaskQuery | PairQuery]:
        if isinstance(index, slice):
            return [e.query for e in self.examples[index]]
        return self.examples[index].query


@dataclass
class LoadedSplit:
    records: list[dict[str, Any]]  # usable records, in file order
    examples: ExampleSet  # their examples, built on access
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
    if task == VerifierTask.MV and len(record["masks"]) != 1:
        raise RecordError(f"{where}: an mv record judges exactly one mask, not {len(record['masks'])}")


def load_split(folder: Path, task: str, split: str, store: MediaStore) -> LoadedSplit:
    """The usable records of one split: each distinct image is opened once and each mask parsed
    (not decoded) to check it; records that fail are skipped with the reason."""
    readable: dict[str, str | None] = {}
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for record in read_records(folder, task, split):
        key = str(record["image"].get("file_name"))
        if key not in readable:
            readable[key] = _readable(store, key, int(record["image"]["width"]), int(record["image"]["height"]))
        if readable[key] is not None:
            skipped.append(f"pair {record['pair_id']}: {readable[key]}")
            continue
        try:
            _masks(record)
        except (MaskError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"pair {record['pair_id']}: bad mask: {exc}")
            continue
        records.append(record)
    return LoadedSplit(records, ExampleSet(task, records, store), skipped)


def _readable(store: MediaStore, key: str, width: int, height: int) -> str | None:
    """Why the stored image cannot serve the records (None: it can)."""
    opened = _open(store, key)
    if isinstance(opened, str):
        return opened
    if opened.size != (width, height):
        return f"stored image {key} is {opened.size[0]}x{opened.size[1]}, the export says {width}x{height}"
    return None


def _masks(record: dict[str, Any]) -> list[RleMask]:
    height, width = int(record["image"]["height"]), int(record["image"]["width"])
    return [from_coco_segmentation(m, height, width) for m in record["masks"]]


def _open(store: MediaStore, key: str) -> PILImage.Image | str:
    try:
        with PILImage.open(io.BytesIO(store.open_bytes(key))) as handle:
            return handle.convert("RGB")
    except (OSError, ValueError) as exc:
        return f"cannot read stored image {key}: {exc}"


def _query(task: str, record: dict[str, Any], image: PILImage.Image) -> MaskQuery | PairQuery:
    masks = _masks(record)
    if task == VerifierTask.MV:
        return MaskQuery(image, record["phrase"], decode_mask(masks[0]))
    return PairQuery(image, record["phrase"], [m.bbox for m in masks])


def is_human(record: dict[str, Any]) -> bool:
    return record.get("label_source") in HUMAN_SOURCES
