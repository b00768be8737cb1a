"""The official SA-Co evaluator as an oracle: ``sam3/eval/cgf1_eval.py`` from Meta's ``sam3``
package (0.1.4), which scripts/setup-oracle.sh installs without dependencies into
``.venv/sam3-oracle`` (``scripts/setup-venv.sh dev`` runs it). The ``sam3`` package itself is
never imported: this loads that one file by its path (it needs numpy, pycocotools, scipy and tqdm).
Used by the tests and by bench/metrics.py."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
ORACLE_DIR = Path(os.environ.get("DATAENGINE_SAM3_ORACLE", REPO / ".venv" / "sam3-oracle"))
EVALUATOR = ORACLE_DIR / "sam3" / "eval" / "cgf1_eval.py"
KEYS = {"cgF1": "cgF1_eval_segm_cgF1", "pmF1": "cgF1_eval_segm_positive_micro_F1",
        "IL_MCC": "cgF1_eval_segm_IL_MCC"}


class OracleMissing(RuntimeError):
    pass


@cache
def official_module() -> ModuleType:
    if not EVALUATOR.is_file():
        raise OracleMissing(f"{EVALUATOR} is missing: run scripts/setup-venv.sh dev "
                            "(it installs sam3==0.1.4 with --no-deps into .venv/sam3-oracle)")
    spec = importlib.util.spec_from_file_location("sam3_official_cgf1_eval", EVALUATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_scores(gt_path: Path | str, results_path: Path | str) -> dict[str, float]:
    """cgF1, pmF1 (positive micro F1) and IL_MCC as ``CGF1Evaluator(gt).evaluate(results)``
    gives them (fractions, means over the IoU thresholds); its printing is swallowed."""
    module = official_module()
    with contextlib.redirect_stdout(io.StringIO()):
        out = module.CGF1Evaluator(str(gt_path)).evaluate(str(results_path))
    return {name: float(out[key]) for name, key in KEYS.items()}
