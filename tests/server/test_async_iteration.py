"""The ``async for`` API on both sides: order, the end of iteration, errors, waiting, flow control."""

from __future__ import annotations

import asyncio

import pytest

import fastws
from fastws import closecodes
from fastws.errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from tests.support.loops import run_async

pytestmark = pytest.mark.usefixtures("connection_backend")  # every test on both backends

MESSAGES = ["one", b"two", "", b"", "é€😀", b"\x00" * 70000, "last"]


@run_async()
async def test_server_iterates_in_order_and_stops_on_a_normal_close() -> None:
    seen: list = []
    ended = asyncio.Event()

    async def collect(ws):
        async for message in ws:
            seen.append(message)
        ended.set()

    async with fastws.serve(collect, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for message in MESSAGES:
                await ws.send(message)
        await ended.wait()
    assert seen == MESSAGES
    assert [type(m) for m in seen] == [type(m) for m in MESSAGES]


@run_async()
async def test_messages_queued_before_the_close_are_all_handed_out_first() -> None:
    seen: list = []
    ended = asyncio.Event()

    async def late_reader(ws):
        await ws.wait_closed()  # every message and the close are in before reading
        async for message in ws:
            seen.append(message)
        ended.set()

    async with fastws.serve(late_reader, "127.0.0.1", 0) as server:
        ws = await fastws.connect(f"ws://127.0.0.1:{server.port}/")
        for i in range(50):
            ws.send_nowait(f"m{i}")
        await ws.close()
        await ended.wait()
    assert seen == [f"m{i}" for i in range(50)]


@run_async()
async def test_an_error_close_raises_from_the_iteration() -> None:
    raised: list = []

    async def reader(ws):
        try:
            async for _ in ws:
                pass
        except ConnectionClosed as exc:
            raised.append(exc)
            raise

    async with fastws.serve(reader, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("before")
            await ws.close(4000, "application error")
        while not raised:
            await asyncio.sleep(0.01)
    assert isinstance(raised[0], ConnectionClosedError)
    assert raised[0].code == 4000


@run_async()
async def test_client_iterates_until_the_server_closes() -> None:
    async def talker(ws):
        for message in MESSAGES:
            await ws.send(message)
        await ws.close()

    async with fastws.serve(talker, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            seen = [message async for message in ws]
            assert seen == MESSAGES
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.send("too late")


@run_async()
async def test_client_iteration_raises_on_an_error_close() -> None:
    async def failing(ws):
        await ws.send("first")
        await ws.close(closecodes.POLICY_VIOLATION, "no")

    async with fastws.serve(failing, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            seen = []
            with pytest.raises(ConnectionClosedError) as info:
                async for message in ws:
                    seen.append(message)
            assert seen == ["first"]
            assert info.value.code == closecodes.POLICY_VIOLATION


@run_async()
async def test_a_cancelled_wait_loses_no_message() -> None:
    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with fastws.serve(echo, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.05)
            await ws.send("after the timeout")
            iterator = aiter(ws)
            assert await anext(iterator) == "after the timeout"
            waiting = asyncio.ensure_future(anext(iterator))
            await asyncio.sleep(0.02)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await ws.send("still in order")
            await ws.send("and this")
            assert await anext(iterator) == "still in order"
            assert await ws.recv() == "and this"


@run_async()
async def test_send_is_queued_at_the_call_and_awaitable_with_gather() -> None:
    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with fastws.serve(echo, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            pending = ws.send("queued at the call")  # not awaited yet
            assert await ws.recv() == "queued at the call"
            await pending
            await asyncio.gather(ws.send("a"), ws.send("b"))
            assert [await ws.recv(), await ws.recv()] == ["a", "b"]


@run_async()
async def test_iteration_pauses_reading_at_max_queue_and_resumes_in_order() -> None:
    count = 300
    queued: list[int] = []
    start = asyncio.Event()

    async def slow(ws):
        await start.wait()
        queued.append(len(ws._queue))
        received = 0
        async for message in ws:
            assert message == f"{received:04d}" + "x" * 996
            received += 1
            if received == count:
                await ws.send(f"got {received}")

    async with fastws.serve(slow, "127.0.0.1", 0, max_queue=8) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", compression=False) as ws:
            for i in range(count):
                ws.send_nowait(f"{i:04d}" + "x" * 996)
            await asyncio.sleep(0.3)
            start.set()
            assert await ws.recv() == f"got {count}"
    # Reading paused at 8 queued messages; what the same read brought is queued too.
    assert queued[0] <= 8 + 65536 // 1004 + 1


@run_async()
async def test_handler_returning_closes_normally_and_the_request_stays_readable() -> None:
    async def handler(ws):
        request = ws.request
        await ws.send(f"{request.path} {request.query['room'][0]} {request.headers.get('X-Test')}")

    async with fastws.serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/chat?room=7"
        async with fastws.connect(url, headers=[("X-Test", "yes")]) as ws:
            assert await ws.recv() == "/chat 7 yes"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
        assert ws.close_code == closecodes.NORMAL
