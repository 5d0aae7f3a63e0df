"""Autobahn|Testsuite conformance of fastws as a server and as a client, on both codecs.

Each run takes minutes, so these tests carry the ``autobahn`` marker: run them with
``pytest -m autobahn`` or leave them out with ``-m "not autobahn"``. The compiled codec
runs every case; the pure-Python codec runs the cases that exercise a codec
(``CODEC_CASES``), since the connection layer above the codec is the same code and the
differential tests hold the two codecs equal. ``--autobahn-full`` (``make conformance``)
runs every case with both. A run leaves its reports, wstest log and summary in
test-output/autobahn/<side>-<backend>/ (``<side>-python-codec-cases/`` for the shorter
run); ``python -m tests.conformance.report`` turns the full runs' summaries into
docs/conformance.md.
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

ALL_CASES = ["*"]
CODEC_CASES = [
    *(f"{category}.*" for category in (1, 2, 3, 4, 5, 6, 7, 9, 10)),
    "12.1.*",
    "12.2.*",
    *(f"13.{parameters}.{size}" for parameters in range(1, 8) for size in range(1, 10)),
]
"""Every case of framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing,
limits and automatic fragmentation; compressed text and binary payloads at every size and
fragment size (12.1, 12.2; 12.3 to 12.5 repeat them with other files); every deflate
parameter set of 13 at the sizes up to 64 KiB (13.x.10 to 13.x.18 repeat them with larger
and fragmented messages)."""


def selected_cases(backend: str, config: pytest.Config) -> tuple[str, list[str]]:
    """The run's name suffix and its cases: CODEC_CASES for the pure-Python codec, unless
    ``--autobahn-full`` asks for every case."""
    if backend == "python" and not config.getoption("autobahn_full"):
        return "-codec-cases", CODEC_CASES
    return "", ALL_CASES


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Prints progress lines past pytest's capture, so long runs show in CI logs as they go."""
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock, capsys.disabled():
            print(line, flush=True)

    return emit


def check_verdicts(summary: autobahn.Summary, side: str, outdir: Path) -> None:
    """Some cases ran; no FAILED, MISSING or UNIMPLEMENTED case, only allow-listed NON-STRICT."""
    assert sum(summary.counts.values()), f"wstest ran no case; see {outdir / 'wstest.log'}"
    problems = autobahn.verdict_problems(summary, autobahn.load_allowlist()[side])
    assert not problems, "\n".join(problems) + f"\nreports: {outdir / 'reports' / 'index.html'}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_passes_autobahn(
    backend: str, stream: Callable[[str], None], request: pytest.FixtureRequest
) -> None:
    require_backend(backend)
    suffix, cases = selected_cases(backend, request.config)
    outdir = autobahn.DEFAULT_OUTPUT / f"server-{backend}{suffix}"
    started = time.monotonic()
    with echo_server(backend, outdir / "echo-server.log") as port:
        results = autobahn.run_fuzzingclient(
            f"ws://127.0.0.1:{port}",
            cases=cases,
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
def test_client_passes_autobahn(
    backend: str, stream: Callable[[str], None], request: pytest.FixtureRequest
) -> None:
    require_backend(backend)
    suffix, cases = selected_cases(backend, request.config)
    outdir = autobahn.DEFAULT_OUTPUT / f"client-{backend}{suffix}"
    started = time.monotonic()
    port = free_port()
    label = f"autobahn client/{backend}"
    with autobahn.run_fuzzingserver(
        port, cases, outdir=outdir, label=label, progress=stream
    ) as fuzzer:
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
