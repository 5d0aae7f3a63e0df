"""Cluster benchmark: two hub nodes on one Redis, publications on node A, subscribers on B.

    python -m bench.cluster                                 # fastws and python-socketio
    python -m bench.cluster --systems fastws --rates 500,1000 --duration 3
    python -m bench.cluster --docs                          # also rewrite docs/benchmarks.md

For each system, node A and node B run as their own processes with Redis
(``redis-server`` on a free port, no persistence) between them:

- fastws: ``python -m fastws --insecure --broker redis://...``; subscribers subscribe to
  ``bench-room``; the publisher sends ``publish`` commands to A.
- python-socketio: ``bench/cluster_sio_server.py`` (AsyncServer on aiohttp with
  ``AsyncRedisManager``); subscribers join the room ``bench`` on B; the
  publisher emits ``pub`` on A, whose handler emits to the room.

M subscribers (200) connect to B; the publisher sends at a steady rate R per
second, each payload carrying its send time (``time.monotonic()``, same
machine). A fixed number of *probe* subscribers parse every message and give
the end-to-end latency; the others only count bytes (an asyncio Protocol after
a hand-made upgrade), and their deliveries are bytes divided by the probes'
mean frame size, so the receiving side costs little and is the same for both
systems. Probes speak each protocol over ``fastws.connect``; with
``--official-clients`` all probes but one are the systems' own clients
(``fastws.hub.Client``, ``socketio.AsyncClient``) instead. Each rate runs a warm-up second, then ``--duration`` seconds measured:
deliveries per second arrive at B's subscribers, p50/p99 latency of the probes,
and CPU of node B per delivery. A system's ladder stops after the first rate it
cannot sustain: arrivals in the window under 97% of what the window's
publications owe (less one message per subscriber still in flight), or more
than half a second of messages still queued when the publisher stops.

CPU placement (2 cores or more): node B alone on the last core; Redis, node A
and this driver on core 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

import fastws
from bench.system import cpu_model
from fastws.codec import OP_TEXT
from fastws.protocol import Listener

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"
BEGIN, END = "<!-- cluster:begin -->", "<!-- cluster:end -->"
CHANNEL = "bench-room"  # the default namespace: no history, presence nor join/leave
PAD = "x" * 64
SUSTAINED = 0.97
DEFAULT_RATES = "10,25,50,100,200,400,700,1000,1500,2000,3000,4000,5000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinning() -> tuple[list[str], list[str], set[int] | None]:
    """taskset prefixes (node B, the rest) and this driver's cores."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or not shutil.which("taskset"):
        return [], [], None
    return ["taskset", "-c", str(cores[-1])], ["taskset", "-c", str(cores[0])], {cores[0]}


def wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Processes:
    """Child processes started for one system; all killed at the end."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []
        self.logdir = Path(tempfile.mkdtemp(prefix="fastws-cluster-bench-"))

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 (the child holds it)
        with log:
            child = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.children.append(child)
        return child

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait(10)
        shutil.rmtree(self.logdir, ignore_errors=True)


# -- the receiving side ------------------------------------------------------------------


def masked_text(payload: bytes) -> bytes:
    """One masked client text frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


class Counter(asyncio.Protocol):
    """A subscriber that upgrades by hand and then only counts the bytes it receives."""

    def __init__(self, request: bytes, after_upgrade: list[bytes]) -> None:
        self.request = request
        self.after_upgrade = after_upgrade
        self.head = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.bytes = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
                return
            data = self.head[end + 4 :]
            for frame in self.after_upgrade:
                self.transport.write(frame)
            self.upgraded.set_result(None)
        self.bytes += len(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"closed before the upgrade: {exc}"))


