#!/usr/bin/env bash
# Build fastws and run every test, installing what the tests need on the way.
#
#   bash scripts/test.sh             everything, in four groups at the same time
#   bash scripts/test.sh ARGS...     only `pytest ARGS...` (e.g. -x tests/hub)
#
# The Autobahn runs take most of the time and use about one core each (wstest and
# fastws answer each other in turn), so the server runs, the client runs, the
# JavaScript client's tests and the rest of pytest run side by side;
# scripts/concurrently.sh prints each group's output when it ends, fails if any group
# fails, and lists the ten slowest tests at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ -x scripts/install-test-deps.sh ] || [ -f scripts/install-test-deps.sh ]; then
    bash scripts/install-test-deps.sh
fi
$PYTHON -m pip install -q -e '.[dev]'
$PYTHON -c "import fastws._codec" || { echo "the Cython codec did not build" >&2; exit 1; }
$PYTHON -m ruff check fastws tests bench
# The browser/Node client: dependencies from its lock file and its build (the hub serves it).
(cd clients/js && npm ci --no-audit --no-fund && npm run build)
if [ "$#" -gt 0 ]; then
    exec $PYTHON -m pytest "$@"
fi

pytest="$PYTHON -m pytest --durations=10"
autobahn="$pytest -p no:cacheprovider -m autobahn tests/conformance/test_autobahn.py"
exec bash scripts/concurrently.sh \
    autobahn-server "$autobahn::test_server_passes_autobahn" \
    autobahn-client "$autobahn::test_client_passes_autobahn" \
    js "cd clients/js && PYTHON=$PYTHON npm test" \
    suite "$pytest -m 'not autobahn'"
