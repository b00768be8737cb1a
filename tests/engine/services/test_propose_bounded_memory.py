"""A large image goes through propose with bounded peak memory, and its masks are stored at the
original size.

The whole chain up to propose runs in a child process (``dataengine mine --until propose --profile
tiny``, in-process execution, SQLite), whose own peak RSS (VmHWM) is read at its end. The tiny
SAM 3 has random weights: its masks are noise, only their count, size and memory matter. With the
proposal threshold at 0 every one of its 16 queries becomes a mask, for every phrase. Before the
model-side pixel budget, each phrase's 16 masks were post-processed at 6000×4000 as float32 and
int64 tensors (16 × 24 Mpx × 12 B ≈ 4.6 GB); now they are made at ≤ ``models.max_side`` and
encoded at the original size one at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[3]
WIDTH, HEIGHT = 6000, 4000
PEAK_BOUND_MB = 2048  # the tiny chain's own footprint (torch, transformers, models) is ~0.7–1 GiB

CHILD = """
import json, sys
from dataengine.cli.main import cli
try:
    cli.main(args=sys.argv[1:], standalone_mode=False)
finally:
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print("PEAK_KB " + json.dumps(hwm), flush=True)
"""


def _large_image(folder: Path) -> None:
    """A smooth 6000×4000 JPEG (small on disk, 24 Mpx decoded) with an alt-text sidecar."""
    y, x = np.mgrid[0:HEIGHT:8, 0:WIDTH:8]
    tile = np.stack([(x * 255 // WIDTH), (y * 255 // HEIGHT), ((x + y) % 256)], axis=-1).astype(np.uint8)
    Image.fromarray(tile).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR).save(folder / "big.jpg", quality=85)
    (folder / "big.txt").write_text("A striped cat sleeps on a red sofa next to a lamp.")


def _mine(tmp_path: Path, models_cache_dir: Path, source: Path, max_side: int) -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATAENGINE_DATA_DIR": str(tmp_path / "data"),
           "DATAENGINE_MODELS__CACHE_DIR": str(models_cache_dir),
           "DATAENGINE_MODELS__PROPOSE__SCORE_THRESHOLD": "0",  # every query of the tiny model is a mask
           "DATAENGINE_MODELS__MAX_SIDE": str(max_side)}
    env.pop("DATAENGINE_BROKER_URL", None)
    env.pop("DATAENGINE_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, "mine", str(source), "--until", "propose", "--profile", "tiny"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = [line for line in proc.stdout.splitlines() if line.startswith("PEAK_KB ")]
    return json.loads(peak[-1].split(" ", 1)[1]) // 1024


@pytest.mark.timeout(900)
def test_a_24_megapixel_image_is_proposed_within_the_memory_bound(tmp_path: Path, models_cache_dir: Path) -> None:
    source = tmp_path / "images"
    source.mkdir()
    _large_image(source)
    peak_mb = _mine(tmp_path, models_cache_dir, source, max_side=2048)  # the default

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'dataengine.db'}")
    with engine.connect() as conn:
        image = conn.execute(text("SELECT id, width, height FROM images")).one()
        stage = conn.execute(text("SELECT status, detail FROM stage_items WHERE stage = 'propose'")).one()
        masks = conn.execute(text("SELECT height, width, bbox_x, bbox_y, bbox_w, bbox_h, area FROM masks")).all()
    engine.dispose()
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert stage.status == "done", stage
    assert masks, "the tiny model at threshold 0 proposes masks for every phrase"
    for m in masks:  # stored at the original size, boxes and areas in original pixels
        assert (m.height, m.width) == (HEIGHT, WIDTH)
        assert 0 <= m.bbox_x and m.bbox_x + m.bbox_w <= WIDTH and 0 <= m.bbox_y and m.bbox_y + m.bbox_h <= HEIGHT
        assert 0 < m.area <= m.bbox_w * m.bbox_h
    assert max(m.bbox_w for m in masks) > 1024 or max(m.bbox_h for m in masks) > 1024  # not left at model size
    assert peak_mb < PEAK_BOUND_MB, f"peak RSS {peak_mb} MiB"
