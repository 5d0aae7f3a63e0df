"""Server CPU per message spent in the connection glue, callback API against ``async for``.

    python -m bench.glue                       # ns per message, both APIs, four shapes
    python -m bench.glue --profile iter 64 16  # cProfile of one API at one size and window
    python -m bench.glue --run callback 64 1   # one case, unprofiled
    python -m bench.glue --reads 64 1          # callback reads back to back (for perf record)

A ``WebSocket`` is driven in-process with a transport that only counts bytes, so the
figures are the Python (or compiled) work per message without the system calls, which
a loaded machine would otherwise drown. Each read carries ``window`` masked frames;
the loop turns that the ``async for`` task needs are charged to both APIs and then
subtracted. Timing is CPU time of this process; the best of three runs is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

import uvloop

from fastws.codec import OP_TEXT, build_frame
from fastws.connection import Connection
from fastws.protocol import Listener, Options, WebSocket

SHAPES = ((64, 1), (1024, 1), (64, 16), (1024, 16))


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Echo(Listener):
    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        ws.send_message(opcode, payload)


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def _turns(ws: WebSocket | None, data: bytes, reads: int) -> float:
    sleep = asyncio.sleep
    started = time.process_time()
    for _ in range(reads):
        if ws is not None:
            buffer = ws.get_buffer(-1)
            buffer[: len(data)] = data
            ws.buffer_updated(len(data))
        await sleep(0)  # the async for task wakes
        await sleep(0)  # the flush of what it sent
    return time.process_time() - started


async def measure(api: str, size: int, window: int, messages: int) -> float:
    """Nanoseconds of CPU per echoed message."""
    loop = asyncio.get_running_loop()
    ws = WebSocket(Options(), loop)
    ws.transport = CountingTransport()
    if api == "callback":
        ws.listener = Echo()
    ws._open(Connection(client=False), b"")
    task = loop.create_task(echo(ws)) if api == "iter" else None
    data = build_frame(OP_TEXT, b"x" * size, mask=True) * window
    reads = messages // window
    await _turns(ws, data, 1000)
    spent = await _turns(ws, data, reads) - await _turns(None, data, reads)
    if task is not None:
        task.cancel()
    return spent / (reads * window) * 1e9


async def reads_only(size: int, window: int, messages: int) -> float:
    """Nanoseconds of CPU per echoed message of the callback API, reads back to back."""
    ws = WebSocket(Options(), asyncio.get_running_loop())
    ws.transport = CountingTransport()
    ws.listener = Echo()
    ws._open(Connection(client=False), b"")
    data = build_frame(OP_TEXT, b"x" * size, mask=True) * window
    reads = messages // window
    started = time.process_time()
    for _ in range(reads):
        buffer = ws.get_buffer(-1)
        buffer[: len(data)] = data
        ws.buffer_updated(len(data))
    return (time.process_time() - started) / (reads * window) * 1e9


async def table(messages: int) -> None:
    print("shape        callback ns/msg  async for ns/msg  callback/async for")
    for size, window in SHAPES:
        callback = min([await measure("callback", size, window, messages) for _ in range(3)])
        iterator = min([await measure("iter", size, window, messages) for _ in range(3)])
        shape = f"{size} B, w{window}"
        print(f"{shape:<12} {callback:>15,.0f} {iterator:>17,.0f} {callback / iterator:>19.2f}")


async def profile(api: str, size: int, window: int, messages: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    await measure(api, size, window, messages)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.glue", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--profile", nargs=3, metavar=("API", "SIZE", "WINDOW"),
                        help="profile one case: API is callback or iter")
    parser.add_argument("--run", nargs=3, metavar=("API", "SIZE", "WINDOW"),
                        help="run one case and print its ns/msg, for a native profiler "
                        "such as perf, which sees inside the compiled modules")
    parser.add_argument("--reads", nargs=2, metavar=("SIZE", "WINDOW"),
                        help="the callback API's reads alone, without loop turns: what a "
                        "native profiler should look at")
    args = parser.parse_args()
    if args.run:
        api, size, window = args.run
        spent = uvloop.run(measure(api, int(size), int(window), args.messages))
        print(f"{api} {size} B, w{window}: {spent:,.0f} ns/msg")
    elif args.reads:
        size, window = args.reads
        spent = uvloop.run(reads_only(int(size), int(window), args.messages))
        print(f"callback {size} B, w{window}, reads only: {spent:,.0f} ns/msg")
    elif args.profile:
        api, size, window = args.profile
        uvloop.run(profile(api, int(size), int(window), args.messages))
    else:
        uvloop.run(table(args.messages))


if __name__ == "__main__":
    main()
