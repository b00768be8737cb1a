"""The official SA-Co video evaluator as an oracle: ``VEvalEvaluator(gt, out).run_eval(pred)`` from
Meta's ``sam3`` package (0.1.4, ``sam3/eval/saco_veval_eval.py``), run in its own venv
(``.venv/sam3-veval``, made by scripts/setup-oracle-video.sh, which ``scripts/setup-venv.sh dev``
runs) as a subprocess: it imports the package's model code and pins packages .venv does not hold.
All five of its evaluators run (class mAP, phrase AP, TETA, phrase HOTA, demo F1 / cgF1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("DATAENGINE_SAM3_VEVAL", REPO / ".venv" / "sam3-veval"))
PYTHON = VENV / "bin" / "python"
TIMEOUT_S = 300
_RUN = """
import json, sys, contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    from sam3.eval.saco_veval_eval import VEvalEvaluator
    runs = zip(*[iter(sys.argv[1:])] * 2)
    results = [VEvalEvaluator(gt, pred + ".eval.json").run_eval(pred)["dataset_results"] for gt, pred in runs]
print(json.dumps(results))
"""
#: the demo F1 keys of the masks (segm) at IoU 0.5:0.95, and the phrase HOTA
CGF1 = "video_mask_demo_cgf1_micro_50_95"
PMF1 = "video_mask_demo_positive_micro_f1_50_95"
IL_MCC = "video_mask_demo_ilmcc_50_95"
PHOTA = "video_mask_all_phrase_HOTA"


class OracleMissing(RuntimeError):
    pass


def available() -> bool:
    return PYTHON.is_file()


def official_results(gt_path: Path | str, *pred_paths: Path | str) -> list[dict[str, Any]]:
    """``dataset_results`` of the official evaluator on a ground-truth file and each prediction file."""
    return official_runs([(gt_path, pred) for pred in pred_paths])


def official_runs(runs: list[tuple[Path | str, Path | str]]) -> list[dict[str, Any]]:
    """``dataset_results`` of the official evaluator on each (ground-truth file, prediction file), in
    one process (its imports take seconds); its full result, per video–phrase pair too, is written
    beside each prediction file (``<pred>.eval.json``)."""
    if not available():
        raise OracleMissing(f"{PYTHON} is missing: run scripts/setup-venv.sh dev (or scripts/setup-oracle-video.sh)")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    args = [str(path) for run in runs for path in run]
    done = subprocess.run([str(PYTHON), "-c", _RUN, *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=env, cwd=Path(runs[0][0]).parent, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the official evaluator failed ({done.returncode}):\n{done.stderr[-4000:]}")
    results: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


if __name__ == "__main__":  # python tests/veval_oracle.py GT PRED...
    print(json.dumps(official_results(sys.argv[1], *sys.argv[2:]), indent=2, sort_keys=True))
