"""The asyncio server and client over real loopback sockets, on uvloop and asyncio."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import pytest

import fastws
from fastws import closecodes
from fastws.codec import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameParser, build_frame
from fastws.errors import ConnectionClosedError, HandshakeError
from tests.support.loops import run_async

pytestmark = pytest.mark.usefixtures("connection_backend")  # every test on both backends


async def echo_handler(ws: fastws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


class EchoListener(fastws.Listener):
    def on_message(self, ws, opcode, payload):
        ws.send_message(opcode, payload)


def upgrade_request(path: str = "/", extra: str = "", version: str = "13") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


async def raw_exchange(port: int, data: bytes, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    chunks = []
    try:
        async with asyncio.timeout(read_timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    finally:
        writer.close()
    return b"".join(chunks)


class RawClient:
    """A hand-driven WebSocket client for hostile tests."""

    async def open(self, port: int, extra: str = "") -> RawClient:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(upgrade_request(extra=extra))
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.frames: list[tuple[int, bytes]] = []
        self.parser = FrameParser(
            lambda op, fin, rsv1, p: self.frames.append((op, bytes(p))), client=True
        )
        return self

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_until_closed(self, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                self.parser.feed(chunk)
        self.writer.close()
        return self.frames


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for op, payload in frames:
        if op == OP_CLOSE:
            return int.from_bytes(payload[:2], "big") if payload else closecodes.NO_STATUS
    return None


@run_async()
async def test_async_api_echo() -> None:
    async with fastws.serve(echo_handler, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for message in ["hello", "é€😀", "", b"", b"\x00\xff" * 10, os.urandom(1 << 20)]:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"
        assert ws.close_code == closecodes.NORMAL


@run_async()
async def test_callback_api_echo_and_pipelining() -> None:
    async with fastws.serve(EchoListener, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for i in range(200):
                ws.send_nowait(f"message {i}")
            for i in range(200):
                assert await ws.recv() == f"message {i}"
            await ws.send(b"bin")
            assert await ws.recv() == b"bin"


@run_async()
async def test_compression_is_negotiated_and_used() -> None:
    seen = []

    async def handler(ws):
        seen.append(ws.conn._deflate is not None)
        await echo_handler(ws)

    async with fastws.serve(handler, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert ws.conn._deflate is not None
            text = "compress me " * 1000
            await ws.send(text)
            assert await ws.recv() == text
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", compression=False) as ws:
            assert ws.conn._deflate is None
            await ws.send("plain")
            assert await ws.recv() == "plain"
    assert seen == [True, False]


@run_async()
async def test_subprotocol_negotiation() -> None:
    async def handler(ws):
        await ws.send(ws.subprotocol or "none")

    async with fastws.serve(handler, "127.0.0.1", 0, subprotocols=["b", "a"]) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["a", "b"]) as ws:
            assert ws.subprotocol == "b"
            assert await ws.recv() == "b"
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["c"]) as ws:
            assert ws.subprotocol is None
            assert await ws.recv() == "none"


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (upgrade_request(version="8"), 426),
        (upgrade_request().replace(b"Sec-WebSocket-Key", b"X-Nothing"), 400),
        (upgrade_request().replace(b"Upgrade: websocket", b"Upgrade: h2c"), 426),
        (upgrade_request().replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (upgrade_request(extra="X-Big: " + "a" * 20000 + "\r\n"), 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
)
@run_async()
async def test_bad_handshakes_get_http_errors(request_bytes: bytes, status: int) -> None:
    async with fastws.serve(echo_handler, "127.0.0.1", 0) as server:
        response = await raw_exchange(server.port, request_bytes)
        assert response.startswith(f"HTTP/1.1 {status} ".encode()), response[:100]
        if status == 426:
            assert b"Sec-WebSocket-Version: 13" in response
        await asyncio.sleep(0.05)
        assert not server.connections


@run_async()
async def test_origin_allow_list() -> None:
    async with fastws.serve(echo_handler, "127.0.0.1", 0, origins=["https://ok.example"]) as server:
        response = await raw_exchange(
            server.port, upgrade_request(extra="Origin: https://evil.example\r\n")
        )
        assert response.startswith(b"HTTP/1.1 403 ")
        async with fastws.connect(
            f"ws://127.0.0.1:{server.port}/", origin="https://ok.example"
        ) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"


@run_async()
async def test_process_request_hook() -> None:
    async def hook(ws, request):
        if request.path == "/health":
            return fastws.Response(200, "ok\n")
        if request.path == "/forbidden":
            raise HandshakeError(403, "not for you")
        if request.path == "/slow":
            await asyncio.sleep(0.01)
        return fastws.Accept(user_data={"user": request.query.get("user", ["?"])[0]})

    async def handler(ws):
        await ws.send(f"{ws.user_data['user']} from {ws.remote_address[0]}")

    async with fastws.serve(handler, "127.0.0.1", 0, process_request=hook) as server:
        response = await raw_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"ok\n")
        response = await raw_exchange(server.port, upgrade_request("/forbidden"))
        assert response.startswith(b"HTTP/1.1 403 ")
        for path in ("/chat?user=ann", "/slow?user=bob"):
            async with fastws.connect(f"ws://127.0.0.1:{server.port}{path}") as ws:
                user = path.split("=")[1]
                assert await ws.recv() == f"{user} from 127.0.0.1"


@run_async()
async def test_handler_error_closes_with_1011_and_server_survives() -> None:
    async def handler(ws):
        message = await ws.recv()
        if message == "boom":
            raise RuntimeError("handler bug")
        await ws.send(message)

    async with fastws.serve(handler, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == closecodes.INTERNAL_ERROR
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"


@run_async()
async def test_listener_error_closes_with_1011() -> None:
    class Broken(fastws.Listener):
        def on_message(self, ws, opcode, payload):
            raise ValueError("listener bug")

    async with fastws.serve(Broken, "127.0.0.1", 0) as server:
        client = await RawClient().open(server.port)
        client.send(build_frame(OP_TEXT, b"x", mask=True))
        frames = await client.read_until_closed()
        assert close_code(frames) == closecodes.INTERNAL_ERROR


@run_async()
async def test_shutdown_closes_clients_with_1001() -> None:
    server = await fastws.serve(echo_handler, "127.0.0.1", 0)
    ws = await fastws.connect(f"ws://127.0.0.1:{server.port}/")
    await server.close()
    with pytest.raises(fastws.ConnectionClosed) as info:
        await ws.recv()
    assert info.value.code == closecodes.GOING_AWAY
    await ws.wait_closed()


@run_async()
async def test_protocol_errors_close_with_the_right_code() -> None:
    cases = [
        (build_frame(OP_TEXT, b"unmasked"), closecodes.PROTOCOL_ERROR),
        (build_frame(OP_TEXT, b"\xff\xfe", mask=True), closecodes.INVALID_DATA),
        (b"\x83\x80abcd", closecodes.PROTOCOL_ERROR),  # reserved opcode
    ]
    async with fastws.serve(echo_handler, "127.0.0.1", 0, max_message_size=1000) as server:
        for data, code in cases:
            client = await RawClient().open(server.port)
            client.send(data)
            assert close_code(await client.read_until_closed()) == code
        client = await RawClient().open(server.port)
        client.send(build_frame(OP_BINARY, b"x" * 2000, mask=True))
        assert close_code(await client.read_until_closed()) == closecodes.MESSAGE_TOO_BIG
        await asyncio.sleep(0.05)
        assert not server.connections


@run_async()
async def test_ping_is_answered_and_close_handshake_from_client() -> None:
    async with fastws.serve(echo_handler, "127.0.0.1", 0) as server:
        client = await RawClient().open(server.port)
        client.send(build_frame(OP_PING, b"hello", mask=True))
        client.send(build_frame(OP_CLOSE, (1000).to_bytes(2, "big"), mask=True))
        frames = await client.read_until_closed()
        assert frames == [(OP_PONG, b"hello"), (OP_CLOSE, (1000).to_bytes(2, "big"))]


@run_async()
async def test_keepalive_closes_a_silent_peer() -> None:
    async with fastws.serve(
        echo_handler, "127.0.0.1", 0, ping_interval=0.2, ping_timeout=0.2
    ) as server:
        client = await RawClient().open(server.port)
        frames = await client.read_until_closed(timeout=5)
        assert frames[0][0] == OP_PING
        assert close_code(frames) == closecodes.INTERNAL_ERROR


@run_async()
async def test_keepalive_keeps_an_answering_peer() -> None:
    async with fastws.serve(
        echo_handler, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.2
    ) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await asyncio.sleep(0.8)
            await ws.send("still here")
            assert await ws.recv() == "still here"


@run_async()
async def test_open_timeout_frees_the_slot() -> None:
    async with fastws.serve(echo_handler, "127.0.0.1", 0, open_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert not server.connections


@run_async()
async def test_slow_consumer_is_dropped_and_memory_stays_bounded() -> None:
    limit = 256 * 1024
    sizes = []

    async def flood(ws):
        chunk = b"x" * 16384
        for _ in range(2000):
            await ws.send(chunk)
            sizes.append(ws.write_buffer_size)
            await asyncio.sleep(0)

    async with fastws.serve(flood, "127.0.0.1", 0, max_write_buffer=limit) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(upgrade_request())
        for _ in range(200):
            await asyncio.sleep(0.02)
            if not server.connections:
                break
        assert not server.connections, "the slow consumer was not dropped"
        sock.close()
    assert max(sizes) <= limit + 16384 + 16
    assert len(sizes) < 2000


@run_async()
async def test_wait_policy_waits_for_drain() -> None:
    done = asyncio.Event()

    async def flood(ws):
        for _ in range(200):
            await ws.send(b"y" * 16384)
        done.set()
        await ws.recv()

    async with fastws.serve(
        flood, "127.0.0.1", 0, max_write_buffer=64 * 1024, slow_consumer="wait"
    ) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for _ in range(200):
                assert await ws.recv() == b"y" * 16384
            await done.wait()


@run_async()
async def test_incoming_queue_is_bounded() -> None:
    queued = []
    release = asyncio.Event()

    async def lazy(ws):
        await release.wait()
        queued.append(len(ws._queue))
        for _ in range(500):
            await ws.recv()
        await ws.send("done")

    async with fastws.serve(lazy, "127.0.0.1", 0, max_queue=16) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with fastws.connect(url, compression=False) as ws:
            for _ in range(500):
                ws.send_nowait(b"m" * 1000)
            await asyncio.sleep(0.3)
            release.set()
            assert await ws.recv() == "done"
    # Reading pauses at 16 queued messages; frames already read in the same
    # 64 KiB chunk are still queued, so that bounds the queue.
    assert queued[0] <= 16 + 65536 // 1006 + 1


@run_async()
async def test_broadcast_frames_once_for_everyone() -> None:
    async def handler(ws):
        await ws.recv()

    async with fastws.serve(handler, "127.0.0.1", 0) as server:
        clients = [await fastws.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(20)]
        for _ in range(100):
            if len(server.connections) == 20:
                break
            await asyncio.sleep(0.01)
        assert server.broadcast("to everyone") == 20
        for ws in clients:
            assert await ws.recv() == "to everyone"
        for ws in clients:
            await ws.close()


@run_async()
async def test_client_refuses_a_non_websocket_server() -> None:
    async def http_only(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_only, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(HandshakeError):
        await fastws.connect(f"ws://127.0.0.1:{port}/")
    server.close()
    await server.wait_closed()


@run_async()
async def test_client_listener_api() -> None:
    received: asyncio.Queue = asyncio.Queue()

    class Collect(fastws.Listener):
        def on_message(self, ws, opcode, payload):
            received.put_nowait((opcode, bytes(payload)))

    async with fastws.serve(EchoListener, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", listener=Collect()) as ws:
            ws.send_message(OP_BINARY, b"abc")
            assert await received.get() == (OP_BINARY, b"abc")


@run_async()
async def test_state_follows_the_connection_through_its_life() -> None:
    seen = []

    async def hook(ws, request):
        seen.append(ws.state)
        return fastws.Accept(user_data="app data")

    async def handler(ws):
        seen.append((ws.state, ws.user_data))
        await ws.recv()

    async with fastws.serve(handler, "127.0.0.1", 0, process_request=hook) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert ws.state is fastws.State.OPEN
            ws.close_nowait()
            assert ws.state is fastws.State.CLOSING
            await ws.wait_closed()
            assert ws.state is fastws.State.CLOSED
    assert seen == [fastws.State.CONNECTING, (fastws.State.OPEN, "app data")]


@run_async()
async def test_send_frame_is_the_old_name_of_send_message() -> None:
    received: asyncio.Queue = asyncio.Queue()

    class Collect(fastws.Listener):
        def on_message(self, ws, opcode, payload):
            received.put_nowait((opcode, bytes(payload)))

    async with fastws.serve(EchoListener, "127.0.0.1", 0) as server:
        async with fastws.connect(f"ws://127.0.0.1:{server.port}/", listener=Collect()) as ws:
            with pytest.warns(DeprecationWarning, match="send_message"):
                ws.send_frame(OP_TEXT, "abc")
            assert await received.get() == (OP_TEXT, b"abc")


@run_async()
async def test_plain_http_request_bodies() -> None:
    bodies = []

    def hook(ws, request):
        bodies.append(request.body)
        return fastws.Response(200, b"got %d" % len(request.body))

    async with fastws.serve(
        echo_handler, "127.0.0.1", 0, process_request=hook, max_body_size=1000
    ) as server:
        post = b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        response = await raw_exchange(server.port, post % 11 + b"hello world")
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"got 11")
        response = await raw_exchange(server.port, post % 5000 + b"x" * 5000)
        assert response.startswith(b"HTTP/1.1 413 ")
        chunked = b"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        response = await raw_exchange(server.port, chunked)
        assert response.startswith(b"HTTP/1.1 411 ")
    assert bodies == [b"hello world"]


def test_flush_survives_a_transport_that_keeps_a_view_after_writing() -> None:
    """libuv may finish a write at once yet release the buffer a loop turn later."""

    class ViewKeepingTransport:
        def __init__(self) -> None:
            self.kept: list[memoryview] = []

        def write(self, data) -> None:
            self.kept.append(memoryview(data))

        def get_write_buffer_size(self) -> int:
            return 0

        def is_closing(self) -> bool:
            return False

    from fastws.connection import Connection
    from fastws.protocol import Options, WebSocket

    loop = asyncio.new_event_loop()
    try:
        ws = WebSocket(Options(), loop)
        ws.transport = ViewKeepingTransport()
        ws.conn = Connection()
        ws.conn.send(OP_TEXT, b"first")
        ws._flush()
        ws.conn.send(OP_TEXT, b"second")
        ws._flush()
        assert [bytes(v) for v in ws.transport.kept] == [b"\x81\x05first", b"\x81\x06second"]
    finally:
        loop.close()


@run_async()
async def test_wait_closed_waits_for_an_open_connection_past_close_timeout() -> None:
    got = []

    class Collect(fastws.Listener):
        def on_message(self, ws, opcode, payload):
            got.append(bytes(payload))

    async def slow(ws):
        await asyncio.sleep(0.5)
        await ws.send("late")

    async with fastws.serve(slow, "127.0.0.1", 0) as server:
        ws = await fastws.connect(
            f"ws://127.0.0.1:{server.port}/", listener=Collect(), close_timeout=0.1
        )
        await ws.wait_closed()
        assert got == [b"late"]
        assert ws.close_code == closecodes.NORMAL


@run_async()
async def test_bytes_after_a_failure_are_discarded_quietly(caplog) -> None:
    """A client that failed the connection keeps reading until the server closes TCP."""
    async def garbage_then_wait(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        writer.write(b"\x83\x00")  # a reserved opcode: the client fails the connection
        await asyncio.sleep(0.1)
        writer.write(b"\x81\x05hello" * 100)  # and more arrives afterwards
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(garbage_then_wait, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    from unittest import mock

    with mock.patch("fastws.client.make_key", return_value="dGhlIHNhbXBsZSBub25jZQ=="):
        ws = await fastws.connect(f"ws://127.0.0.1:{port}/", compression=False)
    with pytest.raises(ConnectionClosedError) as info:
        await ws.recv()
    assert info.value.code == closecodes.PROTOCOL_ERROR
    await ws.wait_closed()
    server.close()
    await server.wait_closed()
    assert "Fatal error" not in caplog.text
