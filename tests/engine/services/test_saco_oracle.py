"""Our cgF1 / pmF1 / IL_MCC per model version against the official SA-Co evaluator (Meta's
``sam3/eval/cgf1_eval.py``, loaded by tests/saco_oracle.py) on the same files: the SA-Co export
(``dataengine export saco``) with the results file ``report --predictions-out`` writes, and the
ground-truth subset written beside it. The workload has negatives, misses, false positives (on
positive and on negative pairs), scores under and exactly at 0.5, IoUs exactly at a threshold,
an exact tie of the Hungarian assignment, crowd masks, a partial pair, undecided pairs and pairs
decided by the AI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import orjson
import pytest

from engine.db.models import (
    Concept,
    Decider,
    Image,
    ImageConcept,
    ItemStatus,
    JobItem,
    JobStatus,
    Mask,
    MaskState,
    MiningJob,
    ModelKind,
    ModelVersion,
    PairOrigin,
    Polarity,
    StageItem,
    StageStatus,
)
from engine.db.session import session_scope
from engine.domain.masks import encode_mask
from engine.domain.saco_eval import evaluate_files
from engine.repositories.labels import add_mask
from engine.repositories.model_versions import get_or_create, source_version
from engine.services import predictions, propose
from engine.services.export import export_saco
from engine.services.export_rows import ExportFilters
from engine.services.quality import ProposerQuality, quality_report
from engine.storage import LocalMediaStore
from tests.factories import photo, png_bytes
from tests.saco_oracle import official_scores

H, W = 40, 60
Box = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1


def rect(r0: int, r1: int, c0: int, c1: int) -> Box:
    return (r0, r1, c0, c1)


def rle_of(box: Box):  # type: ignore[no-untyped-def]
    grid = np.zeros((H, W), dtype=bool)
    grid[box[0]:box[1], box[2]:box[3]] = True
    return encode_mask(grid)


class Workload:
    """Six images; every decision is written as the decision model leaves it (mask accepted with
    its decider, pair claim with its decider)."""

    def __init__(self, session, media_root: Path) -> None:  # type: ignore[no-untyped-def]
        self.s = session
        self.store = LocalMediaStore(media_root)
        self.proposer = get_or_create(session, ModelKind.PROPOSER, "oracle-proposer", "1")
        self.drawn = source_version(session, "oracle-human-drawn")
        self.job = MiningJob(name="oracle-job", source_uri="test://", source_kind="folder", status=JobStatus.DONE)
        session.add(self.job)
        session.flush()
        self.images: list[int] = []
        self.pairs: dict[tuple[int, str], int] = {}

    def image(self) -> int:
        data = png_bytes(photo(4000 + len(self.images), (W, H)))
        sha = hashlib.sha256(data).hexdigest()
        row = Image(sha256=sha, phash=len(self.images), phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0, width=W,
                    height=H, format="png", byte_size=len(data), storage_key=self.store.put(sha, "png", data))
        self.s.add(row)
        self.s.flush()
        self.s.add(JobItem(job_id=self.job.id, key=f"k{row.id}", locator={}, status=ItemStatus.DONE, image_id=row.id))
        # the proposer ran on every image (its propose stage finished there)
        self.s.add(StageItem(job_id=self.job.id, stage=propose.STAGE, subject_id=row.id,
                             model_version_id=self.proposer.id, status=StageStatus.DONE))
        self.images.append(row.id)
        return row.id

    def pair(self, image: int, text: str) -> ImageConcept:
        concept = self.s.query(Concept).filter_by(text=text).one_or_none()
        if concept is None:
            concept = Concept(text=text)
            self.s.add(concept)
            self.s.flush()
        pair = ImageConcept(image_id=image, concept_id=concept.id, polarity=Polarity.UNKNOWN, origin=PairOrigin.CAPTION)
        self.s.add(pair)
        self.s.flush()
        self.pairs[(image, text)] = pair.id
        return pair

    def truth(self, pair: ImageConcept, boxes: list[Box], *, by: Decider = Decider.HUMAN,
              crowd: tuple[int, ...] = ()) -> list[int]:
        """Masks drawn and accepted by ``by``; the claim "exhaustive" by ``by``."""
        ids = []
        for i, box in enumerate(boxes):
            m = add_mask(self.s, pair.id, self.drawn.id, rle_of(box), is_crowd=i in crowd)
            m.state, m.decided_by = MaskState.ACCEPTED, by
            self.s.flush()
            ids.append(m.id)
        pair.polarity, pair.is_exhaustive, pair.decided_by = Polarity.POSITIVE, True, by
        return ids

    def negative(self, pair: ImageConcept, *, by: Decider = Decider.HUMAN) -> None:
        pair.polarity, pair.is_exhaustive, pair.decided_by = Polarity.NEGATIVE, True, by

    def accept(self, *mask_ids: int) -> None:
        for mask_id in mask_ids:
            m = self.s.get(Mask, mask_id)
            m.state, m.decided_by = MaskState.ACCEPTED, Decider.HUMAN

    def propose(self, pair: ImageConcept, *masks: tuple[Box, float]) -> list[int]:
        ids = []
        for box, score in masks:
            m = add_mask(self.s, pair.id, self.proposer.id, rle_of(box), score=score)
            self.s.flush()
            ids.append(m.id)
        return ids


def build(session, media_root: Path) -> Workload:  # type: ignore[no-untyped-def]
    w = Workload(session, media_root)
    i0, i1, i2, i3, i4, i5 = (w.image() for _ in range(6))
    rows: list[dict] = []  # the imported model's results (COCO rows, our image ids)

    def imported(image: int, text: str, box: Box, score: float | None) -> None:
        row = {"image_id": image, "phrase": text, "segmentation": rle_of(box).to_coco()}
        if score is not None:
            row["score"] = score
        rows.append(row)

    # i0 dog: two instances. Proposer: one exact, one at IoU 150/200 = 0.75 exactly, a false positive,
    # and an exact copy scoring 0.3 (dropped). Import: IoU 0.9 and an exact one without a score.
    dog0 = w.pair(i0, "dog")
    w.truth(dog0, [rect(2, 12, 2, 12), rect(20, 30, 30, 50)])
    w.propose(dog0, (rect(2, 12, 2, 12), 0.9), (rect(20, 30, 30, 45), 0.8), (rect(35, 39, 0, 10), 0.6),
              (rect(20, 30, 30, 50), 0.3))
    imported(i0, "dog", rect(2, 12, 2, 11), 0.95)
    imported(i0, "dog", rect(20, 30, 30, 50), None)
    # i0 cat: negative. Proposer: a false positive. Import: one under 0.5 (a true negative).
    cat0 = w.pair(i0, "cat")
    w.negative(cat0)
    w.propose(cat0, (rect(0, 5, 50, 60), 0.7))
    imported(i0, "cat", rect(0, 5, 50, 60), 0.2)
    # i1 dog: the proposer misses it; the import finds it at IoU 220/400 = 0.55 with score 0.5 exactly
    dog1 = w.pair(i1, "dog")
    w.truth(dog1, [rect(5, 25, 5, 25)])
    imported(i1, "dog", rect(5, 25, 5, 16), 0.5)
    # i1 cat: negative; the import has a false positive
    w.negative(w.pair(i1, "cat"))
    imported(i1, "cat", rect(30, 40, 0, 20), 0.99)
    # i1 bird: a crowd mask → not instance-exhaustive: scored by nobody
    bird1 = w.pair(i1, "bird")
    w.truth(bird1, [rect(0, 10, 40, 60), rect(30, 40, 40, 60)], crowd=(0,))
    w.propose(bird1, (rect(0, 10, 40, 60), 0.9))
    # i2 tree: an exact tie (pred × gt IoU [[13/16, 1], [5/16, 8/16]]); the import lists them reversed
    tree2 = w.pair(i2, "tree")
    w.truth(tree2, [rect(5, 15, 1, 14), rect(5, 15, 1, 17)])
    w.propose(tree2, (rect(5, 15, 1, 17), 0.9), (rect(5, 15, 9, 17), 0.9))
    imported(i2, "tree", rect(5, 15, 9, 17), 0.9)
    imported(i2, "tree", rect(5, 15, 1, 17), 0.9)
    # i2 dog: "instances missing" (partial) and i2 cat: undecided → not scored
    dog2 = w.pair(i2, "dog")
    w.accept(*w.propose(dog2, (rect(0, 10, 0, 10), 0.9)))
    dog2.polarity, dog2.is_exhaustive, dog2.decided_by = Polarity.POSITIVE, False, Decider.HUMAN
    w.propose(w.pair(i2, "cat"), (rect(20, 30, 20, 30), 0.8))
    # i3 dog: a proposal a person accepted (IoU 1 with itself) and a drawn mask; a second proposal at
    # IoU 100/150. The import found nothing on i3 (it ran there: a miss and a true negative).
    dog3 = w.pair(i3, "dog")
    w.accept(*w.propose(dog3, (rect(10, 20, 10, 30), 0.85)))
    w.truth(dog3, [rect(25, 35, 40, 55)])
    w.propose(dog3, (rect(25, 35, 40, 50), 0.55))
    cat3 = w.pair(i3, "cat")
    w.negative(cat3)
    w.propose(cat3, (rect(0, 10, 0, 10), 0.9), (rect(20, 30, 20, 30), 0.8))
    # i4 bird: negative, nobody predicts (true negative); i4 dog: three instances, partly found
    w.negative(w.pair(i4, "bird"))
    dog4 = w.pair(i4, "dog")
    w.truth(dog4, [rect(0, 10, 0, 10), rect(0, 10, 20, 30), rect(20, 30, 0, 10)])
    w.propose(dog4, (rect(0, 10, 0, 10), 0.7), (rect(0, 10, 20, 28), 0.6))
    imported(i4, "dog", rect(20, 30, 0, 10), 0.7)
    imported(i4, "dog", rect(0, 10, 0, 30), 0.49)
    # i5: decided by the AI only (ground truth under label sources ai and both, not human)
    dog5 = w.pair(i5, "dog")
    w.truth(dog5, [rect(0, 20, 0, 20)], by=Decider.AI)
    w.propose(dog5, (rect(0, 20, 0, 20), 0.9))
    imported(i5, "dog", rect(0, 20, 0, 15), 0.9)
    w.negative(w.pair(i5, "cat"), by=Decider.AI)
    session.flush()
    # the import, as `import-predictions --job oracle-job` makes it: it ran on every image of the job
    report = predictions.import_predictions(session, rows, model_name="oracle-import", version="1",
                                            ran_on=predictions.job_image_ids(session, [w.job.id]))
    assert not report.errors and report.images == 6
    # a second import covering two images only: rows on i0 dog, and i1 named (found nothing there)
    partial = predictions.import_predictions(session, [rows[0]], model_name="partial-import", version="1",
                                             ran_on=[i1])
    assert partial.images == 2 and partial.pairs == 1
    return w


@pytest.fixture
def workload(settings):  # type: ignore[no-untyped-def]
    with session_scope(settings.db_url) as s:
        return build(s, settings.media_path)


def close(ours: ProposerQuality, official: dict[str, float]) -> None:
    assert ours.cg_f1 / 100 == pytest.approx(official["cgF1"], abs=1e-6)
    assert ours.pm_f1 == pytest.approx(official["pmF1"], abs=1e-6)
    assert ours.il_mcc == pytest.approx(official["IL_MCC"], abs=1e-6)


@pytest.mark.parametrize("label_source", ["human", "both"])
def test_our_numbers_are_the_official_evaluators(settings, workload, tmp_path, label_source):
    with session_scope(settings.db_url) as s:
        export_saco(s, settings, tmp_path / "saco", ExportFilters(label_source=label_source, val_percent=0))
        report = quality_report(s, label_source=label_source, predictions_out=tmp_path / "scored")
    exported = tmp_path / "saco" / "saco_train.json"
    by_model = {p.model: p for p in report.proposers}
    assert set(by_model) == {"oracle-proposer:1", "oracle-import:1", "partial-import:1"}
    # instance-exhaustive pairs: i0 dog/cat, i1 dog/cat, i2 tree, i3 dog/cat, i4 bird/dog (+ i5 dog/cat for both)
    n_truth = 9 if label_source == "human" else 11
    flagged = [i for i in orjson.loads(exported.read_bytes())["images"] if i["is_instance_exhaustive"]]
    assert len(flagged) == n_truth
    for name in ("oracle-proposer:1", "oracle-import:1"):  # both ran on every image
        ours = by_model[name]
        assert ours.pairs == n_truth
        folder = Path(ours.files)
        results = folder / "predictions.json"
        close(ours, official_scores(exported, results))  # the export + the results that were scored
        close(ours, official_scores(folder / "ground_truth.json", results))  # the subset written beside them
        mine = evaluate_files(exported, results)  # our file reader on the same files
        assert (mine.cg_f1, mine.pm_f1, mine.il_mcc) == pytest.approx((ours.cg_f1 / 100, ours.pm_f1, ours.il_mcc),
                                                                     abs=1e-12)
        scores = orjson.loads((folder / "scores.json").read_bytes())
        assert scores["cgF1_x100"] == ours.cg_f1 and scores["label_source"] == label_source
    proposer = by_model["oracle-proposer:1"]
    # every image-level outcome occurs: found (i0 dog, i2 tree, i3 dog, i4 dog), false alarm (i0 cat,
    # i3 cat), missed (i1 dog), true negative (i1 cat, i4 bird)
    assert proposer.il_counts == ({"tp": 4, "fp": 2, "fn": 1, "tn": 2} if label_source == "human"
                                  else {"tp": 5, "fp": 2, "fn": 1, "tn": 3})
    # the partial import is scored on its images' pairs only: i0 dog/cat, i1 dog/cat
    partial = by_model["partial-import:1"]
    assert partial.pairs == 4 and partial.il_counts == {"tp": 1, "fp": 0, "fn": 1, "tn": 2}
    close(partial, official_scores(Path(partial.files) / "ground_truth.json", Path(partial.files) / "predictions.json"))


def test_an_import_is_scored_on_every_pair_of_its_images(settings, workload):
    """Seen bug: an imported version was scored only on the pairs carrying its masks, so its misses
    and true negatives vanished."""
    from engine.services.quality import ground_truth_pairs, scored_pairs

    with session_scope(settings.db_url) as s:
        truth = ground_truth_pairs(s, "human")
        partial = s.query(ModelVersion).filter_by(name="partial-import").one()
        with_masks = {m.pair_id for m in s.query(Mask).filter_by(model_version_id=partial.id)}
        scored = scored_pairs(s, partial, truth)
    p = workload.pairs
    i0, i1 = workload.images[:2]
    assert with_masks == {p[(i0, "dog")]}
    assert scored == sorted([p[(i0, "dog")], p[(i0, "cat")], p[(i1, "dog")], p[(i1, "cat")]])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_files_score_the_same(tmp_path, seed):
    """Seeded random SA-Co files on a 6×8 grid of small rectangles, where equal IoUs (ties), IoUs
    exactly at a threshold, duplicate predictions, scores around 0.5 and crowd masks are common:
    engine.domain.saco_eval on the files equals the official evaluator on them."""
    rng = np.random.default_rng(seed)
    shape = (6, 8)

    def box() -> dict:
        r0, c0 = int(rng.integers(0, 5)), int(rng.integers(0, 7))
        grid = np.zeros(shape, dtype=bool)
        grid[r0:int(rng.integers(r0 + 1, 7)), c0:int(rng.integers(c0 + 1, 9))] = True
        return encode_mask(grid).to_coco()

    images, annotations, results = [], [], []
    for pair_id in range(1, 401):
        images.append({"id": pair_id, "height": shape[0], "width": shape[1], "file_name": f"{pair_id}.png",
                       "is_instance_exhaustive": int(rng.random() < 0.9), "is_pixel_exhaustive": 1})
        for _ in range(int(rng.choice([0, 0, 1, 2, 3]))):
            annotations.append({"id": len(annotations) + 1, "image_id": pair_id, "category_id": 1,
                                "segmentation": box(), "bbox": [0, 0, 1, 1], "area": 0.1,
                                "iscrowd": int(rng.random() < 0.05)})
        for _ in range(int(rng.choice([0, 1, 2, 3]))):
            seg = box()
            for _ in range(1 + int(rng.random() < 0.1)):  # sometimes the same mask twice
                results.append({"image_id": pair_id, "category_id": 1, "segmentation": seg,
                                "score": float(rng.choice([0.3, 0.49, 0.5, 0.7, 0.9]))})
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_bytes(orjson.dumps({"images": images, "annotations": annotations,
                                      "categories": [{"id": 1, "name": "object"}]}))
    results_path.write_bytes(orjson.dumps(results))
    ours = evaluate_files(gt_path, results_path)
    official = official_scores(gt_path, results_path)
    assert (ours.cg_f1, ours.pm_f1, ours.il_mcc) == pytest.approx(
        (official["cgF1"], official["pmF1"], official["IL_MCC"]), abs=1e-6)
    assert all(ours.il_counts.values())  # every image-level outcome occurs
