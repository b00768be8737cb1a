#!/usr/bin/env bash
# Create ./.venv and install the project with the given extras (idempotent: a stamp file records
# what was installed for this pyproject.toml, so a second run installs nothing).
#   scripts/setup-venv.sh            the package alone: the light install (server, io/cpu workers,
#                                    exports, Label Studio bridge, report), no model libraries
#   scripts/setup-venv.sh models     plus the model libraries (torch, transformers, spaCy): the demo
#   scripts/setup-venv.sh dev        plus the models and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] not in [(3, 11), (3, 12)])'; then
  echo "Python 3.11 or 3.12 is needed (found: $("$python" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  "$python" -m venv .venv
fi
stamp_prefix=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
stamp="$stamp_prefix-${extras:-base}"
# an install with more extras covers one with fewer (dev includes models; models includes nlp)
covered=false
case "${extras:-base}" in
  base|nlp|models) for wider in dev models; do [ -f "$stamp_prefix-$wider" ] && covered=true; done ;;
esac
if [ ! -f "$stamp" ] && [ "$covered" = false ]; then
  echo "installing dataengine${extras:+[$extras]} into .venv (first run only)"
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
         && .venv/bin/python -m pip install --quiet --editable ".${extras:+[$extras]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "installation failed (see above)" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
# the tests' oracles: the official SA-Co image and video evaluators, kept apart from .venv's packages
case ",$extras," in *,dev,*) scripts/setup-oracle.sh && scripts/setup-oracle-video.sh ;; esac
