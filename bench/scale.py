"""``python -m bench scale``: the supervised hub with up to 100,000 subscribed, heart-beating
clients (bench/hubload.c): memory per connection, connect rate, idle CPU, fan-out
latency, sustained publishing, reconnect storms and a soak; results as JSON for
bench/scale_report.py.

Every client subscribes to one of ``channels`` channels and to one channel all share,
so one broadcast to every channel, like one publication to the shared channel, is
one delivery per client. The deliveries expected come from the hub's stream
positions (each publication it made times the channel's subscribers), not from
the publisher's answers: an API call whose answer was lost may still have
published. Every client counts gaps and duplicates by offset.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import hubload
from bench.hubload import Fleet, Target

ROOT = Path(__file__).resolve().parent.parent
SECRET = "scale-benchmark-secret-0123456789abcdef"
API_KEY = "scale-benchmark-key"
LATENCY_TARGET_MS = 120.0
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Settings:
    clients: int = 100_000
    workers: int = 6
    channels: int = 100
    connect_rate: float = 5000.0
    broker: str = "redis"  # or "memory" (no whole-hub restart then: its history dies with it)
    idle_seconds: float = 30.0
    fanout: int = 20
    sustained_rates: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 8.0)
    """Broadcasts to every channel per second; each is ``clients`` deliveries."""
    sustained_seconds: float = 10.0
    soak_seconds: float = 600.0
    soak_rate: float = 1.0
    storms: bool = True
    storm_timeout: float = 600.0
    """Seconds a storm waits for every client to be back before the run gives up."""
    phases: tuple[str, ...] = ()
    """Only these phases (``connect``, ``idle``, ``fanout``, ``sustained``, ``soak``,
    ``storm_worker``, ``storm_hub``); all of them when empty."""
    storm_rate: float | None = None
    """Broadcasts/s during the storms; by default a quarter of the delivery rate the
    sustained step measured (at most 2): publications show that nothing is lost or
    repeated, without a fan-out the machine cannot keep up with slowing the reconnects."""
    profile: bool = True
    history_size: int = 2000
    log: Callable[[str], None] = print

    @property
    def steps(self) -> list[int]:
        return sorted({max(1, round(self.clients * f)) for f in (0.1, 0.25, 0.5, 1.0)})


# -- the process tree -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def tree(pid: int) -> list[int]:
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def alive(pid: int) -> bool:
    """Is ``pid`` still running? A zombie is not: it has already closed its sockets."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def rss(pids: list[int]) -> int:
    """Resident bytes of ``pids`` (statm)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Window:
    """CPU used by some processes and by the whole machine between start and ``end``."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.cpu = cpu_seconds(pids())
        self.busy = machine_busy()

    def end(self) -> dict:
        elapsed = time.monotonic() - self.start
        busy, total = machine_busy()
        return {
            "seconds": round(elapsed, 1),
            "cpu_percent": round(100 * (cpu_seconds(self.pids()) - self.cpu) / elapsed, 1),
            "machine_busy_percent": round(100 * (busy - self.busy[0]) / max(1, total - self.busy[1]), 1),
            "load_average": round(os.getloadavg()[0], 2),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubRun:
    """``python -m fastws --workers N`` (and its Redis), started and killed by the benchmark."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="fastws-scale-", suffix=".log")[1])
        self.redis: subprocess.Popen | None = None
        self.redis_port = 0
        self.process: subprocess.Popen | None = None

    def start_redis(self) -> None:
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: _connectable(self.redis_port), 10, "redis-server")

    def start(self) -> None:
        s = self.settings
        broker = f"redis://127.0.0.1:{self.redis_port}" if s.broker == "redis" else "memory://"
        command = [
            sys.executable, "-m", "fastws", "--port", str(self.port), "--workers", str(s.workers),
            "--broker", broker, "--jwt-secret", SECRET, "--api-key", API_KEY,
            "--allow-subscribe-for-client", "--history-size", str(s.history_size),
            "--history-ttl", "3600", "--log-level", "warning",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env=env, cwd=ROOT, start_new_session=True
            )
        wait_for(lambda: len(self.workers()) == s.workers and _connectable(self.port), 60, "the hub")
        time.sleep(1.0)

    def pids(self) -> list[int]:
        return tree(self.process.pid) if self.process is not None else []

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process is not None else []

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, and wait until all of them are gone:
        a worker holding many sockets takes a while to die, and until it has, its listening
        socket keeps the port and a new hub cannot bind it."""
        if self.process is not None and self.process.poll() is None:
            pids = self.pids()
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            wait_for(lambda: not any(map(alive, pids)), 120, "the killed hub's processes to end")

    def errors(self) -> list[str]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if " ERROR " in line or "Traceback" in line]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait()


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:g} s for {what}")


