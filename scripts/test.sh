#!/usr/bin/env bash
# The test-suite.
#   scripts/test.sh [PYTEST ARGS]          everything: set up ./.venv with the test tools (first run
#       only), install the system tools the tests drive (docker-compose for validating
#       docker-compose.yml, Chromium for the browser tests), run the checked conventions
#       (scripts/check.sh: ruff, mypy, the import contracts, the page's Node unit tests), make sure
#       PostgreSQL and Redis are up, then run pytest.
#   scripts/test.sh --fast [PYTEST ARGS]   the pure and SQLite tier in about a minute: the tests
#       that need no server, browser or Label Studio and run no model (markers postgres, redis,
#       rabbitmq, browser, label_studio, models, slow; see tests/conftest.py). No service is checked
#       or started and Chromium is not installed; the tests run in up to four processes (pytest-xdist).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
FAST_TIER="not postgres and not redis and not rabbitmq and not browser and not label_studio and not models and not slow"
fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi
scripts/setup-venv.sh dev
export HF_HUB_OFFLINE=1

# apt's own chatter (debconf frontends, needrestart, dpkg progress) says nothing a newcomer can act on: it goes
# to a log, shown only when the install fails
apt_quiet() {
  local log
  log=$(mktemp /tmp/dataengine-apt.XXXXXX.log)
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true NEEDRESTART_MODE=a \
      NEEDRESTART_SUSPEND=1 apt-get install -y -qq "$@") >"$log" 2>&1; then
    rm -f "$log"
  else
    echo "apt-get install $* failed; its output (also in $log):" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
    && ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's docker-compose (validates docker-compose.yml)"
    apt_quiet docker-compose
  fi
fi
if [ $fast = 1 ]; then
  # no shared server in this tier, so its tests may run side by side (one process per core, at most four)
  workers=$(nproc 2>/dev/null || echo 2)
  [ "$workers" -gt 4 ] && workers=4
  exec .venv/bin/python -m pytest -n "$workers" -m "$FAST_TIER" "$@"
fi
# lint, types, import contracts and the JS unit tests first: a broken convention fails in seconds
scripts/check.sh
# The browser tests drive Debian's Chromium (never a downloaded browser) and are never skipped.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium (the browser tests drive it)"
    apt_quiet chromium || true
  fi
  if ! command -v chromium >/dev/null; then
    echo "error: Chromium is not installed and could not be installed here; the browser tests need it." >&2
    echo "  Debian/Ubuntu: sudo apt-get install -y chromium   (then run this script again)" >&2
    exit 1
  fi
fi
scripts/services.sh
exec .venv/bin/python -m pytest "$@"
