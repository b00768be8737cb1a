"""A COCO-format JSON: ``images`` (files beside the JSON, under ``--images-dir``, or ``coco_url``),
optional caption annotations (``caption``) and instance annotations (``segmentation``).

Listing never dies on one entry. An image entry that is not an object, has an id that is not an
integer or a string, repeats an earlier id, or names its file with a non-string becomes an error
item with the reason; so do an annotation whose ``image_id`` is unusable (``annotation-index:N``)
and the annotations of an id no image has (``annotations-of:<id>``). An instance annotation whose
form is wrong (unknown or unnamed category, malformed segmentation, ``iscrowd`` not 0/1) is left
out and its reason kept in the image's ``annotation_errors``. The file itself is capped at
``sources.max_coco_bytes`` (it is parsed whole)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.domain.masks import MaskError, check_segmentation_shape
from engine.domain.vocabulary import SourceKind
from engine.settings import FetchSettings
from engine.sources.base import (
    FetchError,
    Source,
    SourceError,
    SourceItem,
    bounded_key,
    capped_errors,
    confine,
    json_error,
    read_local_file,
    real_path,
    safe_text,
)
from engine.sources.http import HttpFetcher

MAX_ID_CHARS = 200  # a string id longer than this is refused (keys are at most 1024 characters)
MAX_DECLARED_SIDE = 1 << 20


class CocoSource(Source):
    kind = SourceKind.COCO
    queue = "cpu"

    def __init__(self, uri: str, fetch: FetchSettings, images_dir: str | None = None,
                 max_file_bytes: int | None = None, max_coco_bytes: int | None = None) -> None:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise SourceError(f"COCO file not found: {uri}")
        self.path = real_path(path)
        self.uri = str(self.path)
        self.images_dir = real_path(Path(images_dir).expanduser()) if images_dir else self.path.parent
        self.fetch_settings = fetch
        self.max_file_bytes = max_file_bytes
        self.max_coco_bytes = max_coco_bytes
        self._fetcher: HttpFetcher | None = None

    def _load(self) -> dict[str, Any]:
        cap = self.max_coco_bytes
        try:
            with self.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if cap is not None and size > cap:
                    raise SourceError(f"{self.path.name}: {size:,} bytes exceeds the cap of {cap:,} on a COCO "
                                      "file (setting sources.max_coco_bytes)")
                text = handle.read() if cap is None else handle.read(cap + 1)
            if cap is not None and len(text) > cap:
                raise SourceError(f"{self.path.name}: more than the cap of {cap:,} bytes on a COCO file "
                                  "(setting sources.max_coco_bytes)")
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # the reason, never the file's text
            raise SourceError(f"{self.path.name}: {json_error(exc)}") from None
        except OSError as exc:
            raise SourceError(f"{self.path.name}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise SourceError(f"{self.path.name}: not a COCO file (no 'images' list)")
        return data

    def iter_items(self) -> Iterator[SourceItem]:
        data = self._load()
        by_image = _ByImage.of(data)
        captions, instances, errors = by_image.captions, by_image.instances, by_image.errors
        seen: dict[str, int] = {}
        for index, image in enumerate(data["images"]):
            if not isinstance(image, dict):
                yield _error_item(f"index:{index}", "image entry is not an object")
                continue
            raw_id = image.get("id")
            if raw_id is None:
                image_key, key = None, f"index:{index}"
            else:
                image_key, why = _id_key(raw_id)
                if image_key is None:
                    yield _error_item(f"index:{index}", f"image at index {index}: id {why}")
                    continue
                if image_key in seen:
                    yield _error_item(f"index:{index}",
                                      f"duplicate image id {image_key}, first at index {seen[image_key]}")
                    continue
                seen[image_key] = index
                key = f"image:{image_key}"
            locator = _locator(image)
            meta: dict[str, Any] = {"coco_id": _plain(raw_id, image_key)}
            declared = _declared_size(image)
            if declared is not None:
                meta["declared_size"] = declared
            if image_key is not None:
                if captions.get(image_key):
                    meta["captions"] = captions[image_key]
                if instances.get(image_key):
                    meta["annotations"] = instances[image_key]
                if errors.get(image_key):
                    meta["annotation_errors"] = capped_errors(errors[image_key])
            yield SourceItem(key=key, locator=locator, meta=meta)
        yield from by_image.orphans
        for image_key in sorted(set(captions) | set(instances) | set(errors)):
            if image_key not in seen:  # annotations of an image the file does not list
                n = sum(len(table.get(image_key, ())) for table in (captions, instances, errors))
                yield _error_item(bounded_key(f"annotations-of:{image_key}"),
                                  f"{n} annotation(s) refer to image id {image_key}, which the file does not list")

    def read(self, locator: dict[str, Any]) -> bytes:
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        rel = locator.get("path")
        if isinstance(rel, str):
            try:  # a '../' or absolute file_name, or a symlink out of the images folder, fails alone
                path = confine(self.images_dir, rel, "file_name")
            except FetchError as exc:
                raise FetchError(str(exc).replace("source folder", "images folder")) from None
            if os.path.isfile(path) or "url" not in locator:
                return read_local_file(path, max_bytes=self.max_file_bytes)
        if self._fetcher is None:
            self._fetcher = HttpFetcher(self.fetch_settings)
        return self._fetcher.fetch(str(locator["url"]))

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None


def _error_item(key: str, reason: str) -> SourceItem:
    return SourceItem(key=key, locator={"error": reason})


def _id_key(value: Any) -> tuple[str | None, str]:
    """An id as the text it is keyed by (``1`` and ``"1"`` are the same image), or (None, why not)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None, f"is {'missing' if value is None else 'a ' + type(value).__name__}, not an integer or a string"
    text = safe_text(str(value)).strip()
    if not text:
        return None, "is an empty string"
    if len(text) > MAX_ID_CHARS:
        return None, f"is a string of {len(text)} characters, more than {MAX_ID_CHARS}"
    return text, ""


