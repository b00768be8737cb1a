"""What the model side is handed: images downscaled to ``models.max_side``; masks made at that size
are stored at the original size (real databases, real stored files, a fake proposer)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from engine.db.models import Image as ImageRow
from engine.db.models import ImageConcept, Mask, StageItem, StageStatus
from engine.db.session import session_scope
from engine.domain.masks import decode_mask
from engine.domain.render import boxes_view, mask_view
from engine.repositories import labels as labels_repo
from engine.services import caption, flow, mine, parse, propose, verify
from engine.services.common import image_sizes, load_images
from engine.settings import ProposeSettings
from engine.storage import LocalMediaStore
from tests.factories import jpeg_bytes, photo
from tests.fakes import FakeCaptioner, FakeExhaustivityVerifier, FakeMaskVerifier, FakeParser, FakeProposer

ORDER = ["mine", "caption", "parse", "propose", "verify"]
SIZES = {"wide.jpg": (900, 600), "tall.png": (300, 700), "small.jpg": (120, 80)}


@pytest.fixture
def mined(settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n, (name, size) in enumerate(SIZES.items()):
        if name.endswith(".png"):
            buf = io.BytesIO()
            photo(700 + n, size).save(buf, format="PNG")
            (src / name).write_bytes(buf.getvalue())
        else:
            (src / name).write_bytes(jpeg_bytes(photo(700 + n, size)))
        (src / name.replace(name.rsplit(".", 1)[1], "txt")).write_text("a striped cat on a blue sofa")
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(src), job_name="big")
    with session_scope(settings.db_url) as s:
        report = mine.mine_batch(s, settings, store, plan.job_id, plan.pending)
        flow.hand_over(s, plan.job_id, "mine", report.image_ids, ORDER)
    with session_scope(settings.db_url) as s:
        by_size = {(r.width, r.height): r.id for r in s.scalars(select(ImageRow))}
    return plan.job_id, {name: by_size[size] for name, size in SIZES.items()}, store


def test_images_are_downscaled_to_the_budget_keeping_their_aspect(settings, mined):
    _, ids, store = mined
    with session_scope(settings.db_url) as s:
        bounded = load_images(s, store, list(ids.values()), max_side=256)
        full = load_images(s, store, list(ids.values()))
        sizes = image_sizes(s, list(ids.values()))
    assert bounded[ids["wide.jpg"]].size == (256, 171)
    assert bounded[ids["tall.png"]].size == (110, 256)
    assert bounded[ids["small.jpg"]].size == (120, 80)  # within the budget: untouched
    assert all(isinstance(img, Image.Image) and img.mode == "RGB" for img in bounded.values())
    assert {i: img.size for i, img in full.items()} == {ids[n]: s for n, s in SIZES.items()}
    assert sizes == {ids[n]: (h, w) for n, (w, h) in SIZES.items()}


def _proposed(settings, mined):
    job_id, ids, store = mined
    image_ids = list(ids.values())
    with session_scope(settings.db_url) as s:
        report = caption.caption_batch(s, store, FakeCaptioner(default="a vase and a lamp"), job_id, image_ids)
        flow.hand_over(s, job_id, "caption", report.image_ids, ORDER)
    with session_scope(settings.db_url) as s:
        report = parse.parse_batch(s, FakeParser(), job_id, image_ids)
        flow.hand_over(s, job_id, "parse", report.image_ids, ORDER)
    proposer = FakeProposer()  # draws its masks at the size of the image it is handed
    with session_scope(settings.db_url) as s:
        report = propose.propose_batch(s, store, proposer, ProposeSettings(), job_id, image_ids, max_side=256)
        flow.hand_over(s, job_id, "propose", report.image_ids, ORDER)
    return report


def test_masks_made_at_the_budget_are_stored_at_the_original_size(settings, mined):
    _, ids, _ = mined
    report = _proposed(settings, mined)
    assert report.counts["done"] == 3 and report.counts["masks"] > 0
    with session_scope(settings.db_url) as s:
        assert all(i.status is StageStatus.DONE
                   for i in s.scalars(select(StageItem).where(StageItem.stage == "propose")))
        for name, image_id in ids.items():
            width, height = SIZES[name]
            masks = s.scalars(select(Mask).join(ImageConcept, Mask.pair_id == ImageConcept.id)
                              .where(ImageConcept.image_id == image_id)).all()
            assert masks, name
            for m in masks:
                decoded = decode_mask(labels_repo.rle_of(m))
                assert decoded.shape == (height, width) == (m.height, m.width)
                assert decoded.sum() == m.area > 0
                x, y, w, h = (int(v) for v in (m.bbox_x, m.bbox_y, m.bbox_w, m.bbox_h))
                assert decoded[y:y + h, x:x + w].sum() == m.area  # the box in original pixels
                if name == "wide.jpg":  # drawn 4 px high on the 256×171 image: ~14 px at 900×600
                    assert h >= 12


class _SeeingMaskVerifier(FakeMaskVerifier):
    """Renders what a real MV sees (engine/domain/render.py) and keeps the sizes it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[tuple[int, int], tuple[int, ...]]] = []

    def verify_masks(self, queries):  # type: ignore[no-untyped-def]
        for q in queries:
            mask_view(q.image, q.mask)  # raises when the mask does not match the image
            self.shown.append((q.image.size, q.mask.shape))
        return super().verify_masks(queries)


class _SeeingExhaustivityVerifier(FakeExhaustivityVerifier):
    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[tuple[int, int], list[tuple[float, float, float, float]]]] = []

    def verify_pairs(self, queries):  # type: ignore[no-untyped-def]
        for q in queries:
            boxes_view(q.image, q.boxes)
            self.shown.append((q.image.size, list(q.boxes)))
        return super().verify_pairs(queries)


def test_verifiers_see_the_downscaled_image_with_masks_and_boxes_at_its_size(settings, mined):
    job_id, ids, store = mined
    _proposed(settings, mined)
    mv, ev = _SeeingMaskVerifier(), _SeeingExhaustivityVerifier()
    with session_scope(settings.db_url) as s:
        report = verify.verify_batch(s, store, mv, ev, 0.5, job_id, list(ids.values()), max_side=256)
    assert report.counts["done"] == 3, report.counts
    assert mv.shown and ev.shown
    for (width, height), shape in mv.shown:
        assert max(width, height) <= 256 and shape == (height, width)
    for (width, height), boxes in ev.shown:  # boxes scaled from original pixels to the image shown
        assert max(width, height) <= 256
        for x, y, w, h in boxes:
            assert 0 <= x and x + w <= width + 1e-6 and 0 <= y and y + h <= height + 1e-6
