"""Click to segment (annotators/tracker.py) on the tiny random-weight SAM 3 tracker, through the real
processor and post-processing. The weights are random: masks and scores are noise, so only their
form, the caching, the validation and the threading are checked."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from annotators.loading import ModelUnavailable
from engine.ports import ClickMask

pytestmark = pytest.mark.models  # the tiny random-weight models

SIZES = [(90, 130), (150, 64)]  # (height, width), neither square nor the model's 112 px


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


class Loader:
    """A load_image callable that counts its calls (optionally slow, to widen a race)."""

    def __init__(self, image: Image.Image, delay_s: float = 0.0) -> None:
        self.image, self.delay_s, self.calls = image, delay_s, 0
        self._lock = threading.Lock()

    def __call__(self) -> Image.Image:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        return self.image


class Spy:
    """Wraps the model: records the keyword arguments of each forward call, counts
    get_image_embeddings calls and the most model calls ever running at once; everything else
    goes to the model."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.calls: list[dict[str, Any]] = []
        self.embeddings = 0
        self.running = self.most_running = 0
        self._lock = threading.Lock()

    def _run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            threading.Event().wait(0.002)  # widen the window an unguarded call would overlap in
            return fn(**kwargs)
        finally:
            with self._lock:
                self.running -= 1

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self._run(self._model, **kwargs)

    def get_image_embeddings(self, **kwargs: Any) -> Any:
        self.embeddings += 1
        return self._run(self._model.get_image_embeddings, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@pytest.fixture()
def make(tiny) -> Callable[..., Any]:
    from annotators.tracker import Sam3TrackerSegmenter

    def build(**kwargs: Any) -> Sam3TrackerSegmenter:
        return Sam3TrackerSegmenter(str(tiny["sam3_tracker"]), device="cpu", **kwargs)

    return build


@pytest.fixture()
def segmenter(make):
    return make(embedding_cache_size=4)


@pytest.mark.parametrize("size", SIZES)
def test_mask_is_boolean_at_the_image_size(segmenter, size):
    height, width = size
    image = random_image(height, width)
    for points, box in [([(width * 0.3, height * 0.6, 1)], None),
                        ([(width * 0.3, height * 0.6, 1), (width - 1, height - 1, 0)], None),
                        ([], (2.0, 3.0, width - 5.0, height - 4.0)),
                        ([(width / 2, height / 2, 1)], (0.0, 0.0, float(width), float(height)))]:
        out = segmenter.segment(f"img-{height}x{width}", Loader(image), points, box)
        assert isinstance(out, ClickMask)
        assert out.mask.shape == (height, width) and out.mask.dtype == np.bool_
        assert isinstance(out.score, float) and 0.0 <= out.score <= 1.0  # the IoU head ends in a sigmoid
    assert segmenter.cache_info()["misses"] == 1  # four prompts, one embedding


def test_stamp_names_the_tracker(segmenter, tiny):
    stamp = segmenter.stamp
    assert stamp.kind == "tracker" and stamp.name == "tiny-sam3-tracker" and stamp.random_weights
    assert stamp.params == {"mask_threshold": 0.0} and stamp.version not in ("", "unknown")


def test_second_click_is_a_cache_hit_without_loading(segmenter):
    loader = Loader(random_image(*SIZES[0]))
    segmenter.segment("a", loader, [(10, 20, 1)])
    assert loader.calls == 1 and segmenter.last_timing["embed_ms"] > 0
    assert segmenter.cache_info() == {"hits": 0, "misses": 1, "size": 1, "capacity": 4}
    segmenter.segment("a", loader, [(10, 20, 1), (50, 40, 0)])
    assert loader.calls == 1
    assert segmenter.cache_info() == {"hits": 1, "misses": 1, "size": 1, "capacity": 4}
    timing = segmenter.last_timing
    assert set(timing) == {"load_ms", "embed_ms", "decode_ms", "post_ms"}
    assert timing["embed_ms"] == 0.0 and timing["load_ms"] == 0.0 and timing["decode_ms"] > 0


def test_cached_path_equals_a_fresh_segmenter(make):
    image = random_image(*SIZES[1])
    clicks = [[(20, 30, 1)], [(20, 30, 1), (40, 100, 0)], [(5.5, 140.25, 1), (60, 10, 1), (30, 75, 0)]]
    warm = make()
    warm.segment("k", lambda: image, [(32, 75, 1)])  # fills the cache
    for points in clicks:
        cached = warm.segment("k", lambda: image, points)
        fresh = make().segment("k", lambda: image, points)
        assert np.array_equal(cached.mask, fresh.mask) and cached.score == fresh.score
    assert warm.cache_info()["misses"] == 1 and warm.cache_info()["hits"] == len(clicks)


def test_cached_embedding_equals_the_full_forward_pass(segmenter):
    """The reuse path gives the mask of one forward pass from pixels (the model's reference use)."""
    import torch

    image = random_image(*SIZES[0])
    points = [(12.0, 70.0, 1), (100.0, 20.0, 0)]
    box = (4.0, 6.0, 120.0, 80.0)
    segmenter.segment("k", lambda: image, [(1, 1, 1)])
    out = segmenter.segment("k", lambda: image, points, box)
    processor, model = segmenter.processor, segmenter.model
    with torch.inference_mode():
        inputs = processor(images=image, input_points=[[[list(p[:2]) for p in points]]],
                           input_labels=[[[p[2] for p in points]]], input_boxes=[[list(box)]], return_tensors="pt")
        ref = model(**{k: v for k, v in inputs.items() if k != "original_sizes"}, multimask_output=False)
        ref_mask = processor.post_process_masks(ref.pred_masks, inputs["original_sizes"])[0][0, 0].numpy()
    assert np.array_equal(out.mask, ref_mask)
    assert out.score == pytest.approx(float(ref.iou_scores[0, 0, 0]), abs=1e-6)


def test_lru_evicts_the_least_recently_used(make):
    segmenter = make(embedding_cache_size=2)
    loaders = {key: Loader(random_image(*SIZES[0], seed=i)) for i, key in enumerate("abc")}

    def click(key: str) -> None:
        segmenter.segment(key, loaders[key], [(10, 10, 1)])

    for key in "aba":  # a is now more recent than b
        click(key)
    click("c")  # evicts b
    assert segmenter.cache_info() == {"hits": 1, "misses": 3, "size": 2, "capacity": 2}
    click("a")
    click("c")
    assert Counter({k: v.calls for k, v in loaders.items()}) == Counter(a=1, b=1, c=1)
    click("b")  # evicted: loaded again, and evicts a
    assert loaders["b"].calls == 2
    click("a")
    assert loaders["a"].calls == 2
    assert segmenter.cache_info() == {"hits": 3, "misses": 5, "size": 2, "capacity": 2}


def test_capacity_must_be_positive(make):
    with pytest.raises(ValueError, match="embedding_cache_size"):
        make(embedding_cache_size=0)


@pytest.mark.parametrize(("points", "box", "message"), [
    ([], None, "at least one point or a box"),
    ([(10, 10, 2)], None, "label must be 1 .positive. or 0 .negative."),
    ([(10, 10, -1)], None, "label"),
    ([(10, 10)], None, r"expected \(x, y, label\)"),
    ([(float("nan"), 10, 1)], None, "finite"),
    ([(10, float("inf"), 0)], None, "finite"),
    ([(10, 10, 1)], (5, 5, 5, 20), "x0 < x1"),
    ([], (5, 5, float("nan"), 20), "four finite numbers"),
])
def test_malformed_prompts_are_refused_before_loading(segmenter, points, box, message):
    loader = Loader(random_image(*SIZES[0]))
    with pytest.raises(ValueError, match=message):
        segmenter.segment("k", loader, points, box)
    assert loader.calls == 0


@pytest.mark.parametrize(("points", "box"), [
    ([(131, 10, 1)], None),  # the image is 130 wide
    ([(10, 10, 1), (10, 90.5, 0)], None),  # and 90 high
    ([(-0.1, 10, 1)], None),
    ([(10, 10, 1)], (0, 0, 130, 91)),
    ([], (-1, 0, 20, 20)),
])
def test_prompts_outside_the_image_are_refused(segmenter, points, box):
    with pytest.raises(ValueError, match="outside"):
        segmenter.segment("k", Loader(random_image(*SIZES[0])), points, box)
    segmenter.segment("k", Loader(random_image(*SIZES[0])), [(130, 90, 1)], (0, 0, 130, 90))  # the edges are inside


def test_a_negative_point_reaches_the_model(segmenter):
    spy = segmenter.model = Spy(segmenter.model)
    image = random_image(*SIZES[0])
    positive = segmenter.segment("k", lambda: image, [(30, 40, 1)])
    both = segmenter.segment("k", lambda: image, [(30, 40, 1), (100, 70, 0)])
    for out in (positive, both):
        assert out.mask.shape == SIZES[0] and out.mask.dtype == np.bool_
    first, second = spy.calls
    assert first["input_labels"].tolist() == [[[1]]] and second["input_labels"].tolist() == [[[1, 0]]]
    assert first["input_points"].shape == (1, 1, 1, 2) and second["input_points"].shape == (1, 1, 2, 2)
    assert "input_boxes" not in second and second["multimask_output"] is False
    # both clicks decode the same cached embedding
    assert first["image_embeddings"] is second["image_embeddings"] and spy.embeddings == 1


def test_mask_threshold_is_applied(make):
    image = random_image(*SIZES[0])
    empty = make(mask_threshold=1e9).segment("k", lambda: image, [(30, 40, 1)])
    full = make(mask_threshold=-1e9).segment("k", lambda: image, [(30, 40, 1)])
    assert not empty.mask.any() and full.mask.all()


def test_concurrent_misses_of_one_key_compute_the_embedding_once(segmenter):
    spy = segmenter.model = Spy(segmenter.model)
    loader = Loader(random_image(*SIZES[1]), delay_s=0.3)  # the second thread arrives mid-computation
    barrier = threading.Barrier(2)
    results: dict[int, ClickMask] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = segmenter.segment("new", loader, [(20, 30 + i, 1)])
        except BaseException as exc:  # noqa: BLE001 - reported below  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 2
    assert loader.calls == 1 and spy.embeddings == 1
    assert segmenter.cache_info() == {"hits": 1, "misses": 1, "size": 1, "capacity": 4}
    assert all(r.mask.shape == SIZES[1] for r in results.values())


def test_many_threads_give_the_sequential_answers(make):
    images = {f"k{i}": random_image(*SIZES[i % 2], seed=i) for i in range(3)}
    jobs = [(key, [(5 + 3 * j, 7 + 2 * j, 1), (40, 50, j % 2)]) for key in images for j in range(4)]
    expected = [make().segment(key, lambda key=key: images[key], points) for key, points in jobs]
    segmenter = make(embedding_cache_size=2)  # evictions under concurrency too
    spy = segmenter.model = Spy(segmenter.model)
    got: list[ClickMask | None] = [None] * len(jobs)

    def work(i: int) -> None:
        key, points = jobs[i]
        got[i] = segmenter.segment(key, lambda: images[key], points)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for want, have in zip(expected, got, strict=True):
        assert have is not None and np.array_equal(want.mask, have.mask) and want.score == have.score
    info = segmenter.cache_info()
    assert info["hits"] + info["misses"] == len(jobs) and info["size"] == 2
    assert spy.most_running == 1  # one lock guards every model call
    assert spy.embeddings == info["misses"] and len(spy.calls) == len(jobs)


def test_a_failed_load_is_not_cached(segmenter):
    def broken() -> Image.Image:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        segmenter.segment("k", broken, [(1, 1, 1)])
    loader = Loader(random_image(*SIZES[0]))
    segmenter.segment("k", loader, [(1, 1, 1)])
    assert loader.calls == 1 and segmenter.cache_info()["size"] == 1


def test_missing_directory_is_model_unavailable(tmp_path):
    from annotators.tracker import Sam3TrackerSegmenter

    with pytest.raises(ModelUnavailable, match="cannot load"):
        Sam3TrackerSegmenter(str(tmp_path / "no-such-model"), device="cpu")


def test_settings_and_registry(tiny, tmp_path, monkeypatch):
    from pydantic import ValidationError

    from annotators.registry import make_segmenter, model_refs
    from annotators.tracker import Sam3TrackerSegmenter
    from engine.settings import Settings
    from pipelines.models import ModelCache

    for name in [n for n in os.environ if n.startswith("DATAENGINE_")]:
        monkeypatch.delenv(name)
    assert model_refs(Settings(data_dir=tmp_path, model_profile="sam3"))["tracker"] == "facebook/sam3"
    custom = Settings(data_dir=tmp_path, model_profile="sam3", models={"tracker": {"model": "/models/sam3"}})
    assert model_refs(custom)["tracker"] == "/models/sam3"
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, models={"tracker": {"embedding_cache_size": 0}})

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tiny").symlink_to(tiny["sam3_tracker"].parent)  # reuse the session's tiny models
    settings = Settings(data_dir=tmp_path, models={"cache_dir": tmp_path / "cache", "device": "cpu",
                                                   "tracker": {"embedding_cache_size": 3, "mask_threshold": 0.25}})
    segmenter = make_segmenter(settings)
    assert isinstance(segmenter, Sam3TrackerSegmenter) and segmenter.stamp.random_weights
    assert segmenter.cache_info()["capacity"] == 3 and segmenter.stamp.params == {"mask_threshold": 0.25}
    cache = ModelCache(settings)
    assert cache.segmenter() is cache.segmenter()
