#!/usr/bin/env bash
# The video benchmark on a GPU machine, in one command (issue 18, item 8):
#
#   bench/gpu_video.sh [more arguments for python -m bench.video]
#
# Installs the project with scripts/setup-venv.sh (nothing else by hand: the package index, or a pip
# wheelhouse through PIP_FIND_LINKS/PIP_NO_INDEX, must be reachable the first time), checks that torch
# sees a CUDA device, then runs the whole benchmark with every model on the GPU: masklet proposal on
# the tiny and the ~100 M parameter configs at full length (100 frames each; the video model against
# the image model on every frame), peak RSS (host) and GPU memory at 100 and 1,000 frames, and the
# click-to-first-propagated-frame latency through the page's API (PostgreSQL when
# DATAENGINE_BENCH_PG or the local server answers, else SQLite) and on the tracker itself.
# Prints the tables; the figures go to bench/results/video_cuda.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
.venv/bin/python - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device: run this on a GPU machine")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec .venv/bin/python -m bench.video --device cuda --threads "$(nproc)" --settle 5 \
  --tiny-frames 100 --mid-frames 100 --rss-frames 100,1000 --clicks 7 "$@"
