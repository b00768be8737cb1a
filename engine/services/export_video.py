"""Video exports: SA-Co/VEval (with each proposer version's predictions) and YTVIS instances.

``dataengine export saco_veval`` writes, per split (train/val by the video's sha256, as images):

- ``saco_veval_<split>.json``: the SA-Co/VEval ground truth (engine/domain/veval.py has the keys,
  checked against Meta's evaluator): the videos with their sampled frames' file names (store keys),
  one annotation per ground-truth masklet with its per-frame RLE over all sampled frames (``None``
  where absent), one category per phrase, and every video–phrase pair, negatives included. The video
  evaluator scores every pair as exhaustive, so only instance-exhaustive pairs are written (negatives,
  and exhaustive pairs without a crowd masklet); partial pairs and pairs with a crowd masklet are
  counted in the manifest (``partial_pairs_left_out``, ``crowd_pairs_left_out``) and left out.
- ``predictions/<version id>-<name>-<version>.<split>.json``: per proposer (or imported predictions)
  version with masklets on those pairs, its masklets in the evaluator's prediction format (per-frame
  RLE, boxes, areas and the masklet's score), whatever their state: the official evaluator scores the
  version with ``VEvalEvaluator(gt, out).run_eval(predictions)`` (tests/veval_oracle.py runs it).

``dataengine export ytvis`` writes ``ytvis_<split>.json``: every ground-truth masklet (partial pairs
too) as a YTVIS instance, one category per phrase, no pairs.

Ground truth is the one definition (engine/domain/ground_truth.py) under the filters' label source,
through the image exports' filters (export_rows.py); rows are read per video on the export's own
snapshot connection and written by streaming writers, sorted by ids, so the same data gives the same
bytes; engine/services/export.py stages, hashes and records the snapshot as for images.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from engine.domain import veval
from engine.domain.exports import SPLITS, split_of
from engine.services.export_rows import (
    ExportFilters,
    HashingWriter,
    JsonArray,
    Progress,
    Stats,
    dumps,
    tick,
)
from engine.services.export_video_rows import (
    PairRows,
    VideoRows,
    predicted_masks,
    prediction_versions,
    tracks,
    videos,
)

__all__ = ["VIDEO_WRITERS", "write_saco_veval", "write_ytvis"]
PREDICTIONS = "predictions"


class _DocFile:
    """One JSON object streamed into a file: ``annotations`` straight in, the other arrays into side
    files appended at the end (as export_formats' COCO files)."""

    def __init__(self, folder: Path, name: str, sides: tuple[str, ...]) -> None:
        self.name = name
        self.out = HashingWriter(folder / name)
        self.out.write(b'{"annotations":')
        self.annotations = JsonArray(self.out)
        self.side_paths = {key: folder / f".{name}.{key}.part" for key in sides}
        self.side_files = {key: open(path, "wb", buffering=1 << 20) for key, path in self.side_paths.items()}  # noqa: SIM115
        self.sides = {key: JsonArray(handle) for key, handle in self.side_files.items()}

    def finish(self, categories: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
        self.annotations.end()
        self.out.write(b',"categories":' + dumps(categories) + b',"info":' + dumps(info))
        for key in sorted(self.sides):  # the object's keys stay sorted: videos < video_np_pairs
            self.sides[key].end()
            self.side_files[key].close()
            self.out.write(f',"{key}":'.encode())
            with open(self.side_paths[key], "rb") as side:
                shutil.copyfileobj(side, self.out)
            self.side_paths[key].unlink()
        self.out.write(b"}")
        return self.out.close()

    def abandon(self) -> None:
        for handle in self.side_files.values():
            handle.close()
        for path in self.side_paths.values():
            path.unlink(missing_ok=True)
        self.out.abandon()


class _Predictions:
    """The prediction files, one per (version, split), opened when the version has a masklet there."""

    def __init__(self, folder: Path, labels: dict[int, str]) -> None:
        self.folder, self.labels = folder / PREDICTIONS, labels
        self.files: dict[tuple[int, str], tuple[HashingWriter, JsonArray]] = {}

    def add(self, version_id: int, split: str, item: bytes) -> None:
        key = (version_id, split)
        if key not in self.files:
            self.folder.mkdir(exist_ok=True)
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{version_id}-{self.labels[version_id]}")[:120]
            out = HashingWriter(self.folder / f"{slug}.{split}.json")
            self.files[key] = (out, JsonArray(out))
        self.files[key][1].add(item)

    def finish(self) -> dict[str, Any]:
        done = {}
        for out, array in self.files.values():
            array.end()
            done[f"{PREDICTIONS}/{out.path.name}"] = out.close()
        return done

    def abandon(self) -> None:
        for out, _ in self.files.values():
            out.abandon()


def _annotations(conn: Connection, video: VideoRows, pairs: list[PairRows]) -> list[bytes]:
    masks = [m for p in pairs for m in p.masks]
    by_mask = tracks(conn, masks, video.frame_count)
    return [dumps(veval.annotation(m.id, video.id, p.concept_id, p.phrase, crowd=m.crowd, height=m.height,
                                   width=m.width, masklet=by_mask[m.id]))
            for p in pairs for m in p.masks]


def _video_entry(video: VideoRows) -> bytes:
    return dumps(veval.video_entry(video.id, video.width, video.height, video.file_names))


def _write_predictions(conn: Connection, video: VideoRows, pairs: list[PairRows], split: str,
                       out: _Predictions, counts: Counter[str], stats: Stats) -> None:
    concept = {p.id: p.concept_id for p in pairs}
    masks = predicted_masks(conn, sorted(concept), sorted(out.labels))
    by_mask = tracks(conn, masks, video.frame_count)
    for m in masks:
        assert m.version_id is not None and m.pair_id is not None
        out.add(m.version_id, split, dumps(veval.prediction(video.id, concept[m.pair_id], m.score, by_mask[m.id])))
        stats.versions.add(m.version_id)  # the manifest names the versions whose predictions it holds
        counts["predictions"] += 1


def write_saco_veval(conn: Connection, filters: ExportFilters, folder: Path, stats: Stats,
                     progress: Progress | None) -> dict[str, Any]:
    files = {split: _DocFile(folder, f"saco_veval_{split}.json", ("video_np_pairs", "videos")) for split in SPLITS}
    preds = _Predictions(folder, prediction_versions(conn))
    concepts: dict[int, str] = {}
    counts = {split: Counter[str]() for split in SPLITS}
    try:
        for video in videos(conn, filters):
            split = split_of(video.sha256, filters.val_percent)
            c, out = counts[split], files[split]
            scored = [p for p in video.pairs if p.instance_exhaustive]
            for p in video.pairs:
                if not p.instance_exhaustive:
                    c["crowd_pairs_left_out" if p.exhaustive and p.masks else "partial_pairs_left_out"] += 1
            if not scored:
                continue
            annotations = _annotations(conn, video, scored)
            out.annotations.extend(annotations)
            out.sides["videos"].add(_video_entry(video))
            for p in scored:
                concepts[p.concept_id] = p.phrase
                stats.versions.add(p.version_id)
                out.sides["video_np_pairs"].add(dumps(veval.np_pair(p.id, video.id, p.concept_id, p.phrase,
                                                                     len(p.masks))))
                c["negative_pairs" if p.negative else "positive_pairs"] += 1
            _write_predictions(conn, video, scored, split, preds, c, stats)
            c["videos"] += 1
            c["annotations"] += len(annotations)
            tick(stats, progress, len(annotations) + len(scored))
        info = {**veval.INFO, "format": veval.FORMAT_SACO_VEVAL}
        written = {f.name: f.finish(veval.categories(concepts), info) for f in files.values()}
        written.update(preds.finish())
    except BaseException:
        for f in files.values():
            f.abandon()
        preds.abandon()
        raise
    stats.merge(counts)
    return written


def write_ytvis(conn: Connection, filters: ExportFilters, folder: Path, stats: Stats,
                progress: Progress | None) -> dict[str, Any]:
    files = {split: _DocFile(folder, f"ytvis_{split}.json", ("videos",)) for split in SPLITS}
    concepts: dict[int, str] = {}
    counts = {split: Counter[str]() for split in SPLITS}
    try:
        for video in videos(conn, filters):
            positive = [p for p in video.pairs if p.masks]
            if not positive:
                continue
            split = split_of(video.sha256, filters.val_percent)
            annotations = _annotations(conn, video, positive)
            files[split].annotations.extend(annotations)
            files[split].sides["videos"].add(_video_entry(video))
            for p in positive:
                concepts[p.concept_id] = p.phrase
                stats.versions.add(p.version_id)
            counts[split]["videos"] += 1
            counts[split]["annotations"] += len(annotations)
            tick(stats, progress, len(annotations) + 1)
        info = {**veval.INFO, "format": veval.FORMAT_YTVIS}
        written = {f.name: f.finish(veval.categories(concepts), info) for f in files.values()}
    except BaseException:
        for f in files.values():
            f.abandon()
        raise
    stats.merge(counts)
    return written


VIDEO_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    veval.FORMAT_SACO_VEVAL: write_saco_veval, veval.FORMAT_YTVIS: write_ytvis}
