"""Autobahn|Testsuite conformance of fastws as a server and as a client, on both codecs.

Each run takes minutes, so these tests carry the ``autobahn`` marker: run them with
``pytest -m autobahn`` or leave them out with ``-m "not autobahn"``. A run leaves
its reports, wstest log and summary in test-output/autobahn/<side>-<backend>/;
``python -m tests.conformance.report`` turns the summaries into docs/conformance.md.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance import autobahn
from tests.conformance.processes import (
    BACKENDS,
    backend_environment,
    echo_server,
    require_backend,
    stop_process,
)
from tests.support.net import free_port
from tests.support.paths import ROOT

CLIENT_RUNNER = ["-m", "tests.conformance.autobahn_client"]
RUN_TIMEOUT = 2400.0  # seconds for one whole run; the slowest measured here is far below

pytestmark = [pytest.mark.autobahn, pytest.mark.timeout(RUN_TIMEOUT + 300)]


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Prints progress lines past pytest's capture, so long runs show in CI logs as they go."""
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock, capsys.disabled():
            print(line, flush=True)

    return emit


def check_verdicts(summary: autobahn.Summary, side: str, outdir: Path) -> None:
    """No FAILED, MISSING or UNIMPLEMENTED case, and only allow-listed NON-STRICT ones."""
    problems = autobahn.verdict_problems(summary, autobahn.load_allowlist()[side])
    assert not problems, "\n".join(problems) + f"\nreports: {outdir / 'reports' / 'index.html'}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_passes_autobahn(backend: str, stream: Callable[[str], None]) -> None:
    require_backend(backend)
    outdir = autobahn.DEFAULT_OUTPUT / f"server-{backend}"
    started = time.monotonic()
    with echo_server(backend, outdir / "echo-server.log") as port:
        results = autobahn.run_fuzzingclient(
            f"ws://127.0.0.1:{port}",
            outdir=outdir,
            label=f"autobahn server/{backend}",
            progress=stream,
            timeout=RUN_TIMEOUT,
        )
    summary = autobahn.write_summary(outdir, "server", backend, results, time.monotonic() - started)
    stream(autobahn.format_summary(summary, f"Autobahn server run, {backend} codec"))
    check_verdicts(summary, "server", outdir)


def relay_output(process: subprocess.Popen, emit: Callable[[str], None]) -> threading.Thread:
    def relay() -> None:
        for line in process.stdout:
            emit(f"  {line.rstrip()}")

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_passes_autobahn(backend: str, stream: Callable[[str], None]) -> None:
    require_backend(backend)
    outdir = autobahn.DEFAULT_OUTPUT / f"client-{backend}"
    started = time.monotonic()
    port = free_port()
    label = f"autobahn client/{backend}"
    with autobahn.run_fuzzingserver(port, outdir=outdir, label=label, progress=stream) as fuzzer:
        client = subprocess.Popen(
            [sys.executable, *CLIENT_RUNNER, "--port", str(port)],
            env=backend_environment(backend),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        relay = relay_output(client, stream)
        try:
            client.wait(RUN_TIMEOUT)
        finally:
            stop_process(client)
            relay.join(10)
        assert client.returncode == 0, f"the client runner exited with {client.returncode}"
        results = fuzzer.results("fastws")
    summary = autobahn.write_summary(outdir, "client", backend, results, time.monotonic() - started)
    stream(autobahn.format_summary(summary, f"Autobahn client run, {backend} codec"))
    check_verdicts(summary, "client", outdir)
