#!/usr/bin/env bash
# The demo: set up ./.venv (first run only) and mine the bundled sample images into the embedded
# SQLite database under ./dataengine-data, in-process, with no other service. It runs the tiny
# random-weight models in-process, so the venv gets the models extra (torch, transformers, spaCy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh models
exec .venv/bin/dataengine demo "$@"
