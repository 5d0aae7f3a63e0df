"""A peer that sends and never reads cannot make the server buffer what it sends.

``python -m fastws echo`` allows 256 MiB of write buffer per peer (for the
conformance suite's large messages), so only backpressure can keep it small:
while a peer's replies back up, the server stops reading from that peer.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

import fastws
from fastws.codec import OP_BINARY, build_frame
from tests.support.cli import running
from tests.support.flood import FloodingPeer, rss_bytes
from tests.support.loops import run_async

FLOOD = 50 << 20
MESSAGE = 16 << 10


@run_async(loops=("uvloop",), timeout=240)
async def test_echo_server_stops_reading_from_a_peer_that_does_not_read() -> None:
    async with running("echo", "--port", "0", "--no-compression") as (process, port):
        peer = await asyncio.to_thread(FloodingPeer, port)
        before = rss_bytes(process.pid)
        frame = build_frame(OP_BINARY, b"x" * MESSAGE, mask=True)
        sent = await asyncio.to_thread(peer.send_until_stalled, itertools.repeat(frame), FLOOD)
        grown = rss_bytes(process.pid) - before
        # The kernel's socket buffers hold a few MiB; the server reads no more than that.
        assert peer.sent < FLOOD // 2, f"the server read {peer.sent >> 20} MiB from a peer that does not read"
        assert grown < 12 << 20, f"the server grew by {grown >> 20} MiB"
        # Once the peer reads, everything it sent comes back: nothing was dropped.
        echoed = await asyncio.to_thread(peer.read, sent)
        assert len(echoed) == sent and all(len(m) == MESSAGE for m in echoed)
        peer.close()


@pytest.mark.usefixtures("connection_backend")
@run_async(timeout=240)
async def test_async_api_stops_reading_from_a_peer_that_does_not_read() -> None:
    peak = 0

    async def echo(ws: fastws.WebSocket) -> None:
        nonlocal peak
        async for message in ws:
            await ws.send(message)
            peak = max(peak, ws.write_buffer_size)

    async with fastws.serve(echo, "127.0.0.1", 0, max_write_buffer=1 << 30) as server:
        peer = await asyncio.to_thread(FloodingPeer, server.port)
        frame = build_frame(OP_BINARY, b"x" * MESSAGE, mask=True)
        sent = await asyncio.to_thread(peer.send_until_stalled, itertools.repeat(frame), FLOOD)
        assert peer.sent < FLOOD // 2, f"the server read {peer.sent >> 20} MiB from a peer that does not read"
        # the high-water mark, plus the messages already queued when reading stopped
        assert peak < 4 << 20, f"{peak >> 20} MiB waited to be sent"
        echoed = await asyncio.to_thread(peer.read, sent)
        assert len(echoed) == sent and all(len(m) == MESSAGE for m in echoed)
        peer.close()
