"""Runs one case against one server: start the server pinned to its core, drive it, measure."""

from __future__ import annotations

import os
import resource
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cases import Case
from bench.loadgen import LoadgenError, parse_result
from bench.registry import ServerSpec

REPO = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 30.0
SETUP_TIMEOUT = 120.0  # opening thousands of connections on a slow server
MEMORY_SETTLE = 1.0  # seconds between the last handshake and the RSS reading


class RunError(RuntimeError):
    """A run produced no valid measurement; the message says why."""


@dataclass
class Settings:
    duration: float
    warmup: float
    loadgen: Path
    loadgen_tls: bool
    logs: Path
    certfile: Path | None = None
    keyfile: Path | None = None
    server_pin: tuple[str, ...] = ()
    client_pin: tuple[str, ...] = ()
    broadcast_timeout: float = 60.0


def _read_line(stream, deadline: float, what: str) -> str:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
        raise RunError(f"timed out waiting for {what}")
    line = stream.readline()
    if not line:
        raise RunError(f"{what}: the process ended first")
    return line.strip()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds spent by the whole machine so far (user, system, interrupts, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _process_cpu_s(pid: int) -> float:
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS  # utime, stime


def _own_cpu_s() -> float:
    """This harness and its reaped children (the load generator once it has exited)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ForeignLoad:
    """CPU used by everything but this benchmark while a run lasts, in % of one core.

    On a shared machine this says how much the numbers were disturbed.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = (time.monotonic(), _machine_busy_s(), _process_cpu_s(server_pid), _own_cpu_s())

    def percent(self) -> float:
        wall, busy, server, own = self.start
        elapsed = time.monotonic() - wall
        other = (
            (_machine_busy_s() - busy)
            - (_process_cpu_s(self.server_pid) - server)
            - (_own_cpu_s() - own)
        )
        return max(0.0, 100 * other / elapsed) if elapsed > 0 else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RunError(f"no VmRSS for process {pid}")


class ServerProcess:
    """A benchmark server in its own process; ``port`` is known once it printed ``ready``."""

    def __init__(self, spec: ServerSpec, case: Case, settings: Settings, log_path: Path) -> None:
        command = [
            *settings.server_pin,
            sys.executable,
            "-m",
            spec.module,
            "--port",
            "0",
            "--mode",
            "broadcast" if case.kind == "broadcast" else "echo",
            *spec.args,
        ]
        if case.kind == "tls":
            command += ["--certfile", str(settings.certfile), "--keyfile", str(settings.keyfile)]
        env = {**os.environ, **spec.env, "PYTHONPATH": str(REPO)}
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.pid = self.process.pid  # taskset execs the server, so the pid is the server's
        try:
            line = _read_line(
                self.process.stdout, time.monotonic() + SERVER_START_TIMEOUT, "the server"
            )
            if not line.startswith("ready "):
                raise RunError(f"unexpected first line from the server: {line!r}")
            self.port = int(line.split()[1])
        except Exception as exc:
            self.stop()
            raise RunError(f"{spec.name} did not start: {exc}; {self.log_tail()}") from exc

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text().strip()
        except OSError:
            return ""
        return f"server log: {text[-800:]}" if text else "server log empty"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()


def _loadgen_command(case: Case, spec: ServerSpec, server: ServerProcess, settings: Settings) -> list[str]:
    command = [
        *settings.client_pin,
        str(settings.loadgen),
        "--port",
        str(server.port),
        "--conns",
        str(case.conns),
        "--server-pid",
        str(server.pid),
        "--setup-timeout",
        str(SETUP_TIMEOUT),
    ]
    if spec.raw:
        command.append("--raw")
    if case.kind == "tls":
        if not settings.loadgen_tls:
            raise RunError("the load generator was built without OpenSSL headers (libssl-dev)")
        command.append("--tls")
    return command


def _run_loadgen(command: list[str], timeout: float) -> dict:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"the load generator did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise RunError(f"load generator failed: {done.stderr.strip()[-500:]}")
    try:
        return parse_result(done.stdout)
    except LoadgenError as exc:
        raise RunError(str(exc)) from exc


def _echo(case: Case, spec: ServerSpec, server: ServerProcess, settings: Settings) -> dict:
    command = _loadgen_command(case, spec, server, settings) + [
        "--mode", "echo",
        "--window", str(case.window),
        "--size", str(case.size),
        "--warmup", str(settings.warmup),
        "--duration", str(settings.duration),
    ]  # fmt: skip
    foreign = ForeignLoad(server.pid)
    result = _run_loadgen(command, SETUP_TIMEOUT + settings.warmup + settings.duration + 30)
    other_cpu_pct = foreign.percent()
    if result["errors"] or result["bad_sizes"]:
        raise RunError(
            f"{result['errors']} connection errors, {result['bad_sizes']} wrong-sized echoes"
        )
    if not result["messages"]:
        raise RunError("no echo came back during the measurement")
    seconds = result["seconds"]
    return {
        "seconds": seconds,
        "count": result["messages"],
        "msgs_per_s": result["msgs_per_s"],
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "p999_us": result["p999_us"],
        "server_cpu_s": result["server_cpu_s"],
        "client_cpu_s": result["client_cpu_s"],
        "other_cpu_pct": other_cpu_pct,
        "setup_s": result["setup_s"],
    }


def _broadcast(case: Case, spec: ServerSpec, server: ServerProcess, settings: Settings) -> dict:
    command = _loadgen_command(case, spec, server, settings) + [
        "--mode", "broadcast",
        "--messages", str(case.messages),
        "--size", str(case.size),
        "--timeout", str(settings.broadcast_timeout),
    ]  # fmt: skip
    foreign = ForeignLoad(server.pid)
    result = _run_loadgen(command, SETUP_TIMEOUT + settings.broadcast_timeout + 30)
    other_cpu_pct = foreign.percent()
    if not result["complete"]:
        raise RunError(
            f"only {result['deliveries']} of {result['expected']} deliveries "
            f"within {settings.broadcast_timeout:.0f} s"
        )
    if result["errors"] or result["bad_sizes"]:
        raise RunError(
            f"{result['errors']} connection errors, {result['bad_sizes']} wrong-sized messages"
        )
    return {
        "seconds": result["seconds"],
        "count": result["deliveries"],
        "deliveries_per_s": result["deliveries_per_s"],
        "p50_us": "",
        "p99_us": "",
        "p999_us": "",
        "server_cpu_s": result["server_cpu_s"],
        "client_cpu_s": result["client_cpu_s"],
        "other_cpu_pct": other_cpu_pct,
        "setup_s": result["setup_s"],
    }


def _idle(case: Case, spec: ServerSpec, server: ServerProcess, settings: Settings) -> dict:
    time.sleep(0.3)  # let the freshly started server finish its own start-up allocations
    base = rss_kib(server.pid)
    command = _loadgen_command(case, spec, server, settings) + ["--mode", "idle"]
    loadgen = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(
            loadgen.stdout, time.monotonic() + SETUP_TIMEOUT + 10, "the idle connections"
        )
        if not line.startswith("ready "):
            raise RunError(f"unexpected line from the load generator: {line!r}")
        time.sleep(MEMORY_SETTLE)
        loaded = rss_kib(server.pid)
        out, err = loadgen.communicate("go\n", timeout=60)
    except (RunError, subprocess.TimeoutExpired) as exc:
        loadgen.kill()
        _, err = loadgen.communicate()
        raise RunError(f"{exc}; load generator: {err.strip()[-300:]}") from exc
    if loadgen.returncode != 0:
        raise RunError(f"load generator failed: {err.strip()[-500:]}")
    result = parse_result(line + "\n" + out)
    if result["connections"] != case.conns or result["errors"]:
        raise RunError(f"{result['connections']} of {case.conns} connections held")
    return {
        "count": case.conns,
        "rss_base_kib": base,
        "rss_loaded_kib": loaded,
        "bytes_per_conn": (loaded - base) * 1024 / case.conns,
        "setup_s": result["setup_s"],
    }


MEASURE = {"echo": _echo, "tls": _echo, "broadcast": _broadcast, "idle": _idle}


def run_one(case: Case, spec: ServerSpec, repeat: int, settings: Settings) -> dict:
    """One measurement as a flat row (see ``COLUMNS``); failures come back with ok=False."""
    row = {
        "case": case.name,
        "kind": case.kind,
        "server": spec.name,
        "repeat": repeat,
        "size": case.size,
        "conns": case.conns,
        "window": case.window,
        "messages": case.messages,
    }
    log_path = settings.logs / f"{case.name}.{spec.name}.{repeat}.log"
    try:
        server = ServerProcess(spec, case, settings, log_path)
        try:
            measured = MEASURE[case.kind](case, spec, server, settings)
            if not server.alive():
                raise RunError(f"the server exited during the run; {server.log_tail()}")
        finally:
            server.stop()
    except RunError as exc:
        return {**row, "ok": False, "error": str(exc)}
    row.update(measured, ok=True, error="")
    seconds = measured.get("seconds")
    if seconds:
        row["value"] = measured.get("msgs_per_s") or measured.get("deliveries_per_s")
        row["server_cpu_pct"] = 100 * measured["server_cpu_s"] / seconds
        row["client_cpu_pct"] = 100 * measured["client_cpu_s"] / seconds
        row["server_ns_per_msg"] = 1e9 * measured["server_cpu_s"] / measured["count"]
    else:
        row["value"] = measured["bytes_per_conn"]
    return row


COLUMNS = [
    "case", "kind", "server", "repeat", "ok", "error", "size", "conns", "window", "messages",
    "seconds", "count", "value", "msgs_per_s", "deliveries_per_s", "p50_us", "p99_us", "p999_us",
    "server_cpu_s", "client_cpu_s", "server_cpu_pct", "client_cpu_pct", "server_ns_per_msg",
    "other_cpu_pct", "rss_base_kib", "rss_loaded_kib", "bytes_per_conn", "setup_s",
]  # fmt: skip
