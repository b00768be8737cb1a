"""The GPU benchmark's smoke run (``python -m bench.gpu --smoke``): the same code paths as the GPU run, with the
tiny configs on the CPU, so that bench/gpu.py cannot rot between the rare runs on a GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.models


def test_gpu_benchmark_smoke_run_measures_every_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import gpu

    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    out = tmp_path / "gpu_smoke.json"
    assert gpu.main(["--smoke", "--strict", "--out", str(out)]) == 0

    report = json.loads(out.read_text())
    assert report["errors"] == [] and report["skipped"] == []
    results = report["results"]
    assert set(results) == {"sam3", "tracker", "mllama", "video"}
    sam3 = results["sam3"]["variants"]
    assert {"bf16", "fp32", "bf16+compile", "bf16 naive"} <= set(sam3)
    assert sam3["bf16"]["images_per_s"] > 0 and sam3["bf16"]["phrases_per_s"] > 0
    assert sam3["bf16 naive"]["reuse_speedup"] is not None
    tracker = results["tracker"]["variants"]
    assert tracker["bf16"]["click_cached"]["calls"] >= 1 and tracker["bf16"]["cache"]["hits"] >= 1
    assert "bf16+compile" in tracker
    mllama = results["mllama"]["variants"]["bf16"]
    assert mllama["mv_batch2"]["scores_per_s"] > 0 and mllama["ev_batch2"]["scores_per_s"] > 0
    video = results["video"]["variants"]["bf16 autocast"]
    assert video["frames"] == 2 and video["frames_per_s"] > 0
    for record in results.values():
        assert record["parameters"] > 0

    table = out.with_suffix(".md").read_text()
    assert "| sam3" in table and "| mllama" in table and "frames/s" in table
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu_smoke.json", "gpu_smoke.md"]
