#!/usr/bin/env bash
# Installs what the conformance and interop tests need beyond the Python packages
# of pyproject.toml: Debian's Chromium (tests/server/test_interop.py drives it with
# Playwright), redis-server and nginx (tests/broker/test_redis*.py), iproute2 and nftables
# (tests/ops/test_netns.py) and the Python 2.7
# virtualenv holding the Autobahn|Testsuite (tests/conformance/test_autobahn.py), nats-server
# (tests/broker/test_nats*.py). Safe to run again; needs root for apt-get and no
# terminal, so CI can call it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: Chromium is missing and installing it needs root" >&2
        exit 1
    fi
    echo "install-test-deps: installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
fi

# The Redis broker's tests start their own redis-server (with TLS, as a Redis Cluster
# joined by redis-cli, and as Sentinel); the deployment test runs nginx as a load
# balancer. Neither is started as a service here.
missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/redis-cli ] || missing+=(redis-tools)
# The NATS broker's tests start their own nats-server with JetStream (a cluster of three
# for the failover test).
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
# tests/ops/test_netns.py puts the cluster on network namespaces (ip netns, veth, bridge)
# and makes its faults with nftables rules inside them.
[ -x /usr/sbin/ip ] || [ -x /bin/ip ] || missing+=(iproute2)
[ -x /usr/sbin/nft ] || missing+=(nftables)
# The compiled modules (pip install -e .) and the benchmarks' C load generators need a C compiler.
command -v gcc >/dev/null || missing+=(gcc)
# The benchmark load generator (tests/bench/ build it) links OpenSSL for its TLS cases.
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
# The JavaScript client (clients/js) builds and tests with Node 20 or later and npm.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: ${missing[*]} missing and installing needs root" >&2
        exit 1
    fi
    echo "install-test-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

# Debian 12's own nodejs is Node 18, too old for `node --test --test-force-exit`: say so now
# rather than fail in the middle of the tests (Node 20 or later: NodeSource, or Debian 13).
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "install-test-deps: the JavaScript client needs Node 20 or later, found $(node --version)" >&2
    exit 1
fi

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    echo "install-test-deps: installing playwright (Python package only; it drives /usr/bin/chromium)"
    "$PYTHON" -m pip install -q playwright
fi

# The Autobahn|Testsuite is Python 2 code: .autobahn/venv, made once, reused after.
"$PYTHON" -m tests.conformance.autobahn env
