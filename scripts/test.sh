#!/usr/bin/env bash
# The whole test-suite: set up ./.venv with the test tools (first run only), install the system
# tools the tests drive (docker-compose for validating docker-compose.yml, Chromium for the browser
# tests), make sure PostgreSQL
# and Redis are up, then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh dev
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
    && ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's docker-compose (validates docker-compose.yml)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) >/dev/null
  fi
fi
# The browser tests drive Debian's Chromium (never a downloaded browser) and are never skipped.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium (the browser tests drive it)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || true
  fi
  if ! command -v chromium >/dev/null; then
    echo "error: Chromium is not installed and could not be installed here; the browser tests need it." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y chromium   (then run this script again)" >&2
    exit 1
  fi
fi
scripts/services.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
