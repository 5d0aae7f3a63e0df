"""Autobahn|Testsuite conformance of fastws as a server and as a client, on both codecs.

Each run takes minutes, so these tests carry the ``autobahn`` marker: run them with
``pytest -m autobahn`` or leave them out with ``-m "not autobahn"``. A run leaves
its reports, wstest log and summary in test-output/autobahn/<side>-<backend>/;
``python -m tests.conformance.report`` turns the summaries into docs/conformance.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conformance import autobahn

BACKENDS = ["cython", "python"]
ALLOWLIST = Path(__file__).parent / "conformance" / "autobahn-non-strict.toml"
ECHO_SERVER = ["-m", "fastws", "echo"]
CLIENT_RUNNER = ["-m", "tests.conformance.autobahn_client"]
RUN_TIMEOUT = 2400.0  # seconds for one whole run; the slowest measured here is far below

pytestmark = [pytest.mark.autobahn, pytest.mark.timeout(RUN_TIMEOUT + 300)]


def backend_environment(backend: str) -> dict[str, str]:
    """This environment, with FASTWS_PURE set for the pure-Python codec and unset otherwise."""
    env = dict(os.environ)
    env.pop("FASTWS_PURE", None)
    if backend == "python":
        env["FASTWS_PURE"] = "1"
    return env


def check_backend(backend: str) -> None:
    """Fails unless a fresh interpreter with this environment really uses that codec."""
    probe = subprocess.run(
        [sys.executable, "-c", "import fastws.codec; print(fastws.codec.BACKEND)"],
        env=backend_environment(backend),
        cwd=autobahn.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    active = probe.stdout.strip().splitlines()[-1:] or [probe.stderr.strip()]
    assert active == [backend], (
        f"wanted the {backend} codec, got {active[0]!r}; for the cython codec build it first "
        "with `python setup.py build_ext --inplace`"
    )


def load_allowlist() -> dict[str, dict[str, str]]:
    """The accepted NON-STRICT cases per side, each with a non-empty reason."""
    allowed = tomllib.loads(ALLOWLIST.read_text())
    for side in ("server", "client"):
        for case, reason in allowed.get(side, {}).items():
            assert isinstance(reason, str) and reason.strip(), (
                f"{ALLOWLIST.name}: [{side}] {case} needs a reason"
            )
    return allowed


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Prints progress lines past pytest's capture, so long runs show in CI logs as they go."""
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock, capsys.disabled():
            print(line, flush=True)

    return emit


@contextmanager
def echo_server(backend: str, log_path: Path) -> Iterator[int]:
    """Runs `python -m fastws echo` on a free port with the chosen codec; yields the port."""
    port = autobahn.free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, *ECHO_SERVER, "--host", "127.0.0.1", "--port", str(port)],
            env=backend_environment(backend),
            cwd=autobahn.REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            autobahn.wait_for_port(port, 30, process)
            yield port
            assert process.poll() is None, (
                f"the echo server died during the run (exit {process.returncode}); see {log_path}"
            )
        finally:
            autobahn.stop_process(process)


def check_verdicts(summary: autobahn.Summary, side: str, outdir: Path) -> None:
    """No FAILED, MISSING or UNIMPLEMENTED case, and only allow-listed NON-STRICT ones."""
    allowed = load_allowlist().get(side, {})

    def describe(cases: list[str]) -> str:
        return ", ".join(
            f"{case} (close {summary.not_ok[case].behavior_close})" for case in cases
        )

    problems = []
    for behavior in ("FAILED", "MISSING", "UNIMPLEMENTED"):
        if cases := summary.cases_with(behavior):
            problems.append(f"{len(cases)} {behavior}: {describe(cases)}")
    non_strict = [case for case in summary.cases_with("NON-STRICT") if case not in allowed]
    if non_strict:
        problems.append(
            f"{len(non_strict)} NON-STRICT not in {ALLOWLIST.name} [{side}]: {describe(non_strict)}"
        )
    assert not problems, "\n".join(problems) + f"\nreports: {outdir / 'reports' / 'index.html'}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_passes_autobahn(backend: str, stream: Callable[[str], None]) -> None:
    check_backend(backend)
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
    summary = autobahn.write_summary(
        outdir, "server", backend, results, time.monotonic() - started
    )
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
    check_backend(backend)
    outdir = autobahn.DEFAULT_OUTPUT / f"client-{backend}"
    started = time.monotonic()
    port = autobahn.free_port()
    label = f"autobahn client/{backend}"
    with autobahn.run_fuzzingserver(port, outdir=outdir, label=label, progress=stream) as fuzzer:
        client = subprocess.Popen(
            [sys.executable, *CLIENT_RUNNER, "--port", str(port)],
            env=backend_environment(backend),
            cwd=autobahn.REPO_ROOT,
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
            autobahn.stop_process(client)
            relay.join(10)
        assert client.returncode == 0, f"the client runner exited with {client.returncode}"
        results = fuzzer.results("fastws")
    summary = autobahn.write_summary(
        outdir, "client", backend, results, time.monotonic() - started
    )
    stream(autobahn.format_summary(summary, f"Autobahn client run, {backend} codec"))
    check_verdicts(summary, "client", outdir)
