"""Starting `python -m fastws echo` as a subprocess with a chosen codec backend.

The codec is picked when fastws is imported, so a backend other than the test
process's own needs a process of its own: ``FASTWS_PURE=1`` in its environment
selects the pure-Python codec, its absence the compiled one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.net import free_port
from tests.support.paths import ROOT

BACKENDS = ("cython", "python")
ECHO_SERVER = ["-m", "fastws", "echo"]


class StartError(RuntimeError):
    """A process that a test needs did not come up."""


def wait_for_port(
    port: int, timeout: float = 30.0, process: subprocess.Popen | None = None
) -> None:
    """Returns once 127.0.0.1:port accepts connections; raises if the process dies or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise StartError(f"process exited with {process.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise StartError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Ends a process started with start_new_session=True, and its group: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)


def backend_environment(backend: str) -> dict[str, str]:
    """This environment, with FASTWS_PURE set for the pure-Python codec and unset otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown codec backend {backend!r}; expected one of {BACKENDS}")
    env = dict(os.environ)
    env.pop("FASTWS_PURE", None)
    if backend == "python":
        env["FASTWS_PURE"] = "1"
    return env


def active_backend(backend: str) -> str:
    """The codec that a fresh interpreter with ``backend_environment(backend)`` really uses.

    Differs from ``backend`` when the compiled codec is asked for but not built.
    """
    probe = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import fastws.codec; print(fastws.codec.BACKEND)"],
        env=backend_environment(backend),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return f"none (import failed: {probe.stderr.strip().splitlines()[-1:]})"
    return probe.stdout.strip()


def require_backend(backend: str) -> None:
    """Raises AssertionError, with the fix, unless that codec is the one a subprocess gets."""
    active = active_backend(backend)
    assert active == backend, (
        f"wanted the {backend} codec in the echo server, got {active}; build the compiled "
        "codec with `pip install -e .` (or `python setup.py build_ext --inplace`)"
    )


@contextmanager
def echo_server(
    backend: str, log_path: Path, extra_args: Sequence[str] = (), start_timeout: float = 30.0
) -> Iterator[int]:
    """Runs `python -m fastws echo` on a free 127.0.0.1 port with that codec; yields the port.

    Its output goes to ``log_path``. Fails after the block if the server died during it.
    """
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *ECHO_SERVER, "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, *extra_args],
            env=backend_environment(backend),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, start_timeout, process)
            yield port
            assert process.poll() is None, (
                f"the echo server died (exit {process.returncode}); see {log_path}"
            )
        finally:
            stop_process(process)
