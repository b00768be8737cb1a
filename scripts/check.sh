#!/usr/bin/env bash
# The checked conventions, before the tests (.ci/run → scripts/test.sh → this): lint (ruff), types
# (mypy: strict on engine/), the import layering (import-linter) and the page's JS unit tests
# (Node's built-in test runner). Needs ./.venv with the dev extras (scripts/setup-venv.sh dev).
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS
echo "ruff:" && .venv/bin/ruff check --quiet --output-format concise .
echo "mypy:" && .venv/bin/mypy
echo "import contracts:" && .venv/bin/lint-imports --no-cache | tail -n 3
if compgen -G "tests/js/*.test.mjs" >/dev/null; then
  echo "JS unit tests:" && node --test tests/js/
fi
echo "checks passed in $((SECONDS - began)) s"
