"""``python -m fastws`` as an operator runs it: the one launcher of the hub as a process.

A real process tree (one hub, or a master and its workers), so that a test can signal it,
SIGKILL it and start it again on the same port, find its workers through /proc and read its
log. It runs with ``--insecure`` (development mode, no token key) unless told otherwise, which
serves ``GET /api/dev/token?user=NAME``; its HTTP API takes ``API_KEY``. When it is closed, its
log is handed to ``tests.support.leaks``. Everything is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from tests.support.hub import api, http
from tests.support.leaks import record, secret
from tests.support.ops import parse_metrics
from tests.support.paths import ROOT
from tests.support.polling import until, until_blocking

API_KEY = secret("test-api-key")
LISTENING = re.compile(r"listening on https?://[^/]+:(\d+)/")


async def dev_token(port: int, user: str) -> str:
    """A token for ``user`` from a hub in development mode."""
    status, _, payload = await http(port, "GET", f"/api/dev/token?user={user}")
    assert status == 200, f"dev token for {user!r}: HTTP {status} {payload!r}"
    return orjson.loads(payload)["token"]


def token_source(port: int, user: str):
    """An async token callable, as a hub client uses one (called again on each reconnect)."""
    return lambda: dev_token(port, user)


class HubProcess:
    """``python -m fastws ARGS``; what it logs (stderr) and prints (stdout) in temporary files.

    The port is chosen by the system on the first start and kept by later ones. Without
    ``insecure``, ARGS or ``env`` give the token keys. ``host`` is the address it listens
    on and is reached at; ``wrapper`` runs it through another program (``ip netns exec NS``).
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        api_key: str | None = API_KEY,
        insecure: bool = True,
        host: str = "127.0.0.1",
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.args = ("--insecure", *args) if insecure else args
        self.host = host
        self.wrapper = wrapper
        self.extra_env = env or {}
        self.api_key = api_key
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log_path, self.stdout_path = (
            self.temporary_file(suffix) for suffix in (".log", ".out")
        )

    @staticmethod
    def temporary_file(suffix: str) -> str:
        descriptor, path = tempfile.mkstemp(prefix="fastws-hub-", suffix=suffix)
        os.close(descriptor)
        return path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if self.api_key:
            env["FASTWS_API_KEY"] = self.api_key
        env.update(self.extra_env)
        return env

    # -- the process ------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> HubProcess:
        """Start it and wait for its listening line (blocking; from a loop, use ``async with``)."""
        started = self.listening_ports()
        command = [
            *self.wrapper, sys.executable, "-m", "fastws",
            "--host", self.host, "--port", str(self.port), *self.args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log, open(self.stdout_path, "ab") as stdout:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env(), stdout=stdout, stderr=log
            )

        def listening() -> bool:
            if not self.running:
                raise AssertionError(f"the hub exited with {self.process.returncode}:\n{self.log()}")
            return len(self.listening_ports()) > len(started)

        try:
            until_blocking(listening, lambda: f"the hub listening; its log:\n{self.log()}", timeout)
        except BaseException:
            self.close()
            raise
        self.port = self.listening_ports()[-1]
        return self

    def listening_ports(self) -> list[int]:
        """The port of each listening line so far (one per start, and per upgraded master)."""
        return [int(port) for port in LISTENING.findall(self.printed())]

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, memory lost (a crash)."""
        if self.running:
            self.process.kill()
            self.process.wait(10)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal it and wait until it exits; its exit status."""
        if self.running:
            self.send(sig)
        return await self.exited(timeout)

    async def exited(self, timeout: float = 30.0) -> int:
        """Wait (the loop keeps running) until it exits; its exit status."""
        await until(lambda: not self.running, lambda: f"the hub exiting:\n{self.log()}", timeout)
        return self.process.returncode

    def close(self) -> None:
        """Kill whatever is left of the process tree, record its log and remove it."""
        workers = self.workers() if self.running else []
        self.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        record(f"python -m fastws {' '.join(self.args)}", self.log() + self.printed())
        for path in (self.log_path, self.stdout_path):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def workers(self) -> list[int]:
        """Pids of the master's worker processes, from /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == self.pid and b"fastws.hub.process.worker" in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def log(self) -> str:
        """All it logged so far (nothing once it is closed)."""
        return self.read(self.log_path)

    def printed(self) -> str:
        """All it printed on stdout so far: its listening lines."""
        return self.read(self.stdout_path)

    @staticmethod
    def read(path: str) -> str:
        try:
            return Path(path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_listening(self, count: int, timeout: float = 30.0) -> int:
        """Until ``count`` listening lines were printed (one per master); the last port."""
        ports = await until(
            lambda: self.listening_ports()[count - 1 : count],
            lambda: f"listening line #{count}; the hub's log:\n{self.log()}",
            timeout,
        )
        return ports[0]

    async def wait_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``text`` appears ``count`` times in the log."""
        await until(
            lambda: self.log().count(text) >= count,
            lambda: f"{text!r} x{count} logged; the hub's log:\n{self.log()}",
            timeout,
        )

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> HubProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.close)

    # -- HTTP -------------------------------------------------------------------------

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}/connection"

    async def api(self, method: str, target: str, body: object = None) -> tuple[int, object]:
        """An HTTP API call with the hub's key: (status, decoded body)."""
        return await api(self.port, method, target, body, api_key=self.api_key, host=self.host)

    async def probe(self, path: str) -> tuple[int, str]:
        """GET a probe (/health, /ready): (status, body text)."""
        status, _, payload = await http(self.port, "GET", path, host=self.host)
        return status, payload.decode()

    async def broker_status(self) -> dict:
        """The ``broker`` object of /api/v1/info."""
        status, body = await self.api("GET", "/api/v1/info")
        assert status == 200, f"info: HTTP {status} {body}"
        return body["result"]["broker"]

    async def wait_ready(self, timeout: float = 20.0) -> HubProcess:
        """Until /ready answers 200 (the broker is usable)."""

        async def ready() -> bool:
            return (await self.probe("/ready"))[0] == 200

        await until(ready, f"hub {self.port} ready", timeout, interval=0.05)
        return self

    async def metrics(self) -> dict[tuple[str, tuple], float]:
        """/metrics parsed: {(sample name, sorted label pairs): value}."""
        status, headers, payload = await http(self.port, "GET", "/metrics", host=self.host)
        assert status == 200, payload
        assert headers["content-type"].startswith("text/plain")
        return parse_metrics(payload.decode())


CHANNELS_TOML = """
[[namespaces]]
name = "room"
history_size = 100
history_ttl = 300
presence = true
join_leave = true

[[namespaces]]
name = "stream"
history_size = 1000
history_ttl = 300
"""


@contextlib.asynccontextmanager
async def hub_nodes(broker: str, count: int = 2, *args: str) -> AsyncIterator[list[HubProcess]]:
    """``count`` hub processes on ``broker`` with the ``room`` (history, presence, join/leave)
    and ``stream`` (long history) namespaces; closed afterwards, logs shown on failure."""
    descriptor, config = tempfile.mkstemp(prefix="fastws-hub-", suffix=".toml")
    with os.fdopen(descriptor, "w") as file:
        file.write(CHANNELS_TOML)
    nodes = [HubProcess("--broker", broker, "--config", config, *args) for _ in range(count)]
    try:
        await asyncio.gather(*(asyncio.to_thread(node.start) for node in nodes))
        yield nodes
    except BaseException:
        for node in nodes:
            print(f"--- hub on port {node.port} ---\n{node.log()[-4000:]}")
        raise
    finally:
        for node in nodes:
            await asyncio.to_thread(node.close)
        os.unlink(config)
