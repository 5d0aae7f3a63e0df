"""What the server's shared timer costs per idle connection and tick.

    python -m bench.timer_scan                   # 5,000 idle connections, compiled core
    FASTWS_PURE=1 python -m bench.timer_scan     # the pure-Python core

A server on uvloop with its default keepalive holds connections that a client in the
same process opened and left idle; the timer's tick (``Server._on_timer``) is then
called directly, many times, and timed. Idle connections have nothing due, so this
is the price of the scan itself, paid by every connection every tick (1 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

import fastws
from bench.idle_heap import upgrade_request


class Idle(fastws.Listener):
    pass


async def measure(count: int, ticks: int) -> float:
    server = await fastws.serve(Idle, "127.0.0.1", 0, compression=False)
    request = upgrade_request()
    clients = []
    try:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            clients.append(writer)
        while sum(ws.conn is not None for ws in server.connections) < count:
            await asyncio.sleep(0.05)
        start = time.perf_counter()
        for _ in range(ticks):
            server._on_timer()
            server._timer.cancel()  # the tick reschedules itself: only the direct calls count
        return (time.perf_counter() - start) / ticks / count
    finally:
        for writer in clients:
            writer.close()
        await server.close(timeout=1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.timer_scan", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=50)
    args = parser.parse_args()
    seconds = uvloop.run(measure(args.connections, args.ticks))
    print(f"{fastws.protocol.BACKEND} core: {seconds * 1e9:,.0f} ns per idle connection per tick")


if __name__ == "__main__":
    main()
