"""``python -m fastws`` as an operator runs it, for the operations tests.

``RunningHub`` starts the real command (master and workers), reads the port
from its listening line, keeps its log in a file, signals it, and finds its
worker processes through /proc. Everything is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import http
from tests.support.leaks import record, secret
from tests.support.paths import ROOT

LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)/")
API_KEY = secret("ops-test-key")


class RunningHub:
    """One ``python -m fastws ARGS`` process tree; ``--insecure`` (dev tokens) unless
    ``insecure`` is false, when ARGS or ``env`` give the keys."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, insecure: bool = True
    ) -> None:
        self.args = ("--insecure", *args) if insecure else args
        self.extra_env = env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.lines: list[str] = []  # stdout lines
        self._line_event = asyncio.Event()
        self._reader: asyncio.Task | None = None
        descriptor, self.log_path = tempfile.mkstemp(prefix="fastws-ops-", suffix=".log")
        os.close(descriptor)

    @property
    def pid(self) -> int:
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["FASTWS_API_KEY"] = API_KEY
        env.update(self.extra_env)
        return env

    async def start(self, timeout: float = 30.0) -> RunningHub:
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fastws",
                "--port",
                "0",
                *self.args,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env(),
                cwd=ROOT,
            )
        self._reader = asyncio.get_running_loop().create_task(self._read_stdout())
        self.port = await self.wait_listening(1, timeout)
        return self

    async def _read_stdout(self) -> None:
        while True:
            line = await self.process.stdout.readline()
            if not line:
                return
            self.lines.append(line.decode(errors="replace"))
            self._line_event.set()

    async def wait_listening(self, count: int, timeout: float = 30.0) -> int:
        """Until ``count`` listening lines were printed (one per master start); the port."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [m for m in map(LISTENING.search, self.lines) if m]
                    if len(found) >= count:
                        return int(found[count - 1].group(1))
                    if self.process.returncode is not None:
                        raise AssertionError(f"the hub exited:\n{self.log()}")
                    self._line_event.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._line_event.wait()
        except TimeoutError:
            raise AssertionError(f"no listening line #{count} in {timeout} s:\n{self.log()}") from None

    async def wait_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``text`` appears ``count`` times in the log."""
        try:
            async with asyncio.timeout(timeout):
                while self.log().count(text) < count:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"{text!r} x{count} not logged in {timeout} s:\n{self.log()}") from None

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

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

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the master and wait for it; its exit status."""
        if self.process.returncode is None:
            self.send(sig)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
        await self._finish_reader()
        return code

    async def _finish_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await self._reader
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def close(self) -> None:
        """Kill whatever is left (the test failed or is done)."""
        if self.process is not None and self.process.returncode is None:
            workers = self.workers()
            self.process.kill()
            await self.process.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await self._finish_reader()
        with contextlib.suppress(OSError):
            record(f"python -m fastws {' '.join(self.args)}", self.log() + "".join(self.lines))
            os.unlink(self.log_path)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    async def __aenter__(self) -> RunningHub:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- HTTP ---------------------------------------------------------------------------

    async def api(self, method: str, target: str, body: object = None) -> tuple[int, object]:
        raw = orjson.dumps(body) if body is not None else None
        status, _, payload = await http(self.port, method, target, raw, api_key=API_KEY)
        return status, orjson.loads(payload) if payload else None

    async def dev_token(self, user: str) -> str:
        status, _, payload = await http(self.port, "GET", f"/api/dev/token?user={user}")
        assert status == 200, payload
        return orjson.loads(payload)["token"]

    async def metrics(self) -> dict[tuple[str, tuple], float]:
        """/metrics parsed: {(sample name, sorted label pairs): value}."""
        status, headers, payload = await http(self.port, "GET", "/metrics")
        assert status == 200, payload
        assert headers["content-type"].startswith("text/plain")
        return parse_metrics(payload.decode())

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/connection"


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def json_lines(text: str) -> list[dict]:
    """The JSON objects of a log (lines that are not JSON are skipped)."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                entries.append(orjson.loads(line))
    return entries
