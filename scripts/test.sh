#!/usr/bin/env bash
# Build fastws and run every test, installing what the tests need on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ -x scripts/install-test-deps.sh ] || [ -f scripts/install-test-deps.sh ]; then
    bash scripts/install-test-deps.sh
fi
$PYTHON -m pip install -q -e '.[dev]'
$PYTHON -c "import fastws._codec" || { echo "the Cython codec did not build" >&2; exit 1; }
$PYTHON -m ruff check fastws tests bench
# The browser/Node client: dependencies from its lock file, its build, its tests against the hub.
(cd clients/js && npm ci --no-audit --no-fund && npm run build && PYTHON=$PYTHON npm test)
$PYTHON -m pytest "$@"
