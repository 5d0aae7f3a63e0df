"""Builds bench/hubload.c on demand and drives its client fleets and publishers."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from bench.system import cache_dir

SOURCE = Path(__file__).with_name("hubload.c")
SOCKETS_PER_PROCESS = 19_000
"""Below the 20,000 open files a process may have here."""
COUNTERS = (
    "ready", "inflight", "upgrades", "readies", "drops", "failed_opens", "live", "recovered",
    "duplicates", "gaps", "unrecovered", "epoch_changes", "errors", "pings", "resubscribes",
)  # fmt: skip


class HubloadError(RuntimeError):
    """hubload could not be built, or one of its processes failed."""


def build() -> Path:
    """The compiled hubload; its name carries a hash of the source, so an edit rebuilds it."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = cache_dir() / f"hubload-{digest}"
    if binary.exists():
        return binary
    gcc = shutil.which("gcc")
    if not gcc:
        raise HubloadError("gcc is needed to build bench/hubload.c")
    done = subprocess.run([gcc, "-O2", str(SOURCE), "-o", str(binary)], capture_output=True, text=True)
    if done.returncode != 0:
        raise HubloadError(f"building hubload failed:\n{done.stderr}")
    for stale in binary.parent.glob("hubload-*"):
        if stale != binary:
            stale.unlink(missing_ok=True)
    return binary


@dataclass
class Target:
    """Where the clients connect and what they subscribe to."""

    port: int
    token: str
    api_key: str
    channels: int
    shared: str = "all"
    prefix: str = "c"

    def subscribers(self, clients: int) -> dict[str, int]:
        """Subscribers per channel when clients 0..clients-1 are all subscribed: client i
        to channel i mod ``channels`` and to the shared one."""
        counts = {
            f"{self.prefix}{k}": clients // self.channels + (k < clients % self.channels)
            for k in range(self.channels)
        }
        counts[self.shared] = clients
        return counts

    def position(self, channel: str, attempts: int = 20) -> tuple[str, int]:
        """The channel's (epoch, offset) from the history API: what the hub has published,
        whether or not the publisher saw the answers. Retried while a worker restarts."""
        path = f"/api/v1/history?channel={urllib.parse.quote(channel)}&limit=0"
        for attempt in range(attempts):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("GET", path, headers={"Authorization": f"apikey {self.api_key}"})
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    result = json.loads(body)["result"]
                    return result["epoch"], result["offset"]
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(min(1.0, 0.05 * 2**attempt))
        raise HubloadError(f"the hub did not answer a history request for {channel!r}")


def percentiles(buckets: dict[int, int], step_us: int, max_us: int) -> dict[str, float]:
    """p50/p99/max in milliseconds of a merged latency histogram."""
    total = sum(buckets.values())
    result = {"count": total, "p50": 0.0, "p99": 0.0, "max": max_us / 1000}
    if not total:
        return result
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        seen, want = 0, q * total
        for bucket in sorted(buckets):
            seen += buckets[bucket]
            if seen > want:
                result[name] = (bucket + 0.5) * step_us / 1000
                break
    return result


@dataclass
class Fleet:
    """hubload client processes; each takes one loopback source address of its own."""

    target: Target
    binary: Path = field(default_factory=build)
    processes: list[subprocess.Popen] = field(default_factory=list)
    clients: int = 0

    def add(self, count: int, rate: float, backoff_base: float = 0.5, backoff_cap: float = 5.0) -> None:
        """``count`` more clients opened at ``rate`` per second in all, over as few
        processes as the socket limit allows."""
        parts = -(-count // SOCKETS_PER_PROCESS)
        for part in range(parts):
            size = count // parts + (1 if part < count % parts else 0)
            index = len(self.processes)
            t = self.target
            command = [
                str(self.binary), "--port", str(t.port), "--clients", str(size),
                "--first", str(self.clients), "--channels", str(t.channels), "--prefix", t.prefix,
                "--shared", t.shared, "--token", t.token, "--rate", str(rate / parts),
                "--sources", f"127.0.{1 + index // 250}.{2 + index % 250}",
                "--backoff-base", str(backoff_base), "--backoff-cap", str(backoff_cap),
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            )
            self.clients += size

    def _ask(self, command: str) -> list[dict]:
        for process in self.processes:
            if process.poll() is not None:
                raise HubloadError(f"a hubload process exited with {process.returncode}")
            process.stdin.write(command + "\n")
        return [json.loads(process.stdout.readline()) for process in self.processes]

    def report(self) -> dict:
        """The counters of every process added up."""
        reports = self._ask("report")
        return {name: sum(r[name] for r in reports) for name in COUNTERS}

    def latency(self) -> dict[str, float]:
        """Delivery latency since the last ``reset``, over every process."""
        buckets: dict[int, int] = {}
        step, most = 100, 0
        for histogram in self._ask("histogram"):
            step, most = histogram["step_us"], max(most, histogram["max_us"])
            for bucket, count in histogram["buckets"]:
                buckets[bucket] = buckets.get(bucket, 0) + count
        return percentiles(buckets, step, most)

    def reset(self) -> None:
        for process in self.processes:
            process.stdin.write("reset\n")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.stdin.write("quit\n")
                    process.stdin.flush()
                except BrokenPipeError:
                    pass
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def publisher(target: Target, count: int, rate: float, broadcast: bool, binary: Path | None = None) -> subprocess.Popen:
    """A hubload publisher: ``count`` HTTP API calls at ``rate`` per second, each a
    publication to the shared channel or (``broadcast``) one to every channel."""
    command = [
        str(binary or build()), "--port", str(target.port), "--api-key", target.api_key,
        "--publish", str(count), "--rate", str(rate), "--shared", target.shared,
        "--prefix", target.prefix, "--concurrency", "32",
    ]  # fmt: skip
    if broadcast:
        command += ["--channels", str(target.channels)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def published(process: subprocess.Popen, timeout: float) -> dict:
    """The publisher's result once it finishes: sent, ok, failed, seconds, rate."""
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise HubloadError(f"no result from the publisher: {err[-300:]}")
    return json.loads(lines[-1])
