"""The WebSocket connection as a sans-I/O state machine (RFC 6455 sections 5 to 7).

Bytes go in through ``receive`` (or ``get_buffer``/``buffer_updated``); whole
messages come out through the ``on_message`` callback, and the end of the
connection through ``on_close``. Bytes to send accumulate in ``out``, which the
I/O layer writes and clears. No event loop is involved, so a test or a fuzzer
can drive a connection one byte at a time.

States (``State``; the server and client are CONNECTING until the HTTP
Upgrade is done, a ``Connection`` starts OPEN) and the rules enforced here:

    OPEN     -> CLOSING   we sent a close frame and wait for the peer's
    OPEN     -> CLOSED    the peer's close arrived (we answered it), the
                          connection failed (we sent our close and stop
                          reading), or the transport ended (1006)
    CLOSING  -> CLOSED    the peer's close arrived, or the transport ended

- A data frame opens a message; continuation frames extend it; a new data
  frame inside a message, or a continuation outside one, is a protocol error.
- Control frames may arrive between the fragments of a message.
- A ping is answered with a pong carrying the same payload while we may send.
- Text is validated as UTF-8 as it arrives, fragment by fragment (1007).
- A message larger than ``max_message_size`` fails with 1009, whether it comes
  in many frames or inflates from a small compressed one.
- Once CLOSED, incoming bytes are ignored and sending raises ConnectionClosed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastws import closecodes, faults
from fastws.codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    Utf8Validator,
    build_close,
    build_frame,
    parse_close,
    validate_utf8,
    write_frame,
)
from fastws.errors import ConnectionClosedError, ConnectionClosedOK, ProtocolError

if TYPE_CHECKING:
    from fastws.buffers import BufferPool
    from fastws.deflate import PerMessageDeflate


class State(enum.IntEnum):
    """Where a WebSocket connection is in its life (RFC 6455 section 4 to 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# Module-level aliases: the hot path reads a global, not an enum attribute.
CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

MessageCallback = Callable[[int, memoryview], object]
CloseCallback = Callable[[int, str], object]


def _ignore(*args: object) -> None:
    return None


def _frame_limit(max_message_size: int, compressed: bool) -> int:
    """The largest frame to accept: deflate may expand incompressible data a little."""
    if compressed:
        return max_message_size + (max_message_size >> 8) + 64
    return max_message_size


class Connection:
    """One WebSocket connection's protocol state, for either side."""

    __slots__ = (
        "client",
        "state",
        "out",
        "max_message_size",
        "on_message",
        "on_close",
        "on_pong",
        "close_code",
        "close_reason",
        "close_sent",
        "close_received",
        "parser",
        "_deflate",
        "_msg_opcode",
        "_msg_compressed",
        "_fragments",
        "_utf8",
    )

    def __init__(
        self,
        *,
        client: bool = False,
        on_message: MessageCallback = _ignore,
        on_close: CloseCallback = _ignore,
        on_pong: Callable[[memoryview], object] = _ignore,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        deflate: PerMessageDeflate | None = None,
        pool: BufferPool | None = None,
    ) -> None:
        self.client = client
        self.state = OPEN
        self.out = bytearray()
        self.max_message_size = max_message_size
        self.on_message = on_message
        self.on_close = on_close
        self.on_pong = on_pong
        self.close_code = closecodes.ABNORMAL
        self.close_reason = ""
        self.close_sent = False
        self.close_received = False
        self._deflate = deflate
        self.parser = FrameParser(  # the frame parser (the I/O layer reads into it)
            self._on_frame,
            client=client,
            max_size=_frame_limit(max_message_size, deflate is not None),
            rsv1_allowed=deflate is not None,
            pool=pool,
        )
        self._msg_opcode = 0
        self._msg_compressed = False
        self._fragments: bytearray | None = None
        self._utf8: Utf8Validator | None = None

    # -- input -----------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the transport."""
        if self.state == CLOSED:
            return
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.fail(exc.code, exc.reason)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable buffer to read into (asyncio.BufferedProtocol)."""
        return self.parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read into the buffer from ``get_buffer``."""
        if self.state == CLOSED:
            self.parser.release()
            return
        try:
            self.parser.buffer_updated(nbytes)
        except ProtocolError as exc:
            self.fail(exc.code, exc.reason)

    def receive_eof(self) -> None:
        """The transport ended; without a close handshake this is 1006."""
        if self.state != CLOSED:
            self._finish(closecodes.ABNORMAL, "connection lost without a close frame")
        self.parser.release()

    @property
    def buffered(self) -> int:
        """Bytes received and held: a partial frame plus a partial message."""
        fragments = self._fragments
        return self.parser.buffered + (len(fragments) if fragments is not None else 0)

    def _on_frame(self, opcode: int, fin: bool, rsv1: bool, payload: memoryview) -> None:
        if self.state == CLOSED:
            return
        if opcode >= OP_CLOSE:
            self._on_control(opcode, payload)
        elif opcode == OP_CONTINUATION:
            if not self._msg_opcode:
                raise ProtocolError(
                    closecodes.PROTOCOL_ERROR, "continuation frame without a message to continue"
                )
            self._on_fragment(payload, fin)
        elif self._msg_opcode:
            raise ProtocolError(
                closecodes.PROTOCOL_ERROR, "new data frame before the fragmented message ended"
            )
        elif fin and not rsv1:
            # The common case: a whole, uncompressed message in one frame.
            if opcode == OP_TEXT and not validate_utf8(payload):
                raise ProtocolError(closecodes.INVALID_DATA, faults.INVALID_UTF8)
            self.on_message(opcode, payload)
        else:
            self._msg_opcode = opcode
            self._msg_compressed = rsv1
            self._fragments = bytearray()
            if opcode == OP_TEXT:
                if self._utf8 is None:
                    self._utf8 = Utf8Validator()
                else:
                    self._utf8.reset()
            self._on_fragment(payload, fin)

    def _on_fragment(self, payload: memoryview, fin: bool) -> None:
        fragments = self._fragments
        assert fragments is not None
        if self._msg_compressed:
            assert self._deflate is not None
            data = self._deflate.decompress(payload, fin, self.max_message_size)
        else:
            if len(fragments) + len(payload) > self.max_message_size:
                raise ProtocolError(
                    closecodes.MESSAGE_TOO_BIG,
                    f"message exceeds the limit of {self.max_message_size} bytes",
                )
            data = payload
        if self._msg_opcode == OP_TEXT:
            assert self._utf8 is not None
            self._utf8.feed(data, fin)
        if not fin:
            fragments += data
            return
        opcode = self._msg_opcode
        self._msg_opcode = 0
        self._fragments = None
        if fragments:
            fragments += data
            self.on_message(opcode, memoryview(fragments))
        else:  # a message in one compressed frame: no reassembly copy
            self.on_message(opcode, data if isinstance(data, memoryview) else memoryview(data))

    def _on_control(self, opcode: int, payload: memoryview) -> None:
        if opcode == OP_PING:
            if not self.close_sent:
                write_frame(self.out, OP_PONG, payload, mask=self.client)
        elif opcode == OP_PONG:
            self.on_pong(payload)
        else:
            code, reason = parse_close(payload)
            self.close_received = True
            if not self.close_sent:
                # Echo the peer's code, as RFC 6455 section 5.5.1 suggests.
                self._send_close(code, "")
            self._finish(code, reason)

    # -- output ----------------------------------------------------------------

    def send(self, opcode: int, payload: bytes | bytearray | memoryview) -> None:
        """Queue one whole message (OP_TEXT or OP_BINARY) in ``out``."""
        if self.close_sent or self.state == CLOSED:
            raise self.closed_error()
        deflate = self._deflate
        if deflate is not None and deflate.should_compress(len(payload)):
            write_frame(self.out, opcode, deflate.compress(payload), True, True, self.client)
        else:
            write_frame(self.out, opcode, payload, True, False, self.client)

    def send_frame(
        self,
        opcode: int,
        payload: bytes | bytearray | memoryview,
        fin: bool = True,
        rsv1: bool = False,
    ) -> None:
        """Queue one raw frame: for fragmented sends; no compression applied."""
        if self.close_sent or self.state == CLOSED:
            raise self.closed_error()
        write_frame(self.out, opcode, payload, fin, rsv1, self.client)

    def send_prebuilt(self, frame: bytes) -> None:
        """Queue a frame built once for many connections (server side only)."""
        if self.close_sent or self.state == CLOSED:
            raise self.closed_error()
        self.out += frame

    def ping(self, payload: bytes = b"") -> None:
        if self.close_sent or self.state == CLOSED:
            raise self.closed_error()
        write_frame(self.out, OP_PING, payload, True, False, self.client)

    def pong(self, payload: bytes = b"") -> None:
        if self.close_sent or self.state == CLOSED:
            raise self.closed_error()
        write_frame(self.out, OP_PONG, payload, True, False, self.client)

    def close(self, code: int = closecodes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake; a second call does nothing."""
        if self.close_sent or self.state == CLOSED:
            return
        self._send_close(code, reason)
        self.state = CLOSING

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame and stop."""
        if self.state == CLOSED:
            return
        if not self.close_sent:
            self._send_close(code, reason)
        self._finish(code, reason)

    def _send_close(self, code: int, reason: str) -> None:
        reason_bytes = reason.encode("utf-8")
        if len(reason_bytes) > 123:  # truncate on a character boundary
            reason = reason_bytes[:123].decode("utf-8", "ignore")
        payload = build_close(code, reason) if code != closecodes.NO_STATUS else b""
        write_frame(self.out, OP_CLOSE, payload, True, False, self.client)
        self.close_sent = True

    def _finish(self, code: int, reason: str) -> None:
        self.state = CLOSED
        self.close_code = code
        self.close_reason = reason
        self._fragments = None
        self._msg_opcode = 0
        if self._deflate is not None:
            self._deflate.reset_message()
        self.on_close(code, reason)

    def release(self) -> None:
        """Give pooled buffers back (after the transport is gone)."""
        self.parser.release()

    def closed_error(self) -> ConnectionClosedOK | ConnectionClosedError:
        code = self.close_code
        if code in (closecodes.NORMAL, closecodes.GOING_AWAY, closecodes.NO_STATUS):
            return ConnectionClosedOK(code, self.close_reason)
        return ConnectionClosedError(code, self.close_reason)


def prebuild(opcode: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Frame a server message once so that it can be queued on many connections."""
    return build_frame(opcode, payload)


__all__ = [
    "Connection",
    "State",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "OP_TEXT",
    "OP_BINARY",
    "prebuild",
]
