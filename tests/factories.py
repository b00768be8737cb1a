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
        Concept,
        HumanTask,
        ImageConcept,
        ModelKind,
        PairOrigin,
        Polarity,
        TaskKind,
        TaskState,
    )
    from engine.db.models import (
        Image as ImageRow,
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


def seed_labelled(session, media_root: Path) -> dict[str, int]:
    """Labels as the queue and the router leave them, for the exports (4 images × dog/cat/bird,
    two rectangle masks per pair). People judge through engine.services.annotation.submit; the AI's
    decisions are written as the router writes them. Returns named ids:

    - img0 dog: m0 accepted, m1 rejected (people), then "complete" → exhaustive positive (people)
    - img0 cat: "not_present" → negative (people); img0 bird: untouched
    - img1 dog: both masks auto-accepted on the MV's word; not exhaustive
    - img1 cat: negative on the EV's word (no boxes), masks auto-rejected
    - img2 dog: a correction keeps m0 and draws one new mask → exhaustive positive (people)
    - img3 dog: the MV said reject, a person accepted m0 (agreement 0.5); m1 untouched
    """
    import datetime as dt
    import uuid

    import numpy as np

    from engine.db.models import (
        HumanTask,
        ImageConcept,
        Mask,
        ModelKind,
        TaskKind,
        TaskState,
        User,
        Verdict,
        VerdictKind,
        VerdictSource,
    )
    from engine.domain import decisions as dm
    from engine.domain.masks import encode_mask
    from engine.repositories.model_versions import get_or_create
    from engine.services import decide
    from engine.services.annotation import MaskIn, VerdictIn, submit
    from engine.settings import QueueSettings

    made = seed_review_items(session, media_root, n_images=4, phrases=("dog", "cat", "bird"), kinds=())
    users = [User(username=f"exp-ann{i}", role="annotator") for i in (1, 2)]
    session.add_all(users)
    mv = get_or_create(session, ModelKind.MASK_VERIFIER, "test-mv", "1")
    ev = get_or_create(session, ModelKind.EXHAUSTIVITY_VERIFIER, "test-ev", "1")
    session.flush()
    queue = QueueSettings(multi_review_rate=0.0)
    pairs = [session.get(ImageConcept, pid) for pid in made["pairs"]]  # 3 per image: dog, cat, bird
    masks = {pid: list(session.query(Mask).filter_by(pair_id=pid).order_by(Mask.id)) for pid in made["pairs"]}

    def judge(kind: TaskKind, pair: ImageConcept, label: str, mask: Mask | None = None,
              given: list[MaskIn] | None = None) -> int:
        task = HumanTask(kind=kind, pair_id=pair.id, mask_id=mask.id if mask else None, state=TaskState.LEASED,
                         lease_owner_id=users[0].id, reason="test",
                         lease_expires_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
        session.add(task)
        session.flush()
        return submit(session, task.id, users[0].id, VerdictIn(client_id=uuid.uuid4().hex, label=label,
                                                                 active_ms=1000, masks=given or []), queue).verdict_id

    def ai(version_id: int, kind: VerdictKind, pair: ImageConcept, label: str, mask: Mask | None = None,
           payload: dict | None = None) -> None:
        session.add(Verdict(kind=kind, source=VerdictSource.AI, pair_id=pair.id, mask_id=mask.id if mask else None,
                            model_version_id=version_id, label=label, probabilities={label: 0.9}, payload=payload))

    dog0, cat0, _, dog1, cat1, _, dog2, _, _, dog3, _, _ = pairs
    judge(TaskKind.VERIFY_MASK, dog0, "accept", masks[dog0.id][0])
    judge(TaskKind.VERIFY_MASK, dog0, "reject", masks[dog0.id][1])
    judge(TaskKind.CHECK_EXHAUSTIVITY, dog0, "complete")
    judge(TaskKind.CHECK_EXHAUSTIVITY, cat0, "not_present")
    def routed(pair: ImageConcept, outcome: dm.Outcome) -> None:  # as engine/services/route.py writes it
        decide.write(session, pair.id, outcome)
        session.flush()

    for m in masks[dog1.id]:
        ai(mv.id, VerdictKind.MASK, dog1, "accept", m)
        routed(dog1, dm.route_mask(decide.facts(session, dog1.id), m.id, "accept"))
    for m in masks[cat1.id]:
        ai(mv.id, VerdictKind.MASK, cat1, "reject", m)
        routed(cat1, dm.route_mask(decide.facts(session, cat1.id), m.id, "reject"))
    ai(ev.id, VerdictKind.EXHAUSTIVITY, cat1, "accept", payload={"boxes": 0})
    routed(cat1, dm.route_pair(decide.facts(session, cat1.id), "negative"))
    grid = np.zeros((64, 96), dtype=bool)
    grid[40:60, 50:90] = True
    drawn = encode_mask(grid)
    correction = judge(TaskKind.CORRECT, dog2, "corrected", given=[
        MaskIn(mask_id=masks[dog2.id][0].id, tool="existing"),
        MaskIn(rle={"size": [64, 96], "counts": drawn.counts}, tool="brush")])
    ai(mv.id, VerdictKind.MASK, dog3, "reject", masks[dog3.id][0])
    session.flush()
    judge(TaskKind.VERIFY_MASK, dog3, "accept", masks[dog3.id][0])
    session.flush()
    new_mask = session.get(Verdict, correction).payload["new_mask_ids"][0]
    return {
        "img0": made["images"][0], "img1": made["images"][1], "img2": made["images"][2], "img3": made["images"][3],
        "dog0": dog0.id, "cat0": cat0.id, "dog1": dog1.id, "cat1": cat1.id, "dog2": dog2.id, "dog3": dog3.id,
        "dog0_m0": masks[dog0.id][0].id, "dog0_m1": masks[dog0.id][1].id,
        "dog1_m0": masks[dog1.id][0].id, "dog1_m1": masks[dog1.id][1].id,
        "dog2_m0": masks[dog2.id][0].id, "dog2_drawn": new_mask, "dog3_m0": masks[dog3.id][0].id,
        "dog": dog0.concept_id, "cat": cat0.concept_id, "bird": pairs[2].concept_id,
        "mv_version": mv.id, "ev_version": ev.id, "user": users[0].id,
    }
