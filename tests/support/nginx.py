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


def render(upstreams: list[int], port: int) -> str:
    """docs/nginx.conf with the hub nodes on ``upstreams`` and nginx on ``port``."""
    text = EXAMPLE.read_text()
    servers = re.findall(r"server 127\.0\.0\.1:(\d+)", text)
    if len(servers) != len(upstreams):
        raise AssertionError(f"docs/nginx.conf lists {len(servers)} upstream servers")
    for old, new in zip(servers, upstreams, strict=True):
        text = text.replace(f"server 127.0.0.1:{old} ", f"server 127.0.0.1:{new} ", 1)
    text, listens = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", text)
    if listens != 1:
        raise AssertionError("docs/nginx.conf must listen on exactly one 127.0.0.1 address")
    return text


class Nginx:
    """``nginx -p PREFIX -c CONF -g 'daemon off; pid ...; error_log ...;'``."""

    def __init__(self, upstreams: list[int]) -> None:
        self.binary = nginx_binary()
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
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", directives],
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
