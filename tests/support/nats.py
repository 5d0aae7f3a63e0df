"""Private ``nats-server -js`` processes: one server, or a cluster of three, on free ports.

Never the system's NATS on 4222: each server here is a child process with its own
store directory, killed with SIGKILL for faults and started again on the same ports
and directory (JetStream keeps its file storage, as a crashed server would). A
missing ``nats-server`` fails the test with the command that installs it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import nats
import pytest

from tests.support.net import free_port
from tests.support.polling import until_blocking

INSTALL_HINT = "apt-get install -y nats-server (or scripts/install-test-deps.sh)"


def nats_server_binary() -> str:
    path = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(path, os.X_OK):
        pytest.fail(f"nats-server is not installed; install it with: {INSTALL_HINT}", pytrace=False)
    return path


class NatsServer:
    """``nats-server -js`` on free loopback ports; ``routes`` joins it to a cluster."""

    def __init__(self, *args: str, name: str = "n1", cluster_port: int | None = None) -> None:
        self.binary = nats_server_binary()
        self.args = args  # more nats-server options, e.g. "--user", "u", "--pass", "p"
        self.name = name
        self.port = free_port()
        self.monitor_port = free_port()
        self.cluster_port = cluster_port
        self.routes: list[int] = []
        self.dir = tempfile.mkdtemp(prefix="fastws-nats-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def url_as(self, user: str, password: str) -> str:
        return f"nats://{user}:{password}@127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
            "-m", str(self.monitor_port), "-sd", str(Path(self.dir) / "store"),
            "-n", self.name, *self.args,
        ]  # fmt: skip
        if self.cluster_port is not None:
            routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)
            command += [
                "--cluster_name", "fastws-test",
                "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                "--routes", routes,
            ]  # fmt: skip
        return command

    def launch(self) -> NatsServer:
        """Start the process without waiting for it to be ready."""
        with open(Path(self.dir) / "nats.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        return self

    def start(self, timeout: float = 20.0) -> NatsServer:
        return self.launch().wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> NatsServer:
        """Until JetStream answers (in a cluster: once it has a meta leader)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                url = f"http://127.0.0.1:{self.monitor_port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    return response.status == 200
            except (OSError, urllib.error.URLError):
                return False

        until_blocking(ready, lambda: f"nats-server ready on {self.port}:\n{self.log()}", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: every connection drops at once; the store directory stays."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        path = Path(self.dir) / "nats.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalNatsCluster:
    """Three ``nats-server -js`` routed to each other (a JetStream cluster)."""

    def __init__(self, size: int = 3) -> None:
        self.servers = [NatsServer(name=f"n{i + 1}", cluster_port=free_port()) for i in range(size)]
        for server in self.servers:
            server.routes = [other.cluster_port for other in self.servers if other is not server]

    def start(self) -> LocalNatsCluster:
        for server in self.servers:
            server.launch()
        try:
            for server in self.servers:
                server.wait_ready()
        except BaseException:
            self.cleanup()
            raise
        return self

    def url(self) -> str:
        """Every server, as the broker option lists them."""
        return ",".join(server.url for server in self.servers)

    def flush(self) -> None:
        """Remove every stream (key-value buckets included), as between tests."""

        async def remove() -> None:
            connection = await nats.connect(self.servers[0].url)
            js = connection.jetstream()
            try:
                for info in await js.streams_info():
                    await js.delete_stream(info.config.name)
            finally:
                await connection.close()

        asyncio.run(remove())

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()


__all__ = ["INSTALL_HINT", "LocalNatsCluster", "NatsServer", "nats_server_binary"]
