"""Which way output leaves a connection: written at once, or deferred to one flush per loop turn."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from fastws.codec import OP_TEXT
from fastws.connection import Connection, prebuild
from fastws.protocol import Options, WebSocket, broadcast


class RecordingTransport:
    """Keeps what is written; ``buffered`` plays the bytes the kernel has not taken."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False
        self.aborted = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True


class CountingLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.scheduled = 0

    def call_soon(self, callback, *args, context=None):
        self.scheduled += 1
        return super().call_soon(callback, *args, context=context)


@pytest.fixture
def loop():
    loop = CountingLoop()
    yield loop
    loop.close()


def open_socket(loop, **options) -> WebSocket:
    ws = WebSocket(Options(**options), loop)
    ws.transport = RecordingTransport()
    ws.conn = Connection()
    return ws


def one_turn(loop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


FIRST = prebuild(OP_TEXT, b"first")
SECOND = prebuild(OP_TEXT, b"second")


def test_a_prebuilt_frame_to_an_idle_connection_is_written_at_once(loop) -> None:
    ws = open_socket(loop)
    assert ws.send_prebuilt(FIRST)
    assert ws.transport.writes == [FIRST]


def test_the_rest_of_a_turns_prebuilt_frames_leave_in_one_write(loop) -> None:
    """A burst of broadcasts costs two sends per connection per loop turn, not one per frame."""
    sockets = [open_socket(loop) for _ in range(3)]
    for message in ("first", "second", "first"):
        assert broadcast(sockets, message) == 3
    assert all(ws.transport.writes == [FIRST] for ws in sockets)
    assert loop.scheduled == 1
    one_turn(loop)
    assert all(ws.transport.writes == [FIRST, SECOND + FIRST] for ws in sockets)
    broadcast(sockets, "second")  # a new turn: at once again
    assert all(ws.transport.writes[-1] == SECOND for ws in sockets)


def test_a_prebuilt_frame_waits_behind_output_already_queued(loop) -> None:
    ws = open_socket(loop)
    ws.send_message(OP_TEXT, b"first")
    assert ws.send_prebuilt(SECOND)
    assert ws.transport.writes == []
    one_turn(loop)
    assert b"".join(ws.transport.writes) == FIRST + SECOND


def test_a_prebuilt_frame_sent_during_a_read_goes_out_with_the_replies(loop) -> None:
    ws = open_socket(loop)
    ws._in_read = True
    ws.send_prebuilt(FIRST)
    assert ws.transport.writes == []
    assert bytes(ws.conn.out) == FIRST


def test_deferred_output_of_many_connections_takes_one_loop_callback(loop) -> None:
    sockets = [open_socket(loop) for _ in range(50)]
    for ws in sockets:
        ws.send_message(OP_TEXT, b"first")
    assert loop.scheduled == 1
    one_turn(loop)
    assert all(ws.transport.writes == [FIRST] for ws in sockets)
    for ws in sockets:  # a later turn schedules its own flush
        ws.send_message(OP_TEXT, b"second")
    one_turn(loop)
    assert all(ws.transport.writes == [FIRST, SECOND] for ws in sockets)


def test_a_closing_transport_gets_nothing(loop) -> None:
    ws = open_socket(loop)
    ws.transport.closing = True
    assert not ws.send_prebuilt(FIRST)
    assert broadcast([ws], "first") == 0
    assert ws.transport.writes == []


def test_a_write_past_the_limit_drops_the_slow_consumer(loop) -> None:
    ws = open_socket(loop, max_write_buffer=1000)
    ws.transport.buffered = 999
    assert ws.send_prebuilt(FIRST)
    one_turn(loop)
    assert not ws.transport.aborted
    ws.transport.buffered = 1001
    assert ws.send_prebuilt(SECOND)
    one_turn(loop)
    assert ws.transport.aborted
    assert not ws.send_prebuilt(FIRST)


def test_a_closed_loop_is_not_kept_alive_by_its_flusher() -> None:
    loop = asyncio.new_event_loop()
    ws = open_socket(loop)
    ws.send_message(OP_TEXT, b"first")
    one_turn(loop)
    loop.close()
    gone = weakref.ref(loop)
    del loop, ws
    gc.collect()
    assert gone() is None
