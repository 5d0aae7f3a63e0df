"""The hub's three encodings side by side, in one run: the codec, then the hub's broadcast.

    python -m bench.hub_protocols            # run both, print the tables
    python -m bench.hub_protocols --docs     # ... and rewrite their part of docs/benchmarks.md

1. Codec: ``bench/test_hub_codec_bench.py`` (pytest-benchmark, CPU time of the
   process, median round): a ``pub`` push encoded by the hub's wire and decoded
   by a receiver, JSON (orjson), MessagePack and Protobuf (upb), payloads of
   64 B, 300 B and 16 KiB; and the bytes of each push on the wire.
2. Broadcast through the real hub: ``python -m fastws`` (one process, memory
   broker) and the C load generator (``bench/loadgen.c``, mode ``hub``): 1,000
   subscribers of one channel in the encoding under test, then one connection
   publishes N messages of a 300 B JSON payload. The generator counts the
   deliveries (every subscriber gets every publication) and reads the hub's CPU
   time from /proc; it spends a few hundred ns per message, so it does not
   measure itself. Encodings take turns, ``--rounds`` times; the median round
   is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.loadgen import build, parse_result
from bench.system import cpu_model
from fastws.codec import build_frame
from fastws.hub.protocol.wire import SUBPROTOCOLS, wire_for

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- hub-protocols:begin -->"
END = "<!-- hub-protocols:end -->"
CODEC_FILE = "bench/test_hub_codec_bench.py"
CODEC_ARGS = [
    "--benchmark-only",
    "--benchmark-min-time=0.002",
    "--benchmark-max-time=0.3",
    "--benchmark-min-rounds=5",
    "--benchmark-timer=time.process_time",
    "-p",
    "no:cacheprovider",
    "-q",
]
CHANNEL = "fanout"  # the default namespace: no history, no presence, the fan-out alone
NAMES = {"fastws.json": "JSON", "fastws.msgpack": "MessagePack", "fastws.protobuf": "Protobuf"}


# -- 1. codec ----------------------------------------------------------------------------


def run_codec() -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "codec.json"
        args = ["-m", "pytest", CODEC_FILE, *CODEC_ARGS]
        done = subprocess.run(
            [sys.executable, *args, f"--benchmark-json={out}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"the codec benchmarks failed:\n{done.stdout}\n{done.stderr}")
        rows = []
        for bench in json.loads(out.read_text())["benchmarks"]:
            info = bench["extra_info"]
            rows.append({**info, "seconds": bench["stats"]["median"]})
    return rows, " ".join(["python", *args])


def codec_tables(rows: list[dict]) -> str:
    parts = []
    for op, impls, title in (
        ("encode", ["json", "msgpack", "protobuf", "protobuf-pooled"], "**Encode** a `pub` push"),
        ("decode", ["json", "msgpack", "protobuf", "protobuf-client"], "**Decode** a `pub` push"),
    ):
        by_key = {(r["payload"], r["label"], r["impl"]): r for r in rows if r["kind"] == op}
        header = ["payload", *impls, "protobuf / json"]
        body = []
        for payload in ("json", "binary"):
            for label in ("64 B", "300 B", "16 KiB"):
                cells = [f"{payload} {label}"]
                for impl in impls:
                    row = by_key.get((payload, label, impl))
                    cells.append(f"{row['seconds'] * 1e6:.2f}" if row else "-")
                pb, js = (
                    by_key.get((payload, label, "protobuf")),
                    by_key.get((payload, label, "json")),
                )
                cells.append(f"{pb['seconds'] / js['seconds']:.2f}x" if pb and js else "-")
                body.append(cells)
        parts.append(f"{title}, us per message (median):\n\n{markdown(header, body)}")
    sizes = {(r["payload"], r["label"], r["impl"]): r["wire_bytes"] for r in rows}
    header = ["payload", "json", "msgpack", "protobuf", "protobuf / json"]
    body = []
    for payload in ("json", "binary"):
        for label in ("64 B", "300 B", "16 KiB"):
            n = [sizes[(payload, label, impl)] for impl in ("json", "msgpack", "protobuf")]
            body.append([f"{payload} {label}", *map(str, n), f"{n[2] / n[0]:.2f}x"])
    parts.append(
        f"**Bytes on the wire** of the push (payload of its frame):\n\n{markdown(header, body)}"
    )
    return "\n\n".join(parts)


# -- 2. broadcast through the hub -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    hub = subprocess.Popen(
        [
            sys.executable, "-m", "fastws", "--insecure", "--port", str(port),
            "--command-rate", "1000000", "--command-burst", "1000000",
            "--max-connections", "10000", "--log-level", "warning",
        ],
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return hub
        except OSError:
            time.sleep(0.1)
    hub.kill()
    sys.exit("the hub did not start")


def frames(subprotocol: str, commands: list[dict]) -> bytes:
    """Commands as a client sends them: encoded by the client's wire, masked frames."""
    wire = wire_for(subprotocol).client
    return b"".join(build_frame(wire.opcode, wire.dumps(c), mask=True) for c in commands)


