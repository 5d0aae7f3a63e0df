"""The sans-I/O connection, driven byte by byte without an event loop, on both backends."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastws import closecodes
from fastws.codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    build_frame,
)
from fastws.connection import CLOSED, CLOSING, OPEN, Connection
from fastws.errors import ConnectionClosedError, ConnectionClosedOK

pytestmark = pytest.mark.usefixtures("connection_backend")


class Recorder:
    """Collects what a Connection reports."""

    def __init__(self, *, client: bool = False, **kwargs) -> None:
        self.messages: list[tuple[int, bytes]] = []
        self.closes: list[tuple[int, str]] = []
        self.pongs: list[bytes] = []
        self.conn = Connection(
            client=client,
            on_message=lambda op, p: self.messages.append((op, bytes(p))),
            on_close=lambda code, reason: self.closes.append((code, reason)),
            on_pong=lambda p: self.pongs.append(bytes(p)),
            **kwargs,
        )

    def feed(self, data: bytes, bytewise: bool = False) -> None:
        if bytewise:
            for i in range(len(data)):
                self.conn.receive(data[i : i + 1])
        else:
            self.conn.receive(data)

    def sent(self) -> list[tuple[int, bool, bytes]]:
        """Decode what the connection wrote (frames from the other side's view)."""
        frames: list[tuple[int, bool, bytes]] = []
        parser = FrameParser(
            lambda op, fin, rsv1, p: frames.append((op, fin, bytes(p))),
            client=not self.conn.client,
            max_size=1 << 30,
        )
        parser.feed(bytes(self.conn.out))
        self.conn.out.clear()
        return frames


def masked(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    return build_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=True)


@pytest.mark.parametrize("bytewise", [False, True])
def test_single_frame_messages(bytewise: bool) -> None:
    r = Recorder()
    r.feed(masked(OP_TEXT, "héllo".encode()) + masked(OP_BINARY, b"\x00\xff"), bytewise)
    assert r.messages == [(OP_TEXT, "héllo".encode()), (OP_BINARY, b"\x00\xff")]
    assert r.conn.state == OPEN and not r.closes


@pytest.mark.parametrize("bytewise", [False, True])
def test_fragmented_message_with_interleaved_ping(bytewise: bool) -> None:
    r = Recorder()
    data = (
        masked(OP_TEXT, b"Hel", fin=False)
        + masked(OP_PING, b"are you there")
        + masked(OP_CONTINUATION, b"lo, ", fin=False)
        + masked(OP_CONTINUATION, "wörld".encode())
    )
    r.feed(data, bytewise)
    assert r.messages == [(OP_TEXT, "Hello, wörld".encode())]
    assert r.sent() == [(OP_PONG, True, b"are you there")]


def test_text_split_inside_a_code_point_is_fine() -> None:
    r = Recorder()
    euro = "€".encode()
    r.feed(masked(OP_TEXT, euro[:1], fin=False) + masked(OP_CONTINUATION, euro[1:]))
    assert r.messages == [(OP_TEXT, euro)]


@pytest.mark.parametrize(
    "data, code",
    [
        (masked(OP_CONTINUATION, b"x"), closecodes.PROTOCOL_ERROR),
        (masked(OP_TEXT, b"a", fin=False) + masked(OP_BINARY, b"b"), closecodes.PROTOCOL_ERROR),
        (masked(OP_TEXT, b"\xff"), closecodes.INVALID_DATA),
        (masked(OP_TEXT, b"\xce", fin=False) + masked(OP_CONTINUATION, b"A"), closecodes.INVALID_DATA),
        (masked(OP_TEXT, b"\xce"), closecodes.INVALID_DATA),
        (build_frame(OP_TEXT, b"unmasked"), closecodes.PROTOCOL_ERROR),
        (masked(OP_CLOSE, b"\x03"), closecodes.PROTOCOL_ERROR),
        (masked(OP_CLOSE, (999).to_bytes(2, "big")), closecodes.PROTOCOL_ERROR),
        (masked(OP_CLOSE, (1000).to_bytes(2, "big") + b"\xff"), closecodes.INVALID_DATA),
    ],
)
def test_failures_send_the_right_close_code(data: bytes, code: int) -> None:
    r = Recorder()
    r.feed(data)
    assert r.conn.state == CLOSED
    assert r.closes and r.closes[0][0] == code
    frames = r.sent()
    assert frames[-1][0] == OP_CLOSE
    assert int.from_bytes(frames[-1][2][:2], "big") == code
    assert not r.messages


def test_invalid_utf8_fails_fast_in_first_fragment() -> None:
    r = Recorder()
    # The first fragment is already invalid; the connection must not wait for FIN.
    r.feed(masked(OP_TEXT, b"ok \xf4\x90", fin=False))
    assert r.closes and r.closes[0][0] == closecodes.INVALID_DATA


def test_message_size_limit_across_fragments() -> None:
    r = Recorder(max_message_size=10)
    r.feed(masked(OP_BINARY, b"123456", fin=False))
    assert r.conn.state == OPEN
    r.feed(masked(OP_CONTINUATION, b"78901"))
    assert r.closes == [(closecodes.MESSAGE_TOO_BIG, "message exceeds the limit of 10 bytes")]


def test_frame_over_limit_is_refused_before_its_payload() -> None:
    r = Recorder(max_message_size=100)
    frame = masked(OP_BINARY, b"x" * 1000)
    r.feed(frame[:8])  # the header alone
    assert r.closes and r.closes[0][0] == closecodes.MESSAGE_TOO_BIG


def test_peer_initiated_close_is_echoed() -> None:
    r = Recorder()
    r.feed(masked(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert r.closes == [(1000, "bye")]
    assert r.sent() == [(OP_CLOSE, True, (1000).to_bytes(2, "big"))]
    assert r.conn.state == CLOSED
    with pytest.raises(ConnectionClosedOK):
        r.conn.send(OP_TEXT, b"late")


def test_close_without_status_is_answered_without_status() -> None:
    r = Recorder()
    r.feed(masked(OP_CLOSE, b""))
    assert r.closes == [(closecodes.NO_STATUS, "")]
    assert r.sent() == [(OP_CLOSE, True, b"")]


def test_locally_initiated_close() -> None:
    r = Recorder()
    r.conn.close(1001, "going away")
    assert r.conn.state == CLOSING
    assert r.sent() == [(OP_CLOSE, True, (1001).to_bytes(2, "big") + b"going away")]
    # A ping after our close gets no pong: nothing may follow a close frame.
    r.feed(masked(OP_PING, b"p"))
    assert r.sent() == []
    r.feed(masked(OP_CLOSE, (1001).to_bytes(2, "big")))
    assert r.conn.state == CLOSED
    assert r.closes == [(1001, "")]
    assert r.sent() == []


def test_data_after_close_is_ignored() -> None:
    r = Recorder()
    r.feed(masked(OP_CLOSE, (1000).to_bytes(2, "big")) + masked(OP_TEXT, b"ignored"))
    assert r.messages == []


def test_eof_without_close_is_abnormal() -> None:
    r = Recorder()
    r.conn.receive_eof()
    assert r.closes == [(closecodes.ABNORMAL, "connection lost without a close frame")]
    with pytest.raises(ConnectionClosedError):
        r.conn.send(OP_TEXT, b"x")


def test_pong_is_reported() -> None:
    r = Recorder()
    r.feed(masked(OP_PONG, b"t"))
    assert r.pongs == [b"t"]


def test_client_masks_and_server_does_not() -> None:
    client = Connection(client=True)
    client.send(OP_TEXT, b"hi")
    assert client.out[1] & 0x80
    server = Connection(client=False)
    server.send(OP_TEXT, b"hi")
    assert bytes(server.out) == b"\x81\x02hi"


def test_long_close_reason_is_truncated_on_a_character_boundary() -> None:
    r = Recorder()
    r.conn.close(1000, "é" * 100)
    (frame,) = r.sent()
    assert len(frame[2]) <= 125
    frame[2][2:].decode("utf-8")


def test_compressed_messages_round_trip() -> None:
    from fastws.deflate import DeflateConfig, DeflateParams, PerMessageDeflate

    params = DeflateParams(False, False, 15, 15)
    config = DeflateConfig(threshold=0)
    client = Connection(client=True, deflate=PerMessageDeflate(params, server=False, config=config))
    got: list[tuple[int, bytes]] = []
    server = Connection(
        on_message=lambda op, p: got.append((op, bytes(p))),
        deflate=PerMessageDeflate(params, server=True, config=config),
    )
    for text in ["hello " * 50, "hello " * 50, "x"]:
        client.send(OP_TEXT, text.encode())
    server.receive(bytes(client.out))
    assert got == [(OP_TEXT, ("hello " * 50).encode())] * 2 + [(OP_TEXT, b"x")]
    assert server.state == OPEN


def test_deflate_bomb_is_closed_with_1009() -> None:
    from fastws.deflate import DeflateConfig, DeflateParams, PerMessageDeflate

    params = DeflateParams(False, False, 15, 15)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (50 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    r = Recorder(
        max_message_size=1 << 20,
        deflate=PerMessageDeflate(params, server=True, config=DeflateConfig()),
    )
    r.feed(masked(OP_BINARY, bomb, rsv1=True))
    assert r.closes and r.closes[0][0] == closecodes.MESSAGE_TOO_BIG
    assert r.messages == []


def test_rsv1_without_deflate_is_a_protocol_error() -> None:
    r = Recorder()
    r.feed(masked(OP_TEXT, b"x", rsv1=True))
    assert r.closes and r.closes[0][0] == closecodes.PROTOCOL_ERROR


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.tuples(st.booleans(), st.binary(max_size=300), st.integers(1, 4)), max_size=8
    ),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
)
def test_any_chunking_gives_the_same_messages(messages, cuts) -> None:
    stream = b""
    expected = []
    for is_text, payload, pieces in messages:
        if is_text:
            payload = payload.decode("latin-1").encode("utf-8")
        opcode = OP_TEXT if is_text else OP_BINARY
        expected.append((opcode, payload))
        step = max(1, len(payload) // pieces)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for i, part in enumerate(parts):
            stream += masked(opcode if i == 0 else OP_CONTINUATION, part, fin=i == len(parts) - 1)
            if i == 0 and len(parts) > 1:
                stream += masked(OP_PING, b"")
    r = Recorder()
    points = sorted({c % (len(stream) + 1) for c in cuts})
    start = 0
    for point in [*points, len(stream)]:
        r.feed(stream[start:point])
        start = point
    assert r.messages == expected
    assert r.conn.state == OPEN
