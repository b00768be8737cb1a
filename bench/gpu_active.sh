#!/usr/bin/env bash
# The active-engine benchmarks on a GPU machine (issue 19, item 6), one command each:
#
#   bench/gpu_active.sh exemplar   [more arguments]   # exemplar re-proposal latency over HTTP, tiny and ~100 M SAM 3
#   bench/gpu_active.sh embedding  [more arguments]   # image embedding throughput (SAM 3 pooled, DINOv2), bf16 autocast
#   bench/gpu_active.sh search     [more arguments]   # similarity search at 1,000,000 vectors (USearch on the CPU cores)
#   bench/gpu_active.sh all                           # the three in turn
#
# Installs the project with scripts/setup-venv.sh (nothing else by hand: the package index, or a pip wheelhouse
# through PIP_FIND_LINKS/PIP_NO_INDEX, must be reachable the first time), checks that torch sees a CUDA device
# (exemplar, embedding), then runs the benchmark with every model on the GPU and torch using every core. The
# random-weight models are built offline into bench/results/cache on the first run. Prints the tables; the
# figures go to bench/results/<name>_cuda.json (search: similarity_search_gpu_host.json), and are copied
# to $OUT when it is set.
#
# exemplar: the product's adapters load fp32 and the server's runner thread calls them, so this one runs in
#           fp32 (a dtype setting of the adapters would be needed for bf16 there);
# embedding: fp32 and bf16 (torch.autocast around the embedder calls), batches 1 and 8;
# search:    USearch runs on the CPU (the index has no GPU path): the same 1 M run as on a CPU box, with
#            this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
[ $# -gt 0 ] && shift
scripts/setup-venv.sh
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
py=.venv/bin/python

check_gpu() {
  $py - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device: run this on a GPU machine")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
}

keep() {  # copy a result to $OUT when the caller gave one
  if [ -n "${OUT:-}" ] && [ -f "bench/results/$1.json" ]; then
    mkdir -p "$OUT" && cp "bench/results/$1.json" "$OUT/"
  fi
}

run_exemplar() {
  check_gpu
  $py -m bench.exemplar_latency --device cuda --threads "$(nproc)" --settle 5 "$@"
  keep exemplar_latency_cuda
}

run_embedding() {
  check_gpu
  $py -m bench.embedding_throughput --device cuda --threads "$(nproc)" --settle 5 "$@"
  keep embedding_throughput_cuda
  $py -m bench.embedding_throughput --device cuda --threads "$(nproc)" --settle 5 --autocast bf16 \
    --out embedding_throughput_cuda_bf16 "$@"
  keep embedding_throughput_cuda_bf16
}

run_search() {
  $py -m bench.similarity_search --out similarity_search_gpu_host "$@"
  keep similarity_search_gpu_host
}

case "$what" in
  exemplar) run_exemplar "$@" ;;
  embedding) run_embedding "$@" ;;
  search) run_search "$@" ;;
  all) run_exemplar; run_embedding; run_search ;;
  *) echo "usage: bench/gpu_active.sh exemplar|embedding|search|all [more arguments]" >&2; exit 2 ;;
esac