def _plain(value: Any, key: str | None) -> int | str | None:
    """An id as stored in meta: the integer as given, else its key text (storable), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else key


@dataclass
class _ByImage:
    """The annotations of a COCO file by image id: captions, valid instances, the reasons of the
    invalid ones, and error items for annotations that name no image."""

    captions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    instances: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    orphans: list[SourceItem] = field(default_factory=list)

    @classmethod
    def of(cls, data: dict[str, Any]) -> _ByImage:
        table = cls()
        categories = _categories(data.get("categories"))
        annotations = data.get("annotations")
        for index, ann in enumerate(annotations if isinstance(annotations, list) else []):
            if not isinstance(ann, dict):
                table.orphans.append(_error_item(f"annotation-index:{index}",
                                                 f"annotation at index {index} is not an object"))
                continue
            image_key, why = _id_key(ann.get("image_id"))
            if image_key is None:
                table.orphans.append(_error_item(f"annotation-index:{index}",
                                                 f"annotation at index {index}: image_id {why}"))
                continue
            caption = ann.get("caption")
            if isinstance(caption, str) and caption.strip():
                table.captions[image_key].append(safe_text(caption.strip()))
            if "segmentation" in ann:
                instance, reason = _instance(ann, index, categories)
                if instance is not None:
                    table.instances[image_key].append(instance)
                else:
                    table.errors[image_key].append(reason)
        return table


def _categories(raw: Any) -> dict[str, str]:
    """Category id (as keyed by ``_id_key``) → its name ('' when it has none); entries that are not
    objects or have unusable ids are left out (their annotations then name an unknown category)."""
    out: dict[str, str] = {}
    for c in raw if isinstance(raw, list) else []:
        if not isinstance(c, dict):
            continue
        cid, _ = _id_key(c.get("id"))
        if cid is not None and cid not in out:
            name = c.get("name")
            out[cid] = safe_text(name.strip()) if isinstance(name, str) else ""
    return out


def _instance(ann: dict[str, Any], index: int, categories: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """An instance annotation as stored in the item's meta, or (None, why it is left out)."""
    ann_id, _ = _id_key(ann.get("id"))
    shown = f"annotation {ann_id}" if ann_id is not None else f"annotation at index {index}"
    category_id, why = _id_key(ann.get("category_id"))
    if category_id is None:
        return None, f"{shown}: category_id {why}"
    if category_id not in categories:
        return None, f"{shown}: category {category_id} is not in the file's categories"
    if not categories[category_id]:
        return None, f"{shown}: category {category_id} has no name"
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        return None, f"{shown}: iscrowd is not 0 or 1"
    try:
        check_segmentation_shape(ann["segmentation"])
    except MaskError as exc:
        return None, f"{shown}: {exc}"
    segmentation = ann["segmentation"]
    if isinstance(segmentation, dict):  # only what was checked is kept
        segmentation = {"size": segmentation["size"], "counts": segmentation["counts"]}
    return {"id": _plain(ann.get("id"), ann_id), "category": categories[category_id],
            "category_id": _plain(ann["category_id"], category_id),
            "segmentation": segmentation, "iscrowd": int(crowd)}, ""


def _locator(image: dict[str, Any]) -> dict[str, Any]:
    locator: dict[str, Any] = {}
    name = image.get("file_name")
    if isinstance(name, str) and name and safe_text(name) == name:
        locator["path"] = name
    url = next((image[k] for k in ("coco_url", "flickr_url", "url") if isinstance(image.get(k), str)), None)
    if isinstance(url, str) and safe_text(url) == url:
        locator["url"] = url
    if not locator:
        if "file_name" in image and not isinstance(name, str):
            locator["error"] = f"file_name is a {type(name).__name__}, not a string"
        elif isinstance(name, str) and name:
            locator["error"] = "file_name holds characters no file name can (NUL or an unpaired surrogate)"
        else:
            locator["error"] = "image entry has neither file_name nor a URL"
    return locator


def _declared_size(image: dict[str, Any]) -> list[int] | None:
    """[height, width] when both are positive integers of a sane size, else None (not checked)."""
    h, w = _sane_side(image.get("height")), _sane_side(image.get("width"))
    return [h, w] if h is not None and w is not None else None


def _sane_side(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DECLARED_SIDE else None
