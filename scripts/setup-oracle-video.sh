#!/usr/bin/env bash
# The official SA-Co video evaluator (sam3/eval/saco_veval_eval.py: VEvalEvaluator) for the tests and
# `dataengine report`: Meta's sam3 package in a venv of its own, .venv/sam3-veval (idempotent: a stamp
# file records what was installed). Unlike the image evaluator (scripts/setup-oracle.sh) it imports
# the package's model code (sam3/__init__ -> sam3.model, sam3.train: torch, torchvision, timm,
# einops, iopath, huggingface_hub) and pins huggingface-hub<2.0, tqdm<4.68, typing_extensions<4.16,
# which .venv does not satisfy. So this venv holds sam3 and those small pinned packages, and borrows
# the heavy ones (torch 2.14.1 + torchvision 0.29.1, numpy, scipy, pycocotools) from .venv through a
# .pth file that puts .venv's site-packages AFTER its own on sys.path: the CPU torch 2.13.0 wheel on
# this disk cannot run PyPI's torchvision ("operator torchvision::nms does not exist"), and a second
# copy of the matching pair would cost 5.5 GB. Checked: all five of VEvalEvaluator's evaluators (class
# mAP, phrase AP, TETA, phrase HOTA, demo F1 / cgF1) run on the CPU with these packages.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.1.4
target=.venv/sam3-veval
main_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp="$target/.installed-sam3-$version-$(echo "$main_site" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing the official SA-Co video evaluator (sam3==$version) into $target"
  rm -rf "$target"
  python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
  "$python" -m venv "$target"
  # exact versions inside sam3's own ranges; --no-deps: everything else comes from .venv
  "$target/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "sam3==$version" "timm==1.0.31" "huggingface-hub==1.33.0" "einops==0.8.2" "iopath==0.1.10" \
    "portalocker==4.4.2" "ftfy==6.3.1" "tqdm==4.67.3" "typing_extensions==4.15.0"
  site=$("$target/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$main_site" > "$site/zz-dataengine-venv.pth"
  "$target/bin/python" -c 'from sam3.eval.saco_veval_eval import VEvalEvaluator' 2>/dev/null
  touch "$stamp"
fi
