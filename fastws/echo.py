"""The echo server behind ``python -m fastws echo``: for conformance runs and benchmarks."""

from __future__ import annotations

import asyncio
import logging
import signal

from fastws.protocol import Listener, WebSocket
from fastws.server import serve


class EchoListener(Listener):
    """Sends every message back as it came (text as text, binary as binary)."""

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        ws.send_message(opcode, payload)


async def run_echo(
    host: str, port: int, *, compression: bool = True, max_message_size: int = 64 << 20
) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection with 1001."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        EchoListener,
        host,
        port,
        compression=compression,
        max_message_size=max_message_size,
        max_write_buffer=4 * max_message_size,
    ) as server:
        logging.getLogger("fastws").info(
            "fastws echo server on ws://%s:%d/ (compression %s)",
            host,
            server.port,
            "on" if compression else "off",
        )
        print(f"fastws echo listening on ws://{host}:{server.port}/", flush=True)
        await stop