def upgrade_request(port: int, target: str, subprotocol: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Probe(Listener):
    """A subscriber that parses every message: latency and the exact frame sizes."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.latencies: list[float] = []
        self.frames = 0
        self.frame_bytes = 0
        self.ws = None

    def on_connect(self, ws) -> None:
        self.ws = ws

    def on_message(self, ws, opcode: int, payload: memoryview) -> None:
        now = time.monotonic()
        sent = self.system.sent_time(ws, payload)
        if sent is None:
            return
        self.latencies.append(now - sent)
        self.frames += 1
        size = len(payload)
        self.frame_bytes += size + (2 if size < 126 else 4)

    def reset(self) -> None:
        self.latencies = []
        self.frames = 0
        self.frame_bytes = 0


class OfficialProbe:
    """A subscriber using the system's own client library (``--official-clients``)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.frames = 0
        self.frame_bytes = 0  # unknown: frame sizes come from the raw probes
        self.close: Callable[[], object] | None = None

    def record(self, sent: float) -> None:
        self.latencies.append(time.monotonic() - sent)
        self.frames += 1

    def reset(self) -> None:
        self.latencies = []
        self.frames = 0


class Replies(Listener):
    """The publisher's connection: counts replies (fastws) and errors."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.errors = 0
        self.ready = asyncio.get_running_loop().create_future()

    def on_message(self, ws, opcode: int, payload: memoryview) -> None:
        self.system.publisher_message(self, ws, bytes(payload))


# -- the systems ---------------------------------------------------------------------------


class System:
    name = ""

    def start_node(self, procs: Processes, name: str, port: int, redis: str, taskset: list[str]):
        raise NotImplementedError

    def subscriber_target(self) -> tuple[str, str | None, list[bytes]]:
        """(request target, subprotocol, frames to send once upgraded)."""
        raise NotImplementedError

    async def open_probe(self, port: int, probe: Probe) -> None:
        raise NotImplementedError

    async def open_official(self, port: int, probe: OfficialProbe) -> None:
        raise NotImplementedError

    async def open_publisher(self, port: int) -> tuple[object, Replies]:
        raise NotImplementedError

    def publish_frame(self, sequence: int) -> bytes:
        raise NotImplementedError

    def sent_time(self, ws, payload: memoryview) -> float | None:
        raise NotImplementedError

    def publisher_message(self, replies: Replies, ws, payload: bytes) -> None:
        raise NotImplementedError


class Fastws(System):
    name = "fastws"

    def start_node(self, procs, name, port, redis, taskset):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
        command = [
            *taskset, sys.executable, "-m", "fastws", "--insecure",
            "--port", str(port), "--broker", redis, "--log-level", "warning",
            "--command-rate", "1000000", "--command-burst", "1000000",
            "--ping-interval", "0", "--max-send-buffer", str(16 << 20),
        ]
        return procs.start(name, command, env)

    def subscriber_target(self):
        commands = [
            orjson.dumps({"id": 1, "method": "connect", "params": {}}),
            orjson.dumps({"id": 2, "method": "subscribe", "params": {"channel": CHANNEL}}),
        ]
        return "/connection", "fastws.json", [masked_text(c) for c in commands]

    async def open_probe(self, port, probe):
        ws = await fastws.connect(
            f"ws://127.0.0.1:{port}/connection", subprotocols=["fastws.json"], listener=probe
        )
        for command in (
            {"id": 1, "method": "connect", "params": {}},
            {"id": 2, "method": "subscribe", "params": {"channel": CHANNEL}},
        ):
            ws.send_message(OP_TEXT, orjson.dumps(command))

    async def open_official(self, port, probe):
        from fastws.hub.client import Client

        client = Client(f"ws://127.0.0.1:{port}/connection")
        await client.connect()
        await client.subscribe(CHANNEL, on_publication=lambda pub: probe.record(pub.data["t"]))
        probe.close = client.close

    async def open_publisher(self, port):
        replies = Replies(self)
        ws = await fastws.connect(
            f"ws://127.0.0.1:{port}/connection", subprotocols=["fastws.json"], listener=replies
        )
        ws.send_message(OP_TEXT, orjson.dumps({"id": 1, "method": "connect", "params": {}}))
        await asyncio.wait_for(replies.ready, 10)
        return ws, replies

    def publish_frame(self, sequence):
        data = {"t": time.monotonic(), "p": PAD}
        params = {"channel": CHANNEL, "data": data}
        return orjson.dumps({"id": sequence + 2, "method": "publish", "params": params})

    def sent_time(self, ws, payload):
        message = orjson.loads(payload)
        if message.get("push") != "pub":
            return None
        return message["data"]["t"]

    def publisher_message(self, replies, ws, payload):
        message = orjson.loads(payload)
        if message.get("id") == 1:
            if not replies.ready.done():
                replies.ready.set_result(None)
        elif "error" in message:
            replies.errors += 1


class SocketIO(System):
    name = "python-socketio"

    def start_node(self, procs, name, port, redis, taskset):
        command = [
            *taskset, sys.executable, "-m", "bench.cluster_sio_server",
            "--port", str(port), "--redis", redis,
        ]
        return procs.start(name, command)

    def subscriber_target(self):
        return "/socket.io/?EIO=4&transport=websocket&role=sub", None, [masked_text(b"40")]

    async def open_probe(self, port, probe):
        await fastws.connect(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&role=sub",
            listener=probe,
        )
        # "40" (connect to the namespace) goes out when the server's open packet arrives.

    async def open_official(self, port, probe):
        import socketio

        client = socketio.AsyncClient(reconnection=False)
        client.on("msg", lambda data: probe.record(data["t"]))
        await client.connect(f"http://127.0.0.1:{port}?role=sub", transports=["websocket"])
        probe.close = client.disconnect

    async def open_publisher(self, port):
        replies = Replies(self)
        ws = await fastws.connect(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&role=pub",
            listener=replies,
        )
        await asyncio.wait_for(replies.ready, 10)
        return ws, replies

    def publish_frame(self, sequence):
        return b'42["pub",' + orjson.dumps({"t": time.monotonic(), "p": PAD}) + b"]"

    def sent_time(self, ws, payload):
        head = bytes(payload[:2])
        if head == b"42":
            return orjson.loads(payload[2:])[1]["t"]
        if head[:1] == b"0":
            ws.send_message(OP_TEXT, b"40")
        elif head == b"2":
            ws.send_message(OP_TEXT, b"3")
        return None

    def publisher_message(self, replies, ws, payload):
        if payload[:1] == b"0":
            ws.send_message(OP_TEXT, b"40")
        elif payload[:2] == b"40" and not replies.ready.done():
            replies.ready.set_result(None)
        elif payload == b"2":
            ws.send_message(OP_TEXT, b"3")
        elif payload[:2] == b"44":
            replies.errors += 1


SYSTEMS: dict[str, Callable[[], System]] = {"fastws": Fastws, "socketio": SocketIO}


# -- one run -----------------------------------------------------------------------------------


@dataclass
class Step:
    system: str
    rate: int
    subscribers: int
    offered: float  # deliveries per second the window's publications asked for
    delivered: float  # deliveries per second measured at B's subscribers
    p50_ms: float
    p99_ms: float
    node_b_cpu: float  # fraction of one core
    node_a_cpu: float
    redis_cpu: float
    driver_cpu: float
    node_b_us_per_delivery: float
    publish_errors: int
    sustained: bool


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def publish_steadily(ws, system: System, rate: int, seconds: float, start_seq: int) -> int:
    loop = asyncio.get_running_loop()
    begin = loop.time()
    sent = 0
    while True:
        elapsed = loop.time() - begin
        if elapsed >= seconds:
            return start_seq + sent
        due = int(elapsed * rate) - sent
        for _ in range(due):
            ws.send_message(OP_TEXT, system.publish_frame(start_seq + sent))
            sent += 1
        await asyncio.sleep(0.001)


async def run_system(
    system: System,
    rates: list[int],
    subscribers: int,
    probes: int,
    duration: float,
    official: bool = False,
    placement: tuple[list[str], list[str]] = ([], []),
) -> list[Step]:
    node_b_taskset, rest_taskset = placement
    procs = Processes()
    steps: list[Step] = []
    try:
        redis_port = free_port()
        redis = procs.start(
            "redis",
            [*rest_taskset, "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(procs.logdir)],
        )
        wait_port(redis_port, redis, "redis-server")
        url = f"redis://127.0.0.1:{redis_port}/0"
        port_a, port_b = free_port(), free_port()
        node_a = system.start_node(procs, "node-a", port_a, url, rest_taskset)
        node_b = system.start_node(procs, "node-b", port_b, url, node_b_taskset)
        wait_port(port_a, node_a, "node A")
        wait_port(port_b, node_b, "node B")
        await asyncio.sleep(0.5)

        loop = asyncio.get_running_loop()
        target, subprotocol, frames = system.subscriber_target()
        counters: list[Counter] = []
        probe_list: list[Probe | OfficialProbe] = []
        every = max(1, subscribers // probes)
        for i in range(subscribers):
            if i % every == 0 and len(probe_list) < probes:
                if official and probe_list:  # the first stays raw: it knows frame sizes
                    probe = OfficialProbe()
                    await system.open_official(port_b, probe)
                else:
                    probe = Probe(system)
                    await system.open_probe(port_b, probe)
                probe_list.append(probe)
            else:
                request = upgrade_request(port_b, target, subprotocol)
                _, counter = await loop.create_connection(
                    lambda r=request: Counter(r, frames), "127.0.0.1", port_b
                )
                await asyncio.wait_for(counter.upgraded, 10)
                counters.append(counter)
        publisher, replies = await system.open_publisher(port_a)

        # Until every subscriber receives: subscriptions and rooms are in place.
        sequence = 0
        for _ in range(200):
            sequence = await publish_steadily(publisher, system, 100, 0.1, sequence)
            if all(c.bytes > 200 for c in counters) and all(p.frames for p in probe_list):
                break
        else:
            raise RuntimeError(f"{system.name}: not every subscriber receives")
        await asyncio.sleep(0.5)

        for rate in rates:
            sequence = await publish_steadily(publisher, system, rate, 1.0, sequence)  # warm-up
            for probe in probe_list:
                probe.reset()
            start_bytes = [c.bytes for c in counters]
            errors = replies.errors
            watched = (node_b.pid, node_a.pid, redis.pid, os.getpid())
            cpu_before, wall_before = [cpu_seconds(p) for p in watched], time.monotonic()
            first = sequence
            sequence = await publish_steadily(publisher, system, rate, duration, sequence)
            cpu_after, wall_after = [cpu_seconds(p) for p in watched], time.monotonic()
            asked = (sequence - first) * subscribers  # deliveries the window's publications owe
            received = [c.bytes - s for c, s in zip(counters, start_bytes, strict=True)]
            latencies = [x for p in probe_list for x in p.latencies]
            probe_frames = sum(p.frames for p in probe_list)
            raw = [p for p in probe_list if isinstance(p, Probe)]
            frame_size = sum(p.frame_bytes for p in raw) / max(1, sum(p.frames for p in raw))
            deliveries = probe_frames + sum(received) / frame_size
            wall = wall_after - wall_before
            used = [(b - a) / wall for a, b in zip(cpu_before, cpu_after, strict=True)]
            delivered = deliveries / wall
            offered = asked / wall
            cpu = cpu_after[0] - cpu_before[0]
            step = Step(
                system=system.name,
                rate=rate,
                subscribers=subscribers,
                offered=offered,
                delivered=round(delivered),
                p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
                p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
                node_b_cpu=round(used[0], 2),
                node_a_cpu=round(used[1], 2),
                redis_cpu=round(used[2], 2),
                driver_cpu=round(used[3], 2),
                node_b_us_per_delivery=round(cpu / max(1.0, deliveries) * 1e6, 2),
                publish_errors=replies.errors - errors,
                sustained=False,
            )
            # Drain whatever is still queued; how much that is tells whether it kept up.
            end_bytes = sum(c.bytes for c in counters)
            previous, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < 0.5:
                total = sum(c.bytes for c in counters)
                if total != previous:
                    previous, quiet_since = total, time.monotonic()
                await asyncio.sleep(0.05)
            counted = max(1, len(counters))
            backlog = (previous - end_bytes) / frame_size / counted  # messages per subscriber
            # Kept up: the window's arrivals match what it sent (give or take the message
            # in flight at its end), and less than half a second of work was left queued.
            step.sustained = (
                deliveries >= SUSTAINED * asked - subscribers and backlog < max(1, rate / 2)
            )
            steps.append(step)
            print(format_step(step), flush=True)
            if not step.sustained:
                break
        for counter in counters:
            counter.transport.abort()
        for probe in probe_list:
            if isinstance(probe, OfficialProbe):
                await probe.close()
            elif probe.ws is not None and probe.ws.transport is not None:
                probe.ws.transport.abort()
        publisher.transport.abort()
    except BaseException:
        for name in ("node-a", "node-b", "redis"):
            if (procs.logdir / f"{name}.log").exists():
                print(f"--- {name} ---\n{procs.log(name)}", file=sys.stderr)
        raise
    finally:
        procs.close()
    return steps


def format_step(step: Step) -> str:
    mark = "" if step.sustained else "  (not sustained)"
    return (
        f"{step.system:16} {step.rate:6}/s x {step.subscribers}: "
        f"{step.delivered:>9,.0f} deliveries/s  p50 {step.p50_ms:8.2f} ms  "
        f"p99 {step.p99_ms:8.2f} ms  node B {step.node_b_cpu:4.2f} cpu, "
        f"{step.node_b_us_per_delivery:5.2f} us/delivery; node A {step.node_a_cpu:4.2f}, "
        f"redis {step.redis_cpu:4.2f}, driver {step.driver_cpu:4.2f} cpu{mark}"
    )


# -- the report ----------------------------------------------------------------------------------


def best(steps: list[Step]) -> Step | None:
    sustained = [s for s in steps if s.sustained]
    return max(sustained, key=lambda s: s.delivered) if sustained else None


def report(steps: list[Step], command: str, machine: str) -> str:
    rows = [
        "| system | publications/s | deliveries/s offered | delivered/s | p50 ms | p99 ms "
        "| node B CPU | node B us/delivery | sustained |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in steps:
        rows.append(
            f"| {s.system} | {s.rate:,} | {s.offered:,.0f} | {s.delivered:,.0f} | {s.p50_ms:.2f} "
            f"| {s.p99_ms:.2f} | {s.node_b_cpu:.2f} | {s.node_b_us_per_delivery:.2f} "
            f"| {'yes' if s.sustained else 'no'} |"
        )
    lines = [f"Command: `{command}`", "", f"Machine: {machine}", "", *rows, ""]
    by_system: dict[str, Step] = {}
    for s in steps:
        top = best([x for x in steps if x.system == s.system])
        if top is not None:
            by_system[s.system] = top
    if "fastws" in by_system and "python-socketio" in by_system:
        f, o = by_system["fastws"], by_system["python-socketio"]
        lines.append(
            f"- Highest sustained rate: fastws {f.delivered:,.0f} deliveries/s (p99 "
            f"{f.p99_ms:.2f} ms), python-socketio {o.delivered:,.0f} deliveries/s (p99 "
            f"{o.p99_ms:.2f} ms): {f.delivered / o.delivered:.1f}x."
        )
        within = [
            s for s in steps if s.system == "fastws" and s.sustained and s.p99_ms <= o.p99_ms
        ]
        if within:
            w = max(within, key=lambda s: s.delivered)
            lines.append(
                f"- At a p99 no worse than python-socketio's at its best ({o.p99_ms:.2f} ms): "
                f"fastws {w.delivered:,.0f} deliveries/s (p99 {w.p99_ms:.2f} ms), "
                f"**{w.delivered / o.delivered:.1f}x** python-socketio's."
            )
        peaks = {
            name: max(s.delivered for s in steps if s.system == name)
            for name in ("fastws", "python-socketio")
        }
        lines.append(
            f"- Most deliveries in any window, sustained or not: fastws "
            f"{peaks['fastws']:,.0f}/s, python-socketio {peaks['python-socketio']:,.0f}/s."
        )
        lines.append("")
    return "\n".join(lines)


def machine_line() -> str:
    cpu = cpu_model()
    versions = []
    for package in ("redis", "python-socketio", "python-engineio", "aiohttp", "uvloop"):
        try:
            import importlib.metadata

            versions.append(f"{package} {importlib.metadata.version(package)}")
        except Exception:
            pass
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    server = next((w for w in redis_version if w.startswith("v=")), "v=?")[2:]
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {os.uname().release}, Python "
        f"{sys.version.split()[0]}, redis-server {server}, {', '.join(versions)}; "
        f"load average {load:.1f} at the end of the run (the machine is shared)"
    )


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    block = f"{BEGIN}\n\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Cluster\n\n" + block + "\n"
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fastws cluster benchmark (two nodes, one Redis)")
    parser.add_argument("--systems", default="fastws,socketio", help="fastws,socketio")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument(
        "--probes", type=int, default=10, help="subscribers that parse messages (at least 1)"
    )
    parser.add_argument(
        "--official-clients",
        action="store_true",
        help="probes (but one) use fastws.hub.Client and socketio.AsyncClient",
    )
    parser.add_argument("--rates", default=DEFAULT_RATES, help="publications per second, ascending")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per rate")
    parser.add_argument("--docs", action="store_true", help="rewrite the Cluster section of docs")
    parser.add_argument(
        "--from-json", metavar="FILE", help="report a saved run (bench/results/cluster-*.json)"
    )
    parser.add_argument(
        "--results", metavar="DIR", default=str(RESULTS), help="where the run's JSON goes"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        record = json.loads(Path(args.from_json).read_text())
        steps = [Step(**s) for s in record["steps"]]
        section = report(steps, record["command"].strip(), record.get("machine", "unknown"))
        print(section)
        if args.docs:
            write_docs(section)
        return 0
    if not shutil.which("redis-server"):
        parser.exit(2, "redis-server is missing: apt-get install -y redis-server\n")
    rates = [int(r) for r in args.rates.split(",")]
    # Decided before this process is pinned: children inherit its affinity otherwise.
    node_b_taskset, rest_taskset, driver_cores = pinning()
    if driver_cores:
        os.sched_setaffinity(0, driver_cores)
    import uvloop

    steps: list[Step] = []
    for name in args.systems.split(","):
        system = SYSTEMS[name.strip()]()
        steps += uvloop.run(
            run_system(
                system,
                rates,
                args.subscribers,
                max(1, args.probes),
                args.duration,
                args.official_clients,
                (node_b_taskset, rest_taskset),
            )
        )
    command = "python -m bench.cluster " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = machine_line()
    section = report(steps, command.strip(), machine)
    print()
    print(section)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    record = {"command": command, "machine": machine, "steps": [asdict(s) for s in steps]}
    (results / f"cluster-{stamp}.json").write_text(json.dumps(record, indent=1))
    if args.docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "report", "run_system"]