# -- the scenarios ----------------------------------------------------------------------


@dataclass
class Scale:
    settings: Settings
    hub: HubRun
    fleet: Fleet
    results: dict = field(default_factory=dict)
    expected: int = 0
    """Deliveries every client should have received so far (live or recovered), in all."""
    positions: dict[str, tuple[str, int]] | None = None
    """Each channel's (epoch, offset) when the expected deliveries were last counted."""

    def log(self, text: str) -> None:
        self.settings.log(f"[{time.strftime('%H:%M:%S')}] {text}")

    def delivered(self, report: dict) -> int:
        """Publications that reached a subscriber, each once, live or recovered."""
        return report["live"] + report["recovered"] - report["duplicates"]

    def mark(self) -> None:
        """Take the channels' positions before the first publication is counted."""
        if self.positions is None:
            target = self.fleet.target
            self.positions = {c: target.position(c) for c in target.subscribers(0)}

    def count_published(self) -> int:
        """Add to ``expected`` what the hub published since the last count; that many deliveries.

        Every client must be subscribed (they are, or are coming back and recover). A
        new epoch counts its offset from zero: what the old one published after the
        last count is not known."""
        self.mark()
        target = self.fleet.target
        added = 0
        for channel, subscribers in target.subscribers(self.fleet.clients).items():
            epoch, offset = target.position(channel)
            last_epoch, last_offset = self.positions[channel]
            published = offset - last_offset if epoch == last_epoch else offset
            self.positions[channel] = epoch, offset
            added += published * subscribers
        self.expected += added
        return added

    def wait_delivered(self, timeout: float) -> dict:
        def complete() -> dict | None:
            report = self.fleet.report()
            return report if self.delivered(report) >= self.expected else None

        with contextlib.suppress(TimeoutError):
            wait_for(complete, timeout, "every delivery", 0.5)
        # What was still on its way to the broker when the publisher ended is counted now.
        if self.count_published():
            with contextlib.suppress(TimeoutError):
                wait_for(complete, timeout, "every delivery", 0.5)
        return self.fleet.report()

    def publish(self, count: int, rate: float, broadcast: bool) -> dict:
        """``count`` API calls at ``rate``; the publisher's result with ``deliveries``, what
        the hub published times the subscribers."""
        self.mark()
        result = hubload.published(
            hubload.publisher(self.fleet.target, count, rate, broadcast, self.fleet.binary),
            timeout=count / rate + 120,
        )
        return result | {"deliveries": self.count_published()}

    def connect(self) -> None:
        s = self.settings
        baseline = rss(self.hub.pids())
        steps, previous, total_seconds = [], 0, 0.0
        for step in s.steps:
            start = time.monotonic()
            self.fleet.add(step - previous, s.connect_rate)

            def ready(step: int = step) -> bool:
                return self.fleet.report()["ready"] >= step

            wait_for(ready, max(600, 4 * step / s.connect_rate), f"{step} clients", 0.25)
            seconds = time.monotonic() - start
            total_seconds += seconds
            time.sleep(3)
            now = rss(self.hub.pids())
            steps.append({
                "clients": step, "seconds": round(seconds, 2),
                "connect_rate": round((step - previous) / seconds),
                "rss_bytes": now, "bytes_per_connection": round((now - baseline) / step),
                "per_worker": self.per_worker(),
            })  # fmt: skip
            self.log(f"{step} clients ready in {seconds:.1f} s; {(now - baseline) / step / 1024:.2f} KiB each")
            previous = step
        self.results["baseline_rss_bytes"] = baseline
        self.results["steps"] = steps
        self.results["time_to_all_seconds"] = round(total_seconds, 1)
        self.results["offered_connect_rate"] = s.connect_rate

    def per_worker(self) -> list[int]:
        """Established connections per worker (sockets in its descriptor table)."""
        return sorted(open_files(pid) for pid in self.hub.workers())

    def idle(self) -> None:
        s = self.settings
        window = Window(self.hub.pids)
        fleet = Window(lambda: self.fleet.pids)
        pings = self.fleet.report()["pings"]
        profile = self.profile_worker(s.idle_seconds * 0.8) if s.profile else None
        time.sleep(s.idle_seconds)
        self.results["idle"] = window.end() | {
            "pings": self.fleet.report()["pings"] - pings, "fleet_cpu_percent": fleet.end()["cpu_percent"]
        }
        if profile is not None:
            self.results["idle"]["profile"] = profiled(profile)
        self.log(f"idle: {self.results['idle']}")

    def fanout(self) -> None:
        self.fleet.reset()
        window = Window(self.hub.pids)
        result = self.publish(self.settings.fanout, 1.0, broadcast=False)
        report = self.wait_delivered(60)
        self.results["fanout"] = self.fleet.latency() | window.end() | {
            "publications": result["deliveries"] // max(1, self.fleet.clients),
            "complete": self.delivered(report) == self.expected,
        }
        self.log(f"fan-out: {self.results['fanout']}")

    def sustained(self) -> None:
        s, rows = self.settings, []
        for rate in s.sustained_rates:
            self.fleet.reset()
            window = Window(self.hub.pids)
            count = max(1, round(rate * s.sustained_seconds))
            profile = self.profile_worker(s.sustained_seconds * 0.6) if s.profile else None
            result = self.publish(count, rate, broadcast=True)
            report = self.wait_delivered(60)
            latency = self.fleet.latency()
            row = {
                "broadcasts_per_second": rate, "publications_per_second": rate * s.channels,
                "deliveries_per_second": round(result["deliveries"] / result["seconds"]),
                "achieved_rate": result["rate"], "complete": self.delivered(report) == self.expected,
            } | latency | window.end()  # fmt: skip
            if profile is not None:
                row["profile"] = profiled(profile)
            rows.append(row)
            self.log(f"sustained {rate}/s: p99 {latency['p99']} ms, {row['deliveries_per_second']} deliveries/s")
            if latency["p99"] > LATENCY_TARGET_MS or result["rate"] < 0.9 * rate:
                break
        self.results["sustained"] = rows

    def profile_worker(self, seconds: float) -> tuple[subprocess.Popen, Path] | None:
        workers = self.hub.workers()
        if not workers:
            return None
        out = Path(tempfile.mkstemp(prefix="fastws-scale-", suffix=".txt")[1])
        command = [
            "py-spy", "record", "--pid", str(workers[0]), "--duration", str(max(1, int(seconds))),
            "--format", "raw", "--output", str(out), "--nonblocking", "--rate", "50",
        ]  # fmt: skip
        try:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except FileNotFoundError:
            self.log("py-spy not found (pip install py-spy): no profile of the workers")
            out.unlink(missing_ok=True)
            return None
        return process, out

    def storm_worker(self) -> None:
        """SIGKILL one worker while publishing; its clients come back through the others."""
        self.results["worker_kill"] = self.storm(lambda: os.kill(self.hub.workers()[0], signal.SIGKILL))

    def storm_hub(self) -> None:
        """SIGKILL the whole hub and start it again (Redis keeps history and epochs)."""

        def restart() -> None:
            self.hub.kill()
            self.hub.start()

        self.results["hub_restart"] = self.storm(restart)

    def storm_rate(self) -> float:
        """Broadcasts/s while a storm is on (see ``Settings.storm_rate``)."""
        if self.settings.storm_rate is not None:
            return self.settings.storm_rate
        measured = [row["deliveries_per_second"] for row in self.results.get("sustained", [])]
        if not measured:
            return 2.0
        return round(min(2.0, max(0.05, 0.25 * measured[0] / max(1, self.fleet.clients))), 2)

    def storm(self, disaster: Callable[[], None]) -> dict:
        clients = self.fleet.clients
        before = self.fleet.report()
        rate = self.storm_rate()
        self.publish(max(2, round(5 * rate)), rate, broadcast=True)
        killed = time.monotonic()
        disaster()
        publisher = hubload.publisher(self.fleet.target, max(4, round(20 * rate)), rate, True, self.fleet.binary)
        timeline, last, peak = [], before, 0.0
        dropped = False

        def settled() -> bool:
            nonlocal last, peak, dropped
            report = self.fleet.report()
            elapsed = time.monotonic() - killed
            rate = (report["upgrades"] - last["upgrades"]) / max(1e-3, elapsed - (timeline[-1][0] if timeline else 0))
            peak = max(peak, rate)
            timeline.append((round(elapsed, 2), report["ready"], round(rate)))
            last = report
            dropped = dropped or report["ready"] < clients
            return dropped and report["ready"] == clients

        wait_for(settled, self.settings.storm_timeout, "every client back", 0.25)
        back = time.monotonic() - killed
        hubload.published(publisher, 120)
        self.count_published()
        report = self.wait_delivered(120)
        diff = {name: report[name] - before[name] for name in hubload.COUNTERS if name != "ready"}
        outcome = {
            "seconds_until_all_back": round(back, 2), "peak_handshakes_per_second": round(peak),
            "dropped": diff["drops"], "duplicates": diff["duplicates"], "gaps": diff["gaps"],
            "unrecovered": diff["unrecovered"], "recovered": diff["recovered"],
            "resubscribed": diff["resubscribes"], "broadcasts_per_second": rate,
            "complete": self.delivered(report) == self.expected, "timeline": timeline,
            "missing": self.expected - self.delivered(report), "load_average": round(os.getloadavg()[0], 2),
        }  # fmt: skip
        self.log(f"storm: { {k: v for k, v in outcome.items() if k != 'timeline'} }")
        return outcome

    def soak(self) -> None:
        s = self.settings
        count = max(1, round(s.soak_rate * s.soak_seconds))
        publisher = hubload.publisher(self.fleet.target, count, s.soak_rate, True, self.fleet.binary)
        start = time.monotonic()
        samples = []
        errors_before = len(self.hub.errors())
        cpu_before, at = cpu_seconds(self.hub.pids()), start
        while publisher.poll() is None and time.monotonic() - start < s.soak_seconds + 60:
            time.sleep(5)
            now, cpu = time.monotonic(), cpu_seconds(self.hub.pids())
            samples.append({
                "t": round(now - start, 1), "rss_bytes": rss(self.hub.pids()),
                "cpu_percent": round(100 * (cpu - cpu_before) / (now - at), 1),
                "files": sum(open_files(pid) for pid in self.hub.pids()),
                "ready": self.fleet.report()["ready"], "load_average": round(os.getloadavg()[0], 2),
            })  # fmt: skip
            cpu_before, at = cpu, now
        hubload.published(publisher, 60)
        published = self.count_published()
        report = self.wait_delivered(60)
        warm = [x for x in samples if x["t"] >= min(60.0, s.soak_seconds / 5)] or samples
        self.results["soak"] = {
            "seconds": round(time.monotonic() - start), "publications": published // max(1, self.fleet.clients) * s.channels,
            "rss_after_warmup": warm[0]["rss_bytes"], "rss_end": samples[-1]["rss_bytes"],
            "drift_percent": round(100 * (samples[-1]["rss_bytes"] / warm[0]["rss_bytes"] - 1), 2),
            "errors": len(self.hub.errors()) - errors_before, "complete": self.delivered(report) == self.expected,
            "samples": samples,
        }  # fmt: skip
        self.log(f"soak: drift {self.results['soak']['drift_percent']} %")


