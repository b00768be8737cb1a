"""Test data: photo-like images, a corpus of bad files, sources of every kind."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A random, photo-like image (gradients, blobs and noise); different seeds differ a lot."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.28)]
        base = 127 + 100 * np.sin(x / w * fx * 6.28 + phase) * np.cos(y / h * fy * 6.28)
        channels.append(base)
    arr = np.stack(channels, axis=-1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(min(w, h) / 10, min(w, h) / 3)
        color = rng.uniform(0, 255, 3)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        arr[inside] = color
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, quality: int = 90, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, **params)
    return buf.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A few kilobytes that decode to width*height pixels."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def rotated_jpeg(image: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(image, exif=exif)


def bad_corpus(folder: Path) -> dict[str, str]:
    """Write the corpus from the issue into ``folder``; returns file name → expected status."""
    folder.mkdir(parents=True, exist_ok=True)
    good = jpeg_bytes(photo(1))
    (folder / "good.jpg").write_bytes(good)
    (folder / "zz-copy-of-good.jpg").write_bytes(good)  # exact duplicate
    (folder / "zz-reencoded-good.jpg").write_bytes(jpeg_bytes(photo(1), quality=60))  # near duplicate
    (folder / "other.png").write_bytes(png_bytes(photo(2)))
    (folder / "truncated.jpg").write_bytes(jpeg_bytes(photo(3))[:-2000])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"this is not an image, just text renamed to .jpg\n" * 20)
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "notes.md").write_text("ignored: not an image extension")
    return {
        "bomb.png": "failed", "empty.jpg": "failed", "zz-copy-of-good.jpg": "duplicate", "good.jpg": "done",
        "zz-reencoded-good.jpg": "near_duplicate", "other.png": "done", "text.jpg": "failed",
        "truncated.jpg": "failed",
    }


def write_shard(path: Path, samples: list[dict[str, bytes | str]]) -> None:
    """samples: [{"__key__": "000", "jpg": b"...", "txt": "caption"}]"""
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"]
            for ext, value in sample.items():
                if ext == "__key__":
                    continue
                data = value.encode() if isinstance(value, str) else value
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_coco(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def seed_review_items(session, media_root: Path, n_images: int = 2, phrases: tuple[str, ...] = ("dog", "cat"),
                      size: tuple[int, int] = (96, 64), masks_per_pair: int = 2,
                      kinds: tuple[str, ...] = ("verify_mask", "check_exhaustivity")) -> dict[str, list[int]]:
    """Stored images with pairs, candidate masks (rectangles) and open human tasks, as the router
    leaves them. Returns the ids made: images, pairs, masks, tasks."""
    import hashlib

    import numpy as np

    from engine.db.models import (
        Concept, HumanTask, Image as ImageRow, ImageConcept, ModelKind, PairOrigin, Polarity, TaskKind, TaskState,
    )
    from engine.domain.masks import encode_mask
    from engine.repositories.labels import add_mask
    from engine.repositories.model_versions import get_or_create
    from engine.storage import LocalMediaStore

    store = LocalMediaStore(media_root)
    proposer = get_or_create(session, ModelKind.PROPOSER, "test-proposer", "1")
    made: dict[str, list[int]] = {"images": [], "pairs": [], "masks": [], "tasks": []}
    concepts = []
    for text in phrases:
        concept = session.query(Concept).filter_by(text=text).one_or_none() or Concept(text=text)
        session.add(concept)
        concepts.append(concept)
    session.flush()
    width, height = size
    for i in range(n_images):
        data = png_bytes(photo(1000 + i, size))
        sha = hashlib.sha256(data).hexdigest()
        key = store.put(sha, "png", data)
        image = ImageRow(sha256=sha, phash=i, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=i, width=width,
                         height=height, format="png", byte_size=len(data), storage_key=key)
        session.add(image)
        session.flush()
        made["images"].append(image.id)
        for concept in concepts:
            pair = ImageConcept(image_id=image.id, concept_id=concept.id, polarity=Polarity.UNKNOWN,
                                origin=PairOrigin.CAPTION)
            session.add(pair)
            session.flush()
            made["pairs"].append(pair.id)
            for m in range(masks_per_pair):
                grid = np.zeros((height, width), dtype=bool)
                grid[4 + 8 * m: 20 + 8 * m, 4 + 10 * m: 30 + 10 * m] = True
                mask = add_mask(session, pair.id, proposer.id, encode_mask(grid), score=0.9 - 0.1 * m)
                session.flush()
                made["masks"].append(mask.id)
                if "verify_mask" in kinds:
                    task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair.id, mask_id=mask.id,
                                     state=TaskState.OPEN, priority=0, reason="test")
                    session.add(task)
                    session.flush()
                    made["tasks"].append(task.id)
            for kind in ("check_exhaustivity", "correct"):
                if kind in kinds:
                    task = HumanTask(kind=TaskKind(kind), pair_id=pair.id, state=TaskState.OPEN, priority=0,
                                     reason="test")
                    session.add(task)
                    session.flush()
                    made["tasks"].append(task.id)
    return made
