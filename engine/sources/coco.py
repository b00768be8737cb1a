"""A COCO-format JSON: ``images`` (files beside the JSON, under ``--images-dir``, or ``coco_url``),
optional caption annotations (``caption``) and instance annotations (``segmentation``)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.settings import FetchSettings
from engine.sources.base import (
    FetchError, Source, SourceError, SourceItem, confine, json_error, read_local_file,
)
from engine.sources.http import HttpFetcher


class CocoSource(Source):
    kind = "coco"
    queue = "cpu"

    def __init__(self, uri: str, fetch: FetchSettings, images_dir: str | None = None) -> None:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise SourceError(f"COCO file not found: {uri}")
        self.path = path.resolve()
        self.uri = str(self.path)
        self.images_dir = Path(images_dir).expanduser().resolve() if images_dir else self.path.parent
        self.fetch_settings = fetch
        self._fetcher: HttpFetcher | None = None

    def _load(self) -> dict[str, Any]:
        try:
            with self.path.open("rb") as handle:
                data = json.loads(handle.read())
        except (ValueError, RecursionError) as exc:  # the reason, never the file's text
            raise SourceError(f"{self.path.name}: {json_error(exc)}") from None
        except OSError as exc:
            raise SourceError(f"{self.path.name}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise SourceError(f"{self.path.name}: not a COCO file (no 'images' list)")
        return data

    def iter_items(self) -> Iterator[SourceItem]:
        data = self._load()
        categories = {
            c.get("id"): str(c.get("name", "")).strip()
            for c in data.get("categories") or [] if isinstance(c, dict)
        }
        captions: dict[Any, list[str]] = defaultdict(list)
        instances: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for ann in data.get("annotations") or []:
            if not isinstance(ann, dict):
                continue
            image_id = ann.get("image_id")
            if isinstance(ann.get("caption"), str) and ann["caption"].strip():
                captions[image_id].append(ann["caption"].strip())
            if "segmentation" in ann and "category_id" in ann:
                instances[image_id].append({
                    "id": ann.get("id"),
                    "category": categories.get(ann["category_id"], ""),
                    "category_id": ann["category_id"],
                    "segmentation": ann["segmentation"],
                    "iscrowd": int(bool(ann.get("iscrowd", 0))),
                })
        for index, image in enumerate(data["images"]):
            if not isinstance(image, dict):
                yield SourceItem(key=f"index:{index}", locator={"error": "image entry is not an object"})
                continue
            image_id = image.get("id")
            key = f"image:{image_id}" if image_id is not None else f"index:{index}"
            locator: dict[str, Any] = {}
            if isinstance(image.get("file_name"), str):
                locator["path"] = image["file_name"]
            url = image.get("coco_url") or image.get("flickr_url") or image.get("url")
            if isinstance(url, str):
                locator["url"] = url
            if not locator:
                locator["error"] = "image entry has neither file_name nor a URL"
            meta: dict[str, Any] = {"coco_id": image_id}
            if isinstance(image.get("width"), int) and isinstance(image.get("height"), int):
                meta["declared_size"] = [image["height"], image["width"]]
            if captions.get(image_id):
                meta["captions"] = captions[image_id]
            if instances.get(image_id):
                meta["annotations"] = instances[image_id]
            yield SourceItem(key=key, locator=locator, meta=meta)

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
                return read_local_file(path)
        if self._fetcher is None:
            self._fetcher = HttpFetcher(self.fetch_settings)
        return self._fetcher.fetch(str(locator["url"]))

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None
