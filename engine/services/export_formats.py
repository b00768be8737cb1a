"""The three export formats, each written in one pass over rows ordered by image (both splits at once).

- ``coco``: ``instances_{train,val}.json`` — COCO instance segmentation: one category per concept
  (id = concept id), compressed RLE, absolute ``[x, y, w, h]`` boxes; each image lists the concepts
  known to be absent (``neg_category_ids``) and the present ones whose masks may be incomplete
  (``not_exhaustive_category_ids``), as LVIS does.
- ``saco``: ``saco_{train,val}.json`` — SA-Co: one ``images`` entry per (image, phrase) pair with
  ``text_input`` and the exhaustivity flags, normalised boxes and areas; a negative is an entry
  without annotations.
- ``verifier``: ``{mv,ev}.{train,val}.jsonl`` — one training example per line (contract in
  docs/architecture.md, "Exports").
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, String, and_, or_, select, type_coerce

from engine.db.models import Concept, Image, ImageConcept, Mask
from engine.domain.exports import SPLITS, saco_area, saco_box, saco_flags, split_of
from engine.domain.ground_truth import instance_exhaustive
from engine.services.export_rows import (
    ExportError,
    ExportFilters,
    HashingWriter,
    JsonArray,
    Progress,
    Stats,
    dumps,
    image_conditions,
    mask_conditions,
    pair_conditions,
    pair_trust,
    stream,
    stream_batches,
    tick,
)
from engine.services.export_verifier import write_verifier


# ------------------------------------------------------------------------------ COCO, SA-Co
def _label_rows(filters: ExportFilters) -> Any:
    """Every exported pair with its exported masks, ordered by (image, concept, mask): the ground
    truth under the label source (engine/domain/ground_truth.py) narrowed by the filters. A
    negative comes once with the mask columns NULL; an exhaustive or partial pair comes once per
    ground-truth mask (a positive pair without one is not exported). Images are joined only to
    filter them (their columns come from :func:`_image_rows`: narrower rows are faster to fetch)."""
    trust = pair_trust(filters)
    stmt = (
        select(ImageConcept.image_id, ImageConcept.id, ImageConcept.concept_id, Concept.text,
               ImageConcept.model_version_id, trust.negative.label("negative"), trust.exhaustive.label("exhaustive"),
               Mask.id, Mask.rle_counts, Mask.height, Mask.width, Mask.bbox_x, Mask.bbox_y, Mask.bbox_w,
               Mask.bbox_h, Mask.area, Mask.is_crowd, Mask.model_version_id, type_coerce(Mask.decided_by, String))
        .select_from(ImageConcept).join(Concept, Concept.id == ImageConcept.concept_id))
    if image_conditions(filters):
        stmt = stmt.join(Image, Image.id == ImageConcept.image_id)
    return (stmt.outerjoin(Mask, and_(Mask.pair_id == ImageConcept.id, *mask_conditions(filters)))
            .where(ImageConcept.image_id.is_not(None), *pair_conditions(filters),
                   or_(trust.negative, Mask.id.is_not(None)))
            .order_by(ImageConcept.image_id, ImageConcept.concept_id, Mask.id))


def _image_rows(filters: ExportFilters) -> Any:
    return (select(Image.id, Image.sha256, Image.storage_key, Image.width, Image.height)
            .where(*image_conditions(filters)).order_by(Image.id))


# row positions of _image_rows and _label_rows
I_ID, I_SHA, I_KEY, I_W, I_H = range(5)
P_IMAGE, P_ID, P_CONCEPT, P_TEXT, P_VERSION, P_NEG, P_EXH = range(7)
M_ID, M_COUNTS, M_H, M_W, M_X, M_Y, M_BW, M_BH, M_AREA, M_CROWD, M_VERSION, M_SOURCE = range(7, 19)


def _images(conn: Connection, filters: ExportFilters) -> Iterator[tuple[Any, list[tuple[Any, list[Any]]]]]:
    """(image row, [(first row of the pair, its mask rows)]) per image with something exported:
    the label rows merged with the image rows, both ordered by image id."""
    images = stream(conn, _image_rows(filters))
    image = next(images, None)
    labels = stream(conn, _label_rows(filters), prefetch=True)
    for image_id, image_rows in groupby(labels, key=itemgetter(P_IMAGE)):
        while image is not None and image[I_ID] < image_id:
            image = next(images, None)
        if image is None or image[I_ID] != image_id:
            raise ExportError(f"image {image_id} changed during the export; export again")  # the reads disagree
        pairs = []
        for _, pair_rows in groupby(image_rows, key=itemgetter(P_ID)):
            rows = list(pair_rows)
            pairs.append((rows[0], [r for r in rows if r[M_ID] is not None]))
        yield image, pairs


class _CocoFile:
    """One split's file: annotations stream into it, images into a side file appended at the end."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.out = HashingWriter(folder / name)
        self.out.write(b'{"annotations":')
        self.annotations = JsonArray(self.out)
        self.side_path = folder / f".{name}.images.part"
        self.side = open(self.side_path, "wb", buffering=1 << 20)  # noqa: SIM115
        self.images = JsonArray(self.side)

    def finish(self, categories: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
        self.annotations.end()
        self.images.end()
        self.side.close()
        self.out.write(b',"categories":' + dumps(categories) + b',"images":')
        with open(self.side_path, "rb") as side:
            shutil.copyfileobj(side, self.out)
        self.side_path.unlink()
        self.out.write(b',"info":' + dumps(info) + b"}")
        return self.out.close()

    def abandon(self) -> None:
        self.side.close()
        self.out.abandon()


def _write_split_files(folder: Path, names: dict[str, str], body: Callable[[dict[str, _CocoFile]], Any],
                       categories: Callable[[], list[dict[str, Any]]], info: dict[str, Any]) -> dict[str, Any]:
    files = {split: _CocoFile(folder, names[split]) for split in SPLITS}
    try:
        body(files)
        cats = categories()
        return {f.name: f.finish(cats, info) for f in files.values()}
    except BaseException:
        for f in files.values():
            f.abandon()
        raise


def write_coco(conn: Connection, filters: ExportFilters, folder: Path, stats: Stats,
               progress: Progress | None) -> dict[str, Any]:
    """COCO in one pass over the label rows, batch by batch (no per-row generator steps, no
    grouping objects). The per-mask work is the least that gives these bytes: the row unpacked into
    locals and one dict, encoded with the image's other annotations by one orjson call per image
    (not per mask). Pairs are told apart as :func:`_images` tells them (a new pair id starts a
    pair), so the output is that of grouping the rows by image and pair (tests/engine/services/
    test_export_bytes.py pins it against such a plain encoder)."""
    concepts: dict[int, str] = {}

    def body(files: dict[str, _CocoFile]) -> None:
        counts = {split: Counter[str]() for split in SPLITS}
        versions, val_percent = stats.versions, filters.val_percent
        images = stream(conn, _image_rows(filters))
        image = next(images, None)
        image_id: Any = None  # the image being gathered (its row: ``image``)
        pair_id: Any = None
        skip = False  # the current pair is a negative: its rows carry no exported mask
        annotations: list[dict[str, Any]] = []
        negatives: list[int] = []
        partial: list[int] = []
        positives = exhaustives = 0

        def emit(image: Any) -> None:
            split = split_of(image[I_SHA], val_percent)
            out, c = files[split], counts[split]
            out.annotations.extend_objects(annotations)
            out.images.add_object({
                "file_name": image[I_KEY], "height": image[I_H], "id": image[I_ID],
                "neg_category_ids": sorted(negatives), "not_exhaustive_category_ids": sorted(partial),
                "sha256": image[I_SHA], "width": image[I_W]})
            c["images"] += 1
            c["annotations"] += len(annotations)
            c["negative_pairs"] += len(negatives)
            if positives:
                c["positive_pairs"] += positives
                c["exhaustive_pairs"] += exhaustives
            tick(stats, progress, len(annotations) + 1)

        for batch in stream_batches(conn, _label_rows(filters), prefetch=True):
            for (row_image, row_pair, concept, text, pair_version, negative, exhaustive, mask_id, counts_rle,
                 height, width, x, y, bw, bh, area, crowd, mask_version, _source) in batch:
                if row_pair != pair_id:
                    if row_image != image_id:
                        if image_id is not None:
                            emit(image)
                        while image is not None and image[I_ID] < row_image:
                            image = next(images, None)
                        if image is None or image[I_ID] != row_image:  # the two reads disagree
                            raise ExportError(f"image {row_image} changed during the export; export again")
                        image_id, annotations, negatives, partial, positives, exhaustives = \
                            row_image, [], [], [], 0, 0
                    pair_id = row_pair
                    concepts[concept] = text
                    versions.add(pair_version)
                    skip = bool(negative)
                    if skip:  # a negative has no masks (they would not be ground truth)
                        negatives.append(concept)
                        continue
                    if not exhaustive:
                        partial.append(concept)
                    positives += 1
                    if exhaustive:
                        exhaustives += 1
                elif skip:
                    continue
                if mask_id is not None:
                    annotations.append({
                        "area": area, "bbox": [x, y, bw, bh], "category_id": concept, "id": mask_id,
                        "image_id": row_image, "iscrowd": 1 if crowd else 0,
                        "segmentation": {"counts": counts_rle, "size": [height, width]}})
                    versions.add(mask_version)
        if image_id is not None:
            emit(image)
        stats.merge(counts)

    def categories() -> list[dict[str, Any]]:
        return [{"id": cid, "name": concepts[cid]} for cid in sorted(concepts)]

    names = {split: f"instances_{split}.json" for split in SPLITS}
    return _write_split_files(folder, names, body, categories,
                              {"description": "Data Engine export", "format": "coco"})


def write_saco(conn: Connection, filters: ExportFilters, folder: Path, stats: Stats,
               progress: Progress | None) -> dict[str, Any]:
    def body(files: dict[str, _CocoFile]) -> None:
        counts = {split: Counter[str]() for split in SPLITS}
        versions = stats.versions
        for image, pairs in _images(conn, filters):
            split = split_of(image[I_SHA], filters.val_percent)
            out, c, w, h = files[split], counts[split], image[I_W], image[I_H]
            annotations = []
            for pair, masks in pairs:
                versions.add(pair[P_VERSION])
                for m in masks:
                    annotations.append({
                        "area": saco_area(m[M_AREA], w, h), "bbox": saco_box((m[M_X], m[M_Y], m[M_BW], m[M_BH]), w, h),
                        "category_id": 1, "id": m[M_ID], "image_id": pair[P_ID], "iscrowd": 1 if m[M_CROWD] else 0,
                        "segmentation": {"counts": m[M_COUNTS], "size": [m[M_H], m[M_W]]}, "source": m[M_SOURCE]})
                    versions.add(m[M_VERSION])
                negative, exhaustive = bool(pair[P_NEG]), bool(pair[P_EXH])
                instance, pixel = saco_flags(negative, exhaustive, instance_exhaustive(
                    negative, exhaustive, any(m[M_CROWD] for m in masks)))
                out.images.add_object({
                    "file_name": image[I_KEY], "height": h, "id": pair[P_ID], "is_instance_exhaustive": instance,
                    "is_pixel_exhaustive": pixel, "original_image_id": image[I_ID],
                    "queried_category": str(pair[P_CONCEPT]), "sha256": image[I_SHA], "text_input": pair[P_TEXT],
                    "width": w})
                c["pairs"] += 1
                c["negative_pairs" if pair[P_NEG] else "positive_pairs"] += 1
            out.annotations.extend_objects(annotations)
            c["annotations"] += len(annotations)
            tick(stats, progress, len(annotations) + len(pairs))
        stats.merge(counts)

    names = {split: f"saco_{split}.json" for split in SPLITS}
    return _write_split_files(folder, names, body, lambda: [{"id": 1, "name": "object"}],
                              {"description": "Data Engine export", "format": "saco"})


WRITERS: dict[str, Callable[..., dict[str, Any]]] = {"coco": write_coco, "saco": write_saco,
                                                     "verifier": write_verifier}
