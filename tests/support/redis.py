"""A private ``redis-server`` per test: a free port, no persistence, SIGKILL for faults.

Never the system's Redis on 6379: each server here is a child process on a port
bound just before, with ``--save "" --appendonly no``, so a kill loses
everything as a crashed, unpersisted Redis would. A missing ``redis-server``
fails the test with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.net import free_port

INSTALL_HINT = "apt-get install -y redis-server (or scripts/install-test-deps.sh)"


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(path, os.X_OK):
        pytest.fail(f"redis-server is not installed; install it with: {INSTALL_HINT}", pytrace=False)
    return path


def redis_command(port: int, *args: str, timeout: float = 2.0, host: str = "127.0.0.1") -> bytes:
    """Send one command, return the raw reply (enough for PING, FLUSHALL, CLIENT KILL)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        encoded = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(encoded), encoded))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        return sock.recv(65536)


class RedisServer:
    """``redis-server`` on a free loopback port; ``kill`` and ``start`` again keep the port.

    ``host`` is the address it binds and is reached at; ``wrapper`` runs it through another
    program (``ip netns exec NS``).
    """

    def __init__(
        self,
        port: int | None = None,
        *args: str,
        host: str = "127.0.0.1",
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.binary = redis_server_binary()
        self.port = port or free_port()
        self.args = args  # more redis-server options, e.g. "--requirepass", "secret"
        self.host = host
        self.wrapper = wrapper
        self.dir = tempfile.mkdtemp(prefix="fastws-redis-")
        self.config_file: str | None = None  # read first (a sentinel's, which it rewrites)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = open(Path(self.dir) / "redis.log", "ab")  # noqa: SIM115 (the child holds it)
        with log:
            self.process = subprocess.Popen(
                [
                    *self.wrapper,
                    self.binary,
                    *([self.config_file] if self.config_file else []),
                    "--port", str(self.port),
                    "--bind", self.host,
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", self.dir,
                    "--daemonize", "no",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                pong = redis_command(self.port, "PING", timeout=0.5, host=self.host)
                if pong.startswith((b"+PONG", b"-NOAUTH")):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: the data and every connection are gone at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def command(self, *args: str) -> bytes:
        return redis_command(self.port, *args, host=self.host)

    def log(self) -> str:
        path = Path(self.dir) / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = [
    "INSTALL_HINT",
    "RedisServer",
    "redis_command",
]
