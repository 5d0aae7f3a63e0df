"""What one delivery of a shared frame costs the server: ``python -m bench.fanout``.

The hub's fan-out queues one prebuilt frame on every subscriber; at 100,000
subscribers the cost per delivery is the whole story. This runs a fastws server
in this process and a reader process that holds ``--clients`` connections and
discards what arrives, then times ``fastws.broadcast`` of one message to all of
them, up to the moment the loop has handed every byte to the transports. Each
round waits until the kernel has taken everything before the next starts, so
rounds do not overlap. Wall and CPU time of the server process, per delivery;
the CPU split into user space (Python, the codec, the loop) and the kernel
(on loopback the sender's send also runs the receiver's TCP input).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import statistics
import subprocess
import sys
import time

import uvloop

import fastws
from bench.system import raise_nofile_limit

UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
DRAIN_TIMEOUT = 30.0  # seconds a round may take to reach the readers


class _Discard(asyncio.Protocol):
    """Reads and drops: the reader must never be what holds the server back."""

    def data_received(self, data: bytes) -> None:
        pass


async def _read_forever(port: int, clients: int) -> None:
    loop = asyncio.get_running_loop()
    request = UPGRADE.format(key=base64.b64encode(os.urandom(16)).decode()).encode()
    batch = 500  # connections opened at once: below the listen backlog
    for start in range(0, clients, batch):
        opened = await asyncio.gather(
            *(loop.create_connection(_Discard, "127.0.0.1", port)
              for _ in range(min(batch, clients - start)))
        )  # fmt: skip
        for transport, _ in opened:
            transport.write(request)
    print("opened", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the server is done


class _Collect(fastws.Listener):
    open: set = set()

    def on_connect(self, ws: fastws.WebSocket) -> None:
        self.open.add(ws)

    def on_close(self, ws: fastws.WebSocket, code: int, reason: str) -> None:
        self.open.discard(ws)


def _user_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"fanout: timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    async with fastws.serve(
        _Collect, "127.0.0.1", 0, compression=False, ping_interval=None, backlog=4096
    ) as server:
        reader = subprocess.Popen(
            [sys.executable, "-m", "bench.fanout", "--read", str(server.port), "--clients",
             str(args.clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            line = await loop.run_in_executor(None, reader.stdout.readline)
            if line.strip() != "opened":
                raise SystemExit("fanout: the reader failed to open its connections")
            await _wait(lambda: len(_Collect.open) >= args.clients, 60, "the handshakes")
            connections = list(_Collect.open)
            message = b"x" * args.size
            wall, cpu, user = [], [], []
            for _ in range(args.warmup + args.rounds):
                done = loop.create_future()
                u0, c0, t0 = _user_seconds(), time.process_time(), time.perf_counter()
                sent = fastws.broadcast(connections, message)
                # Flushes deferred by the broadcast were scheduled before this.
                loop.call_soon(done.set_result, None)
                await done
                t1, c1, u1 = time.perf_counter(), time.process_time(), _user_seconds()
                if sent != args.clients:
                    raise SystemExit(f"fanout: queued on {sent} of {args.clients} connections")
                wall.append((t1 - t0) / sent * 1e6)
                cpu.append((c1 - c0) / sent * 1e6)
                user.append((u1 - u0) / sent * 1e6)
                await _wait(
                    lambda: not any(ws.write_buffer_size for ws in connections),
                    DRAIN_TIMEOUT, "the readers",
                )  # fmt: skip
                await asyncio.sleep(args.pause)
        finally:
            reader.stdin.close()
            reader.wait(timeout=30)
    wall, cpu, user = wall[args.warmup :], cpu[args.warmup :], user[args.warmup :]
    return {
        "clients": args.clients,
        "size": args.size,
        "rounds": args.rounds,
        "wall_us_per_delivery": statistics.median(wall),
        "wall_us_min": min(wall),
        "cpu_us_per_delivery": statistics.median(cpu),
        "cpu_us_min": min(cpu),
        "user_us_per_delivery": statistics.mean(user),  # coarse clock: the mean, not the median
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--size", type=int, default=100, help="message bytes")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--read", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    if args.read:
        uvloop.run(_read_forever(args.read, args.clients))
        return 0
    result = uvloop.run(measure(args))
    print(
        f"{result['clients']} clients, {result['size']} B, median of {result['rounds']} rounds: "
        f"{result['wall_us_per_delivery']:.3f} us wall, {result['cpu_us_per_delivery']:.3f} us CPU "
        f"per delivery (best {result['wall_us_min']:.3f} / {result['cpu_us_min']:.3f}); "
        f"of the CPU, {result['user_us_per_delivery']:.2f} us in user space"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