def profiled(job: tuple[subprocess.Popen, Path] | None, top: int = 12) -> list[tuple[str, float]]:
    """The functions a py-spy raw profile saw running most, with their share of samples."""
    if job is None:
        return []
    process, path = job
    process.wait(120)
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    path.unlink(missing_ok=True)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:top]
    return [(name, round(100 * count / max(1, total), 1)) for name, count in ranked]


def token() -> str:
    """The connection token every client sends (one user, many connections)."""
    from fastws.hub.config import HubConfig
    from fastws.hub.tokens import connection_token

    return connection_token(HubConfig(jwt_secret=SECRET), "load", 86400)


def run(settings: Settings) -> dict:
    """Every scenario in order on one hub; the results as a dict (JSON-ready)."""
    hub = HubRun(settings)
    if settings.broker == "redis":
        hub.start_redis()
    hub.start()
    fleet = Fleet(Target(hub.port, token(), API_KEY, settings.channels))
    scale = Scale(settings, hub, fleet)
    started = time.time()
    phases = [scale.connect, scale.idle, scale.fanout, scale.sustained]
    if settings.soak_seconds > 0:
        phases.append(scale.soak)
    if settings.storms:
        phases.append(scale.storm_worker)
        if settings.broker == "redis":
            phases.append(scale.storm_hub)
    if settings.phases:
        unknown = set(settings.phases) - {phase.__name__ for phase in phases}
        if unknown:
            raise ValueError(f"no such phase in this run: {', '.join(sorted(unknown))}")
        phases = [phase for phase in phases if phase.__name__ in settings.phases]
    try:
        for phase in phases:
            try:
                phase()
            except Exception as exc:
                # What was measured before stays: a long run failing late keeps its results.
                scale.results["failed"] = {"phase": phase.__name__, "error": repr(exc)}
                scale.log(f"{phase.__name__} failed: {exc!r}")
                break
        final = fleet.report()
        scale.results["final"] = final | {"expected": scale.expected, "delivered": scale.delivered(final)}
        scale.results["errors_in_log"] = hub.errors()[:20]
    finally:
        fleet.close()
        hub.close()
    settings_dict = {k: v for k, v in asdict(settings).items() if k != "log"}
    return {"settings": settings_dict, "started": started, "cores": os.cpu_count(), **scale.results}
