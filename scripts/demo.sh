#!/usr/bin/env bash
# The demo: set up ./.venv (first run only) and mine the bundled sample images into the embedded
# SQLite database under ./dataengine-data, in-process, with no other service.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
exec .venv/bin/dataengine demo "$@"
