#!/usr/bin/env bash
# The official SA-Co evaluator for the tests and bench/metrics.py: Meta's sam3 package, installed
# without its dependencies into .venv/sam3-oracle (idempotent: a stamp file records the version).
# Nothing imports the sam3 package (its __init__ loads the model code and it pins huggingface-hub
# and numpy below what the project uses): tests/saco_oracle.py loads sam3/eval/cgf1_eval.py by
# its path, and that file needs only numpy, pycocotools, scipy and tqdm, all already in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.1.4
target=.venv/sam3-oracle
stamp="$target/.installed-sam3-$version"
if [ ! -f "$stamp" ]; then
  echo "installing the official SA-Co evaluator (sam3==$version, no dependencies) into $target"
  rm -rf "$target"
  .venv/bin/python -m pip install --quiet --no-deps --no-compile --target "$target" "sam3==$version"
  test -f "$target/sam3/eval/cgf1_eval.py"
  touch "$stamp"
fi
