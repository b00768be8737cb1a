"""Video exports on both databases: SA-Co/VEval (ground truth, negatives, per-frame RLE over every
sampled frame, each proposer version's predictions) and YTVIS; the official SA-Co video evaluator
(tests/veval_oracle.py) reads the export unchanged and scores a perfect proposer at its maximum and a
degraded one lower."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from engine.db.models import (
    Concept,
    ImageConcept,
    MaskletFrame,
    MiningJob,
    PairOrigin,
    Polarity,
    StageItem,
    Video,
    VideoFrame,
)
from engine.db.session import session_scope
from engine.domain import decisions as dm
from engine.domain.masks import encode_mask
from engine.domain.vocabulary import JobStatus, MediaKind, ModelKind, StageStatus
from engine.repositories.labels import add_mask
from engine.repositories.model_versions import get_or_create
from engine.services import decide, propose
from engine.services.export import ExportFilters, commit_or_discard, export_dataset, verify_files
from tests import veval_oracle

W, H, FRAMES = 32, 24, 8
Box = tuple[int, int, int, int] | None  # x, y, w, h on a frame; None: absent


@dataclass
class Seeded:
    videos: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    masks: dict[str, int] = field(default_factory=dict)  # the accepted (ground-truth) masklets
    good: int = 0  # proposer version whose masklets are the ground truth
    bad: int = 0  # proposer version with a miss, a shifted masklet and a false positive
    concepts: dict[str, int] = field(default_factory=dict)


def moving(x: int, y: int, size: int, dx: int = 1, absent: tuple[int, ...] = ()) -> list[Box]:
    return [None if i in absent else (x + dx * i, y, size, size) for i in range(FRAMES)]


def grid(box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    m = np.zeros((H, W), dtype=bool)
    m[y:y + h, x:x + w] = True
    return m


def add_masklet(session, pair_id: int, version_id: int, boxes: list[Box], score: float, crowd: bool = False) -> int:
    present = [(i, encode_mask(grid(b))) for i, b in enumerate(boxes) if b is not None]
    largest = max(present, key=lambda p: p[1].area)[1]
    mask = add_mask(session, pair_id, version_id, largest, score=score, is_crowd=crowd)
    mask.first_frame, mask.last_frame = present[0][0], present[-1][0]
    session.flush()
    for i, rle in present:
        x, y, w, h = rle.bbox
        session.add(MaskletFrame(mask_id=mask.id, frame_index=i, rle_counts=rle.counts, bbox_x=x, bbox_y=y, bbox_w=w,
                                 bbox_h=h, area=rle.area, score=score))
    session.flush()
    return mask.id


def _video(session, name: str) -> int:
    sha = hashlib.sha256(name.encode()).hexdigest()
    video = Video(sha256=sha, phash=0, phash_b0=0, phash_b1=0, phash_b2=0, phash_b3=0, keyframe_phashes=[],
                  width=W, height=H, fps=6.0, duration_s=FRAMES / 6, source_frames=FRAMES, sample_fps=6.0,
                  frame_count=FRAMES, container="mp4", codec="h264", byte_size=1000, storage_key=f"v/{name}.mp4")
    session.add(video)
    session.flush()
    session.add_all(VideoFrame(video_id=video.id, index=i, timestamp_s=i / 6, storage_key=f"f/{name}/{i:05d}.jpg",
                               width=W, height=H) for i in range(FRAMES))
    return video.id


def _pair(session, seeded: Seeded, video: str, phrase: str) -> ImageConcept:
    if phrase not in seeded.concepts:
        concept = Concept(text=phrase)
        session.add(concept)
        session.flush()
        seeded.concepts[phrase] = concept.id
    pair = ImageConcept(video_id=seeded.videos[video], concept_id=seeded.concepts[phrase], polarity=Polarity.UNKNOWN,
                        origin=PairOrigin.CAPTION)
    session.add(pair)
    session.flush()
    seeded.pairs[f"{video}:{phrase}"] = pair.id
    return pair


HUMAN_PAIR_LABEL = {"exhaustive": "complete", "negative": "not_present"}


def _route(session, pair_id: int, accept: list[int], reject: list[int], pair_label: str | None,
           human: bool = False) -> None:
    """Decisions through the decision model: as the router writes them, or (``human``) as a person's
    verify_mask and check_exhaustivity verdicts decide."""
    for mask_id, label in [(m, "accept") for m in accept] + [(m, "reject") for m in reject]:
        facts = decide.facts(session, pair_id)
        outcome = dm.judge_mask(facts, mask_id, label, task_id=None) if human else dm.route_mask(facts, mask_id, label)
        decide.write(session, pair_id, outcome)
        session.flush()
    if pair_label:
        facts = decide.facts(session, pair_id)
        outcome = (dm.judge_pair(facts, HUMAN_PAIR_LABEL[pair_label], task_id=None) if human
                   else dm.route_pair(facts, pair_label))
        decide.write(session, pair_id, outcome)
        session.flush()


def seed_videos(session, human: bool = False) -> Seeded:
    """Two 8-frame videos of a video job, both proposed by two versions, decided by the router
    (label source ``ai``), or by people with ``human``:

    - a:ball — exhaustive, two masklets (one absent on frames 0-1); a:cube — negative;
      a:cone — partial (one accepted masklet, no exhaustive claim)
    - b:ball — exhaustive, one masklet; b:cube — negative; b:cone — exhaustive with a crowd masklet
    The good proposer's masklets are the accepted ones; the bad one missed a:ball's second masklet,
    drew b:ball's shifted by half its width, and put a masklet on the negative a:cube (rejected).
    """
    s = Seeded()
    s.good = get_or_create(session, ModelKind.PROPOSER, "test-video-proposer/sam3-video", "good").id
    s.bad = get_or_create(session, ModelKind.PROPOSER, "test-video-proposer/sam3-video", "bad").id
    s.videos = {"a": _video(session, "a"), "b": _video(session, "b")}
    for version in (s.good, s.bad):  # each version proposed both videos, in a video job of its own
        job = MiningJob(name=f"videos-{version}", source_uri="/videos", source_kind="folder", status=JobStatus.DONE,
                        options={"media": MediaKind.VIDEO.value})
        session.add(job)
        session.flush()
        session.add_all(StageItem(job_id=job.id, stage=propose.STAGE, subject_id=video_id, model_version_id=version,
                                  status=StageStatus.DONE) for video_id in s.videos.values())
    plan = {  # pair → ground-truth masklet boxes
        "a:ball": [moving(2, 2, 6), moving(20, 12, 5, dx=-1, absent=(0, 1))], "b:ball": [moving(4, 10, 8)],
        "a:cone": [moving(10, 2, 4)], "b:cone": [moving(1, 16, 6)]}
    for key in ("a:ball", "a:cube", "a:cone", "b:ball", "b:cube", "b:cone"):
        video, phrase = key.split(":")
        pair = _pair(session, s, video, phrase)
        for n, boxes in enumerate(plan.get(key, [])):
            s.masks[f"{key}:{n}"] = add_masklet(session, pair.id, s.good, boxes, 0.9 - 0.05 * n, crowd=key == "b:cone")
    bad = [add_masklet(session, s.pairs["a:ball"], s.bad, plan["a:ball"][0], 0.8),
           add_masklet(session, s.pairs["b:ball"], s.bad, moving(8, 10, 8), 0.7),
           add_masklet(session, s.pairs["a:cube"], s.bad, moving(12, 12, 5), 0.95)]
    _route(session, s.pairs["a:ball"], [s.masks["a:ball:0"], s.masks["a:ball:1"]], [bad[0]], "exhaustive", human)
    _route(session, s.pairs["b:ball"], [s.masks["b:ball:0"]], [bad[1]], "exhaustive", human)
    _route(session, s.pairs["a:cube"], [], [bad[2]], "negative", human)
    _route(session, s.pairs["b:cube"], [], [], "negative", human)
    _route(session, s.pairs["a:cone"], [s.masks["a:cone:0"]], [], None, human)
    _route(session, s.pairs["b:cone"], [s.masks["b:cone:0"]], [], "exhaustive", human)
    session.flush()
    return s


@pytest.fixture
def seeded(settings) -> Seeded:
    with session_scope(settings.db_url) as s:
        return seed_videos(s)


def export(settings, fmt: str, out: Path, **filters):
    with session_scope(settings.db_url) as s:
        result = export_dataset(s, settings, fmt, out, ExportFilters(val_percent=0, **filters))
        commit_or_discard(s, result)
    return result


def decode(segmentation) -> np.ndarray:
    return mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()}).astype(bool)


def test_saco_veval_holds_the_instance_exhaustive_pairs_with_every_frame(settings, seeded, tmp_path):
    result = export(settings, "saco_veval", tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "saco_veval_train.json").read_bytes())
    assert set(doc) == {"annotations", "categories", "info", "videos", "video_np_pairs"}
    pairs = {(p["video_id"], p["noun_phrase"]): p for p in doc["video_np_pairs"]}
    a, b = seeded.videos["a"], seeded.videos["b"]
    assert set(pairs) == {(a, "ball"), (a, "cube"), (b, "ball"), (b, "cube")}  # no partial, no crowd pair
    assert pairs[(a, "cube")]["num_masklets"] == 0 and pairs[(a, "ball")]["num_masklets"] == 2
    assert {p["id"] for p in pairs.values()} == {seeded.pairs[k] for k in ("a:ball", "a:cube", "b:ball", "b:cube")}
    assert result.manifest["counts"]["train"] == {
        "videos": 2, "annotations": 3, "positive_pairs": 2, "negative_pairs": 2, "partial_pairs_left_out": 1,
        "crowd_pairs_left_out": 1, "predictions": 6}
    videos = {v["id"]: v for v in doc["videos"]}
    assert videos[a] == {"id": a, "width": W, "height": H, "length": FRAMES,
                         "file_names": [f"f/a/{i:05d}.jpg" for i in range(FRAMES)]}
    assert {c["name"] for c in doc["categories"]} == {"ball", "cube"}
    second = next(x for x in doc["annotations"] if x["id"] == seeded.masks["a:ball:1"])
    assert len(second["segmentations"]) == len(second["bboxes"]) == len(second["areas"]) == FRAMES
    assert second["segmentations"][:2] == [None, None] and second["bboxes"][:2] == [None, None]
    assert (second["iscrowd"], second["noun_phrase"], second["category_id"]) == (0, "ball", seeded.concepts["ball"])
    for i, box in enumerate(moving(20, 12, 5, dx=-1, absent=(0, 1))):
        if box is not None:
            assert np.array_equal(decode(second["segmentations"][i]), grid(box))
            assert second["bboxes"][i] == [float(v) for v in box] and second["areas"][i] == 25
    assert verify_files(tmp_path / "out", result.manifest) == []


def test_saco_veval_predictions_per_proposer_version(settings, seeded, tmp_path):
    result = export(settings, "saco_veval", tmp_path / "out")
    files = sorted(f for f in result.manifest["files"] if f.startswith("predictions/"))
    assert files == [f"predictions/{seeded.good}-test-video-proposer_sam3-video_good.train.json",
                     f"predictions/{seeded.bad}-test-video-proposer_sam3-video_bad.train.json"]
    bad = json.loads((tmp_path / "out" / files[1]).read_bytes())
    assert {(p["video_id"], p["category_id"], p["score"]) for p in bad} == {
        (seeded.videos["a"], seeded.concepts["ball"], 0.8), (seeded.videos["b"], seeded.concepts["ball"], 0.7),
        (seeded.videos["a"], seeded.concepts["cube"], 0.95)}  # rejected masklets too: what the model said
    assert all(len(p["segmentations"]) == FRAMES for p in bad)


def test_ytvis_lists_every_ground_truth_masklet(settings, seeded, tmp_path):
    result = export(settings, "ytvis", tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "ytvis_train.json").read_bytes())
    assert set(doc) == {"annotations", "categories", "info", "videos"}
    assert {a["id"] for a in doc["annotations"]} == set(seeded.masks.values())  # partial and crowd included
    crowd = next(a for a in doc["annotations"] if a["id"] == seeded.masks["b:cone:0"])
    assert crowd["iscrowd"] == 1
    assert {c["name"] for c in doc["categories"]} == {"ball", "cone"}
    assert result.manifest["counts"]["train"] == {"videos": 2, "annotations": 5}


def test_the_same_data_gives_the_same_bytes_and_filters_apply(settings, seeded, tmp_path):
    first = export(settings, "saco_veval", tmp_path / "one")
    second = export(settings, "saco_veval", tmp_path / "two")
    assert first.manifest_sha256 == second.manifest_sha256 and second.reused
    only = export(settings, "saco_veval", tmp_path / "cube", concepts=("cube",))
    doc = json.loads((tmp_path / "cube" / "saco_veval_train.json").read_bytes())
    assert {p["noun_phrase"] for p in doc["video_np_pairs"]} == {"cube"} and doc["annotations"] == []
    assert only.manifest["counts"]["train"]["negative_pairs"] == 2
    human = export(settings, "saco_veval", tmp_path / "human", label_source="human")
    assert human.manifest["counts"]["train"].get("videos", 0) == 0  # the router decided everything


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_official_evaluator_reads_the_export(settings, seeded, tmp_path):
    if not veval_oracle.available():
        pytest.fail(f"{veval_oracle.PYTHON} is missing: run scripts/setup-venv.sh dev")
    export(settings, "saco_veval", tmp_path / "out")
    export(settings, "ytvis", tmp_path / "ytvis")
    gt = tmp_path / "out" / "saco_veval_train.json"
    good_preds = tmp_path / "out" / "predictions" / f"{seeded.good}-test-video-proposer_sam3-video_good.train.json"
    bad_preds = tmp_path / "out" / "predictions" / f"{seeded.bad}-test-video-proposer_sam3-video_bad.train.json"
    good, bad, ytvis = veval_oracle.official_runs([(gt, good_preds), (gt, bad_preds),
                                                   (tmp_path / "ytvis" / "ytvis_train.json", good_preds)])
    assert good[veval_oracle.CGF1] == pytest.approx(1.0, abs=2e-4)  # its maximum: 1 less the 1e-4 smoothing
    assert good[veval_oracle.PHOTA] == pytest.approx(1.0) and good["video_mask_phrase_ap_50_95"] == pytest.approx(1.0)
    assert bad[veval_oracle.CGF1] < good[veval_oracle.CGF1] - 0.1
    assert bad[veval_oracle.PHOTA] < good[veval_oracle.PHOTA]
    # the YTVIS export through the same loaders: class mAP per phrase; the proposer found the balls, not the cone
    assert 0.0 < ytvis["video_mask_mAP_50_95"] < 1.0


def test_the_manifest_names_the_prediction_versions(settings, seeded, tmp_path):
    result = export(settings, "saco_veval", tmp_path / "out")
    assert {seeded.good, seeded.bad} <= {v["id"] for v in result.manifest["model_versions"]}
