"""Running ``python -m fastws`` (the hub) as a child process for tests.

A real process, so that a test can SIGKILL it and start it again on the same
port. It runs with ``--insecure`` (development mode, no token key), which
serves ``GET /api/dev/token?user=NAME``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.leaks import record, secret
from tests.support.net import free_port
from tests.support.paths import ROOT

API_KEY = secret("test-api-key")


def http(
    port: int, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 5
) -> tuple[int, dict]:
    """A GET (or a POST of ``body`` as JSON) to the hub; returns (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text or b"{}")
        except ValueError:
            return exc.code, {"text": text.decode(errors="replace")}


def dev_token(port: int, user: str) -> str:
    status, body = http(port, f"/api/dev/token?user={user}")
    if status != 200:
        raise RuntimeError(f"dev token for {user!r}: HTTP {status} {body}")
    return body["token"]


def token_source(port: int, user: str):
    """An async token callable, as a hub client would use (fetched again on reconnect)."""

    async def fetch() -> str:
        return await asyncio.to_thread(dev_token, port, user)

    return fetch


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something true (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what}")
        time.sleep(interval)


class HubProcess:
    """``python -m fastws --port P`` with its output in a temporary log file."""

    def __init__(self, port: int | None = None, *args: str, api_key: str | None = API_KEY) -> None:
        self.port = port or free_port()
        self.args = args
        self.api_key = api_key
        self.process: subprocess.Popen | None = None
        descriptor, self.log_path = tempfile.mkstemp(prefix="fastws-hub-", suffix=".log")
        os.close(descriptor)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if self.api_key:
            env["FASTWS_API_KEY"] = self.api_key
        return env

    def start(self, timeout: float = 20.0) -> HubProcess:
        command = [
            sys.executable, "-m", "fastws", "--port", str(self.port), "--insecure", *self.args
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.process.returncode}:\n{self.output()}")
            try:
                if http(self.port, "/api/dev/token?user=probe", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the hub did not answer on port {self.port} in {timeout} s:\n{self.output()}")

    async def start_async(self) -> HubProcess:
        return await asyncio.to_thread(self.start)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, memory lost (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self, whole: bool = False) -> str:
        text = Path(self.log_path).read_text(errors="replace")
        return text if whole else text[-4000:]

    def api(self, path: str, body: dict) -> tuple[int, dict]:
        return http(self.port, path, body, {"Authorization": f"apikey {self.api_key}"})

    def api_get(self, path: str) -> tuple[int, dict]:
        return http(self.port, path, None, {"Authorization": f"apikey {self.api_key}"})

    def probe(self, path: str) -> tuple[int, str]:
        """GET a probe (/health, /ready): (status, body text)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def broker_status(self) -> dict:
        """The ``broker`` object of /api/v1/info."""
        status, body = self.api_get("/api/v1/info")
        if status != 200:
            raise RuntimeError(f"info: HTTP {status} {body}")
        return body["result"]["broker"]

    def wait_ready(self, timeout: float = 20.0) -> HubProcess:
        """Until /ready answers 200 (the broker is usable)."""
        wait_until(lambda: self.probe("/ready")[0] == 200, timeout, f"hub {self.port} ready")
        return self

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        record(f"hub on port {self.port}", self.output(whole=True))
        os.unlink(self.log_path)
