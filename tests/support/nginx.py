"""Debian's nginx as a foreground child process, configured from docs/nginx.conf.

The shipped example is the configuration under test: its upstream ports and its
listen address are replaced by free ones, and everything nginx writes goes to a
temporary prefix directory. A missing nginx fails the test with the command that
installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.paths import DOCS

INSTALL_HINT = "apt-get install -y nginx (or scripts/install-test-deps.sh)"
EXAMPLE = DOCS / "nginx.conf"


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(path, os.X_OK):
        pytest.fail(f"nginx is not installed; install it with: {INSTALL_HINT}", pytrace=False)
    return path


UPSTREAM = re.compile(r"^( *server )127\.0\.0\.1:\d+( .*\n)", re.MULTILINE)


def render(upstreams: list[int | str], port: int) -> str:
    """docs/nginx.conf with the hub nodes on ``upstreams`` (ports on 127.0.0.1, or
    HOST:PORT) and nginx on ``port``; its first upstream line is the model of each."""
    text = EXAMPLE.read_text()
    servers = list(UPSTREAM.finditer(text))
    if not servers:
        raise AssertionError("docs/nginx.conf lists no upstream server on 127.0.0.1")
    head, tail = servers[0].group(1), servers[0].group(2)
    addresses = [f"127.0.0.1:{u}" if isinstance(u, int) else u for u in upstreams]
    lines = "".join(f"{head}{address}{tail}" for address in addresses)
    text = text[: servers[0].start()] + lines + text[servers[-1].end() :]
    text, listens = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", text)
    if listens != 1:
        raise AssertionError("docs/nginx.conf must listen on exactly one 127.0.0.1 address")
    return text


class Nginx:
    """``nginx -p PREFIX -c CONF -g 'daemon off; pid ...; error_log ...;'``; ``wrapper``
    runs it through another program (``ip netns exec NS``)."""

    def __init__(self, upstreams: list[int | str], wrapper: tuple[str, ...] = ()) -> None:
        self.binary = nginx_binary()
        self.wrapper = wrapper
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="fastws-nginx-"))
        (self.prefix / "logs").mkdir()
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(render(upstreams, self.port))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Nginx:
        directives = (
            f"daemon off; pid {self.prefix / 'nginx.pid'}; "
            f"error_log {self.prefix / 'logs' / 'error.log'} info;"
        )
        self.process = subprocess.Popen(
            [*self.wrapper, self.binary, "-p", str(self.prefix), "-c", str(self.conf),
             "-g", directives],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "logs" / "stderr.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port}:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / "logs" / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: open WebSockets are cut
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


__all__ = ["EXAMPLE", "INSTALL_HINT", "Nginx", "render"]
