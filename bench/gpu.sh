#!/usr/bin/env bash
# The GPU benchmark in one command (issue 21 item 5): real-size random-weight SAM 3, SAM 3 tracker,
# Llama 3.2 Vision 11 B (bf16) and SAM 3 video models built on the GPU, measured through the product's adapters
# within a time budget (default 360 s; steps that would overrun are skipped and listed).
#
#   bench/gpu.sh [more arguments for python -m bench.gpu, e.g. --budget-s 300 --only sam3,mllama]
#
# Needs the project's Python dependencies (torch with CUDA, transformers, pillow, numpy): when ./.venv is missing
# it is made with scripts/setup-venv.sh (the package index, or a pip wheelhouse through PIP_FIND_LINKS/
# PIP_NO_INDEX, must be reachable the first time); on a machine whose Python already has torch and transformers
# (the device machine: see /work/.library/device/README.md for wheels that travel in .whl), set
# DATAENGINE_PYTHON=python3 to use that interpreter instead. Nothing is downloaded: the models are built from
# their configs. The figures go to bench/results/gpu.json and gpu.md, and to $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${DATAENGINE_PYTHON:-}"
if [ -z "$py" ]; then
  [ -x .venv/bin/python ] || scripts/setup-venv.sh
  py=.venv/bin/python
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$py" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device: run this on a GPU machine (or: python -m bench.gpu --smoke)")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec "$py" -m bench.gpu --device cuda "$@"
