#!/usr/bin/env bash
# Build fastws and run every test, installing what the tests need on the way.
#
#   bash scripts/test.sh             everything, in two stages of two groups each
#   bash scripts/test.sh ARGS...     only `pytest ARGS...` (e.g. -x tests/hub)
#
# First the rest of pytest and the JavaScript client's tests run side by side, then the
# two Autobahn runs (server and client), which take most of the time and use about one
# core each (wstest and fastws answer each other in turn). The suite's tests start real
# hubs, browsers and reloads against deadlines; running them beside the Autobahn runs
# would leave them a fraction of a core on a two-core machine. scripts/concurrently.sh
# prints each group's output when it ends, fails if any group fails (the second stage
# runs anyway, so one run reports every failure) and lists the ten slowest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ -x scripts/install-test-deps.sh ] || [ -f scripts/install-test-deps.sh ]; then
    bash scripts/install-test-deps.sh
fi
$PYTHON -m pip install -q -e '.[dev]'
$PYTHON -c "import fastws._codec, fastws._connection, fastws._protocol" || { echo "the Cython modules did not build" >&2; exit 1; }
$PYTHON -m ruff check fastws tests bench examples
# The browser/Node client: dependencies from its lock file and its build (the hub serves it).
(cd clients/js && npm ci --no-audit --no-fund && npm run build)
if [ "$#" -gt 0 ]; then
    exec $PYTHON -m pytest "$@"
fi

pytest="$PYTHON -m pytest --durations=10"
autobahn="$pytest -p no:cacheprovider -m autobahn tests/conformance/test_autobahn.py"
exec bash scripts/concurrently.sh \
    suite "$pytest -m 'not autobahn'" \
    js "cd clients/js && PYTHON=$PYTHON npm test" \
    --then \
    autobahn-server "$autobahn::test_server_passes_autobahn" \
    autobahn-client "$autobahn::test_client_passes_autobahn"