def payload() -> dict:
    from bench.test_hub_codec_bench import json_payload

    return json_payload(300)


def broadcast_once(
    loadgen: Path, hub: subprocess.Popen, port: int, subprotocol: str, conns: int, messages: int
) -> dict:
    connect = {"id": 1, "method": "connect", "params": {}}
    subscribe = {"id": 2, "method": "subscribe", "params": {"channel": CHANNEL}}
    data = payload()
    publishes = [
        {"id": i + 2, "method": "publish", "params": {"channel": CHANNEL, "data": data}}
        for i in range(messages)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        hello, publish = Path(tmp) / "hello", Path(tmp) / "publish"
        hello.write_bytes(frames(subprotocol, [connect, subscribe]))
        publish.write_bytes(frames(subprotocol, [connect, *publishes]))
        done = subprocess.run(
            [
                str(loadgen), "--port", str(port), "--mode", "hub", "--conns", str(conns),
                "--messages", str(messages), "--subprotocol", subprotocol,
                "--hello", str(hello), "--hello-replies", "2", "--publish", str(publish),
                "--server-pid", str(hub.pid), "--path", "/connection", "--timeout", "120",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
    if done.returncode:
        sys.exit(f"the load generator failed: {done.stderr}")
    result = parse_result(done.stdout)
    if not result["complete"]:
        sys.exit(f"incomplete broadcast: {result}")
    return result


def run_broadcast(conns: int, messages: int, rounds: int) -> dict[str, list[dict]]:
    loadgen, _ = build()
    port = free_port()
    hub = start_hub(port)
    results: dict[str, list[dict]] = {sub: [] for sub in SUBPROTOCOLS}
    try:
        for _ in range(rounds):
            for sub in SUBPROTOCOLS:
                results[sub].append(broadcast_once(loadgen, hub, port, sub, conns, messages))
                time.sleep(0.5)  # the previous receivers' closes are processed
    finally:
        hub.terminate()
        hub.wait(10)
    return results


def push_bytes(subprotocol: str) -> int:
    from bench.test_hub_codec_bench import push_frame

    return len(push_frame(subprotocol.split(".")[1], "json", 300))


def broadcast_table(results: dict[str, list[dict]]) -> str:
    header = [
        "encoding", "deliveries/s", "min-max", "hub CPU us/delivery", "min-max",
        "hub CPU us/publication", "push bytes", "loadgen CPU %",
    ]  # fmt: skip
    body = []
    for sub, runs in results.items():
        median = sorted(runs, key=lambda r: r["deliveries_per_s"])[len(runs) // 2]
        rates = [r["deliveries_per_s"] for r in runs]
        per_delivery = median["server_cpu_s"] / median["deliveries"]
        cpu = [r["server_cpu_s"] / r["deliveries"] * 1e6 for r in runs]
        body.append(
            [
                NAMES[sub],
                f"{median['deliveries_per_s'] / 1e3:.0f}k",
                f"{min(rates) / 1e3:.0f}k-{max(rates) / 1e3:.0f}k",
                f"{per_delivery * 1e6:.2f}",
                f"{min(cpu):.2f}-{max(cpu):.2f}",
                f"{median['server_cpu_s'] / median['messages'] * 1e6:.0f}",
                str(push_bytes(sub)),
                f"{median['client_cpu_s'] / median['seconds'] * 100:.0f}",
            ]
        )
    return markdown(header, body)


# -- output ---------------------------------------------------------------------------------


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment() -> str:
    from importlib.metadata import version

    from google.protobuf.internal import api_implementation

    packages = ", ".join(f"{n} {version(n)}" for n in ("orjson", "msgpack", "protobuf"))
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, {packages} "
        f"(backend {api_implementation.Type()}), load average {os.getloadavg()[0]:.1f} at the end"
    )


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n\n{section}\n\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md")
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows, codec_command = run_codec()
    results = run_broadcast(args.conns, args.messages, args.rounds)
    command = (
        f"python -m bench.hub_protocols --conns {args.conns} --messages {args.messages} "
        f"--rounds {args.rounds}"
    )
    section = (
        f"Command: `{command}` (the codec part runs `{codec_command}`)\n\n"
        f"Machine: {environment()}\n\n{codec_tables(rows)}\n\n"
        f"**Broadcast through the hub**: {args.conns:,} subscribers, {args.messages:,} "
        f"publications of a 300 B JSON payload, median of {args.rounds} rounds:\n\n"
        f"{broadcast_table(results)}"
    )
    print(section)
    if args.docs:
        write_docs(section)


if __name__ == "__main__":
    main()
