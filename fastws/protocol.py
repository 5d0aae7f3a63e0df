"""asyncio glue shared by the server and the client: one object per connection.

``WebSocket`` is at once the ``asyncio.BufferedProtocol`` that the transport
talks to and the handle that applications use. It reads straight into the
codec's pooled buffer, hands whole messages either to a ``Listener`` (callback
API) or to a bounded queue (``async for`` API), and writes everything queued
during one loop turn with a single ``transport.write``.

Writing:
- inside the connection's own read callback, output collects in ``conn.out``
  and goes out in one write when the callback ends;
- the first prebuilt frame of a loop turn for a connection with nothing queued
  goes straight to ``transport.write`` (which tries the send at once and buffers
  the rest): a fan-out to 100,000 connections schedules no callback per connection;
- anything else, the rest of that turn's frames included, waits in ``conn.out``,
  and one callback per loop iteration (``Flusher``) writes out every connection
  that has some: a burst of broadcasts leaves each connection in two writes a
  turn, not one per frame.
Nothing is written directly while ``conn.out`` holds earlier bytes, which keeps
each connection's frames in order.

Flow control, both ways:
- incoming: when the queue of unread messages reaches ``max_queue`` the
  transport stops reading until the application has caught up;
- a peer that sends but does not read: while the transport has paused writing
  (its buffer is past the high-water mark), nothing more is read from that
  connection, whichever API. The replies to what was already read are all
  that can pile up, so memory stays near the high-water mark plus one read
  whatever ``max_write_buffer`` is;
- outgoing: bytes waiting in our buffer plus the transport's may not pass
  ``max_write_buffer``. Past it, ``slow_consumer="close"`` (the default) drops
  the peer with 1008, while ``slow_consumer="wait"`` makes ``await send()``
  wait for the transport to drain (and still closes at twice the limit, so a
  peer that never reads cannot grow memory without bound). This is the limit
  for what the peer did not ask for, such as broadcasts.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastws import closecodes, connection
from fastws._protocol_py import Flusher as _ReferenceFlusher
from fastws._protocol_py import ProtocolCore as _ReferenceCore
from fastws._protocol_py import timers_due as _reference_timers_due
from fastws.codec import OP_BINARY, OP_TEXT, compiled_twin
from fastws.connection import CLOSED, CONNECTING, OPEN, Connection, State, prebuild
from fastws.errors import ConnectionClosed, ConnectionClosedOK

# The per-read path (read, dispatch, send, flush) follows the connection's switch:
# compiled (``_protocol.pyx``) exactly when the connection is, so ``FASTWS_PURE=1``
# keeps the whole engine pure Python; ``_protocol_py.py`` is the reference and
# ``_protocol.pyi`` the contract. ``BACKEND`` says which one ``WebSocket`` inherits.
_compiled = compiled_twin("_protocol", "connection glue") if connection.BACKEND == "cython" else None
ProtocolCore: type[_ReferenceCore] = _ReferenceCore if _compiled is None else _compiled.ProtocolCore
Flusher: type[_ReferenceFlusher] = _ReferenceFlusher if _compiled is None else _compiled.Flusher
timers_due = _reference_timers_due if _compiled is None else _compiled.timers_due
BACKEND = "python" if _compiled is None else "cython"

logger = logging.getLogger("fastws")

Data = str | bytes | bytearray | memoryview

# Why reading is held (bits of WebSocket._read_holds): the transport reads
# again once no reason is left.
_HOLD_QUEUE = 1  # the async API's queue of unread messages is full
_HOLD_WRITES = 2  # the transport has paused writing: the peer does not read

# Once a connection is closed, whatever the peer still sends until the TCP
# connection ends is read into this buffer and dropped.
_DISCARD = memoryview(bytearray(65536))


def _discard_buffer(sizehint: int) -> memoryview:
    return _DISCARD


def _discard_bytes(nbytes: int) -> None:
    return None


_FLUSHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _ReferenceFlusher:
    flusher = _FLUSHERS.get(loop)
    if flusher is None:
        flusher = _FLUSHERS[loop] = Flusher()
    return flusher


@dataclass
class Options:
    """Limits and timers shared by the server and the client (seconds, bytes)."""

    max_message_size: int = 1 << 20
    max_queue: int = 64
    max_write_buffer: int = 4 << 20
    slow_consumer: str = "close"
    slow_consumer_code: int = closecodes.POLICY_VIOLATION
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float = 10.0
    close_timeout: float = 10.0
    max_header_size: int = 16384
    compression: Any = True  # True, False/None, or a fastws.deflate.DeflateConfig

    def __post_init__(self) -> None:
        if self.slow_consumer not in ("close", "wait"):
            raise ValueError("slow_consumer must be 'close' or 'wait'")
        for name in ("max_message_size", "max_queue", "max_write_buffer", "max_header_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def tick(self) -> float:
        """How often the shared timer checks deadlines: fine enough for the shortest one."""
        timers = [self.open_timeout, self.close_timeout]
        timers += [t for t in (self.ping_interval, self.ping_timeout) if t]
        return max(0.05, min(1.0, min(timers) / 4))


class Listener:
    """Callback API: subclass it and pass the class to ``serve`` or ``connect``.

    One instance per connection; no coroutine per message. ``payload`` is valid
    only during ``on_message``: keep ``bytes(payload)`` if it must outlive it.
    """

    def on_connect(self, ws: WebSocket) -> None:
        """The handshake is done; ``ws`` may send."""

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        """A whole message: ``opcode`` is OP_TEXT (payload is valid UTF-8) or OP_BINARY."""

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        """The connection is closed (1006 when it ended without a close frame)."""


class WebSocket(ProtocolCore, asyncio.BufferedProtocol):
    """One WebSocket connection (the transport's protocol and the user's handle).

    The read and write paths (``get_buffer``, ``buffer_updated``, ``send_message``,
    ``_flush``, the async API's ``send`` and ``_enqueue``, and their fields) are
    inherited from ``ProtocolCore``.
    """

    # Slots keep an idle connection small: thousands of them are the normal case.
    __slots__ = (
        "subprotocol",
        "remote_address",
        "user_data",
        "_read_holds",
        "_drain_waiter",
        "_closed_waiter",
        "_lost",
        "__weakref__",
    )

    def __init__(self, options: Options, loop: asyncio.AbstractEventLoop) -> None:
        self.options = options
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.subprotocol: str | None = None
        self.remote_address: Any = None
        self.user_data: Any = None  # the application's, from the upgrade hook's Accept
        self.conn: Connection | None = None
        self.listener: Listener | None = None
        self.deadline = 0.0  # open or close deadline, checked by the shared timer
        self.last_seen = 0.0
        self.seen = False  # data arrived since the timer last looked
        self.ping_sent_at = 0.0
        self._get_buffer: Any = None
        self._parsed: Any = None  # the frame parser's buffer_updated, once open
        self._in_read = False
        self._flush_pending = False
        self._flusher = _flusher_for(loop)
        self._queue: deque | None = None
        self._waiter: asyncio.Future | None = None
        self._read_holds = 0
        self._drain_waiter: asyncio.Future | None = None
        self._closed_waiter: asyncio.Future | None = None
        self._lost = False

    # -- transport callbacks ---------------------------------------------------

    def _on_handshake_data(self, nbytes: int) -> None:
        """Bytes of the HTTP Upgrade exchange (server and client read it differently)."""
        raise NotImplementedError

    def eof_received(self) -> bool:
        conn = self.conn
        if conn is not None:
            conn.receive_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        conn = self.conn
        if conn is not None:
            conn.receive_eof()
            conn.release()
        self._connection_gone()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _connection_gone(self) -> None:
        """Hook for the server and client to forget the connection."""

    def pause_writing(self) -> None:
        if self.conn is not None:
            self._hold_reading(_HOLD_WRITES)

    def resume_writing(self) -> None:
        self._release_reading(_HOLD_WRITES)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _hold_reading(self, reason: int) -> None:
        holds = self._read_holds
        if not holds:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
        self._read_holds = holds | reason

    def _release_reading(self, reason: int) -> None:
        holds = self._read_holds
        if holds & reason:
            self._read_holds = holds = holds & ~reason
            transport = self.transport
            if not holds and transport is not None and not transport.is_closing():
                transport.resume_reading()

    # -- becoming a WebSocket ----------------------------------------------------

    def _open(self, conn: Connection, leftover: bytes) -> None:
        """The handshake succeeded: route reads to the frame parser."""
        self.conn = conn
        self.last_seen = self.loop.time()
        self.deadline = 0.0
        conn.on_close = self._on_close
        conn.on_pong = self._on_pong
        self._get_buffer = conn.parser.get_buffer
        self._parsed = conn.parser.buffer_updated
        listener = self.listener
        if listener is not None:
            conn.on_message = partial(listener.on_message, self)
            try:
                listener.on_connect(self)
            except Exception:
                self._internal_error("on_connect")
        else:
            conn.on_message = self._enqueue
        if leftover:
            self._in_read = True
            try:
                conn.receive(leftover)
            except Exception:
                self._internal_error("on_message")
            finally:
                self._in_read = False
            self._after_read()

    def _internal_error(self, where: str) -> None:
        logger.exception("fastws: error in %s; closing the connection with 1011", where)
        conn = self.conn
        if conn is not None and conn.state != CLOSED:
            conn.fail(closecodes.INTERNAL_ERROR, "internal error")
            self._schedule_flush()

    # -- incoming messages ---------------------------------------------------------

    def _queue_full(self) -> None:
        self._hold_reading(_HOLD_QUEUE)

    async def recv(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises ConnectionClosed once the connection is closed and drained.
        """
        if self.listener is not None:
            raise RuntimeError("recv() is not available with a Listener; use on_message")
        queue = self._queue
        while not queue:
            await self._wait_message()
            queue = self._queue
        message = queue.popleft()
        if self._read_holds & _HOLD_QUEUE and len(queue) <= self.options.max_queue // 4:
            self._release_reading(_HOLD_QUEUE)
        return message

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """Messages until the peer closes; an error close raises ConnectionClosedError.

        One coroutine step per message: a queued message (the common case
        under load) is taken at once, and waiting happens in this frame too.
        """
        queue = self._queue
        while not queue:
            try:
                await self._wait_message()
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
            queue = self._queue
        message = queue.popleft()
        if self._read_holds & _HOLD_QUEUE and len(queue) <= self.options.max_queue // 4:
            self._release_reading(_HOLD_QUEUE)
        return message

    def _wait_message(self) -> asyncio.Future:
        """The future that the next ``_enqueue`` or the close completes (nothing is queued).

        Raises ConnectionClosed when the connection is closed: nothing more can come.
        """
        conn = self.conn
        if conn.state == CLOSED:
            raise conn.closed_error()
        waiter = self._waiter = self.loop.create_future()
        return waiter

    # -- outgoing messages -------------------------------------------------------

    def send_nowait(self, message: Data) -> None:
        """Queue ``message`` (str: text, bytes-like: binary) without waiting."""
        if isinstance(message, str):
            self.send_message(OP_TEXT, message.encode())
        else:
            self.send_message(OP_BINARY, message)

    def send_frame(self, opcode: int, payload: Data) -> None:
        """The former name of ``send_message``, which says what it does: one whole message."""
        warnings.warn(
            "WebSocket.send_frame() is now send_message()", DeprecationWarning, stacklevel=2
        )
        self.send_message(opcode, payload)

    def _send_fragments(self, fragments: Iterable[Data]) -> None:
        conn = self.conn
        opcode = 0
        previous = None
        for item in fragments:
            if isinstance(item, str):
                item = item.encode()
                kind = OP_TEXT
            else:
                kind = OP_BINARY
            if previous is not None:
                conn.send_frame(opcode, previous, fin=False)
                opcode = 0
            else:
                opcode = kind
            previous = item
        if previous is None:
            raise TypeError("send() takes str, bytes-like, or a non-empty iterable of them")
        conn.send_frame(opcode, previous, fin=True)

    def send_prebuilt(self, frame: bytes) -> bool:
        """Send a frame built once for many connections (see broadcast): written at once
        when it is the first of this loop turn and nothing is queued before it, else
        queued for the turn's one flush.

        Returns False, sending nothing, when the connection is closing or closed.
        """
        conn = self.conn
        if conn is None or conn.close_sent or conn.state == CLOSED or self.transport.is_closing():
            return False
        out = conn.out
        if out or self._in_read or self._flush_pending:
            out += frame  # grows conn.out in place: one attribute read per connection, not three
            if not self._in_read:
                self._schedule_flush()
            if len(out) > self.options.max_write_buffer:
                self._check_write_buffer()
            return True
        transport = self.transport
        transport.write(frame)  # the first of this turn goes at once
        self._schedule_flush()  # the rest of this turn's wait for one write
        if transport.get_write_buffer_size() > self.options.max_write_buffer:
            self._check_write_buffer()
        return True

    def _check_write_buffer(self) -> None:
        pending = len(self.conn.out) + self.transport.get_write_buffer_size()
        limit = self.options.max_write_buffer
        if pending > limit and (self.options.slow_consumer == "close" or pending > 2 * limit):
            self._drop_slow_consumer(pending)

    def _drop_slow_consumer(self, pending: int) -> None:
        logger.debug("fastws: dropping a slow consumer with %d bytes pending", pending)
        conn = self.conn
        conn.out = bytearray()
        conn.fail(self.options.slow_consumer_code, "slow consumer: send buffer overflow")
        # Its buffers are full: the close frame is tried, not waited for.
        self.transport.write(bytes(conn.out))
        conn.out = bytearray()
        self.transport.abort()

    async def _drain(self) -> None:
        transport = self.transport
        while (
            transport.get_write_buffer_size() + len(self.conn.out) > self.options.max_write_buffer // 2
            and not transport.is_closing()
        ):
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter

    # -- pings and closing ---------------------------------------------------------

    def _on_pong(self, payload: memoryview) -> None:
        self.ping_sent_at = 0.0

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping (the pong is handled by the keepalive timer)."""
        self.conn.ping(payload)
        self._schedule_flush()

    def _on_close(self, code: int, reason: str) -> None:
        self._get_buffer = _discard_buffer
        self._parsed = _discard_bytes
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        listener = self.listener
        if listener is not None:
            try:
                listener.on_close(self, code, reason)
            except Exception:
                logger.exception("fastws: error in on_close")

    def _close_transport(self) -> None:
        """The close handshake is over: the server closes TCP first (RFC 6455 7.1.1)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            # close() waits for the send buffer to drain: a peer that does not
            # read gets close_timeout, then the timer aborts the transport
            self.deadline = self.loop.time() + self.options.close_timeout

    def close_nowait(self, code: int = closecodes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake without waiting for it to finish."""
        conn = self.conn
        if conn is None:
            self._close_transport()
            return
        if conn.state == OPEN:
            conn.close(code, reason)
            self.deadline = self.loop.time() + self.options.close_timeout
            self._schedule_flush()

    async def close(self, code: int = closecodes.NORMAL, reason: str = "") -> None:
        """Close with ``code`` and wait until the connection is gone (at most close_timeout)."""
        self.close_nowait(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone, however long it stays open.

        Once a closing handshake has started, the timer gives it close_timeout
        and then aborts the transport, so this returns in bounded time after
        ``close()``.
        """
        if self.transport is None or self._lost:
            return
        if self._closed_waiter is None:
            self._closed_waiter = self.loop.create_future()
        await asyncio.shield(self._closed_waiter)

    @property
    def state(self) -> State:
        """CONNECTING during the HTTP Upgrade, then the protocol's OPEN, CLOSING, CLOSED."""
        conn = self.conn
        return CONNECTING if conn is None else conn.state

    @property
    def closed(self) -> bool:
        return self.conn is None or self.conn.state == CLOSED

    @property
    def close_code(self) -> int | None:
        conn = self.conn
        return conn.close_code if conn is not None and conn.state == CLOSED else None

    @property
    def close_reason(self) -> str:
        conn = self.conn
        return conn.close_reason if conn is not None else ""

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for this peer and not yet accepted by the kernel."""
        transport = self.transport
        pending = transport.get_write_buffer_size() if transport is not None else 0
        return pending + (len(self.conn.out) if self.conn is not None else 0)

    # -- shared timer ----------------------------------------------------------------

    def check_timers(self, now: float) -> None:
        """Enforce open/close deadlines and keepalive; called by a shared timer."""
        if self.deadline and now >= self.deadline:
            logger.debug("fastws: %s timed out", "handshake" if self.conn is None else "close")
            if self.transport is not None:
                self.transport.abort()
            return
        conn = self.conn
        if conn is None or conn.state != OPEN:
            return
        if self.seen:
            self.seen = False
            self.last_seen = now
        options = self.options
        interval = options.ping_interval
        if not interval:
            return
        if self.ping_sent_at:
            if options.ping_timeout and now - self.ping_sent_at >= options.ping_timeout:
                conn.fail(closecodes.INTERNAL_ERROR, "keepalive ping timeout")
                self._flush_soon()
        elif now - self.last_seen >= interval:
            self.ping_sent_at = now
            conn.ping(b"")
            self._schedule_flush()


def broadcast(connections: Iterable[WebSocket], message: Data) -> int:
    """Send one message to many server-side connections, framed once.

    Returns how many connections it was queued on; closed ones are skipped.
    Connections that negotiated compression get it uncompressed (RSV1 is per
    message, so this is always valid) so that one encoding serves all.
    """
    if isinstance(message, str):
        frame = prebuild(OP_TEXT, message.encode())
    else:
        frame = prebuild(OP_BINARY, message)
    count = 0
    for ws in connections:
        conn = ws.conn
        if conn is not None and not conn.client:
            count += ws.send_prebuilt(frame)
    return count


__all__ = ["Listener", "Options", "WebSocket", "broadcast", "ConnectionClosed"]
