"""The per-read path of a WebSocket connection in plain Python: the reference for
``_protocol.pyx``, which compiles exactly these methods.

``fastws.protocol.WebSocket`` inherits them from the ``ProtocolCore`` that
``fastws.protocol`` selects (compiled exactly when the connection is), so one read
costs no Python frame of the glue in the default build and ``FASTWS_PURE=1`` stays
pure Python. The path: the transport reads into ``get_buffer``, ``buffer_updated``
feeds the frame parser (which dispatches whole messages to the listener or the
queue through the ``Connection``), what the application sent meanwhile is written
with one ``transport.write`` by ``_flush``, and the send buffer is reused.

The ``async for`` API's per-message path is here too: ``_enqueue`` (the
connection's ``on_message``: a copy of the message joins the queue and wakes the
reader) and ``send``, which returns an already completed future when there is
nothing to wait for, so that ``await ws.send(m)`` costs no coroutine.

The rest of the connection's life (handshake, closing, write limits, errors) is
``WebSocket``'s, reached through the hooks named in ``_protocol.pyi``.
"""

from __future__ import annotations

import logging
from collections import deque

from fastws._connection_py import CLOSED, OP_BINARY, OP_TEXT, OPEN
from fastws.errors import ProtocolError

# What ``send`` returns when there is nothing to wait for: a completed future,
# which ``await`` reads without suspending. One per loop (the last loop that
# sent), so that asyncio.gather() and the like see a future of their own loop;
# loop and future are swapped together.
_SENT = (None, None)

logger = logging.getLogger("fastws")


class Flusher:
    """One loop's connections with output waiting, written out by one callback per
    loop iteration: a fan-out costs one list append per connection, and whatever a
    connection is sent in one turn leaves in one write. It holds no reference to its
    loop (``fastws.protocol`` keys it by the loop in a weak mapping)."""

    __slots__ = ("pending", "scheduled")

    def __init__(self):
        self.pending = []
        self.scheduled = False

    def add(self, ws):
        self.pending.append(ws)
        if not self.scheduled:
            self.scheduled = True
            ws.loop.call_soon(self.run)

    def run(self):
        self.scheduled = False
        pending, self.pending = self.pending, []
        for ws in pending:
            try:
                ws._flush_soon()
            except Exception:  # one broken connection must not hold back the others' output
                logger.exception("fastws: error flushing a connection")


def _sent(loop):
    global _SENT
    done = loop.create_future()
    done.set_result(None)
    _SENT = (loop, done)
    return done


def timers_due(connections, now, interval, timeout):
    """The connections of ``connections`` whose timers need ``check_timers(now)``: an
    open or close deadline, data seen since the last look, a ping due (``interval``
    seconds of silence) or an unanswered one past ``timeout`` (0: none). Every other
    connection would do nothing, so the shared timer skips it: an idle connection
    costs this test per tick, not a call."""
    due = []
    for ws in connections:
        if ws.deadline or ws.seen:
            due.append(ws)
            continue
        conn = ws.conn
        if conn is None or conn.state != OPEN or not interval:
            continue
        sent = ws.ping_sent_at
        if sent:
            if timeout and now - sent >= timeout:
                due.append(ws)
        elif now - ws.last_seen >= interval:
            due.append(ws)
    return due


class ProtocolCore:
    """The fields the read and write paths touch, and the methods that touch them."""

    __slots__ = (
        "options",
        "loop",
        "transport",
        "conn",
        "listener",
        "seen",
        "deadline",
        "last_seen",
        "ping_sent_at",
        "_get_buffer",
        "_parsed",
        "_in_read",
        "_flush_pending",
        "_flusher",
        "_queue",
        "_waiter",
    )

    def get_buffer(self, sizehint):
        return self._get_buffer(sizehint)

    def buffer_updated(self, nbytes):
        conn = self.conn
        if conn is None:
            self._on_handshake_data(nbytes)
            return
        self._in_read = True
        try:
            self._parsed(nbytes)
        except ProtocolError as exc:
            conn.fail(exc.code, exc.reason)
        except Exception:
            self._internal_error("on_message")
        finally:
            self._in_read = False
        self.seen = True
        if conn.out:
            self._flush()
        if conn.state == CLOSED:
            self._close_transport()

    def _after_read(self):
        conn = self.conn
        if conn.out:
            self._flush()
        if conn.state == CLOSED:
            self._close_transport()

    def send_message(self, opcode, payload):
        """Queue one whole message (OP_TEXT or OP_BINARY) without waiting; sent this loop turn.

        The callback API's send; it may be compressed and is one frame or,
        with ``send()`` and an iterable, several.
        """
        conn = self.conn
        if isinstance(payload, str):
            payload = payload.encode()
        conn.send(opcode, payload)
        if not self._in_read:
            self._schedule_flush()
        if len(conn.out) > self.options.max_write_buffer:
            self._check_write_buffer()

    def _enqueue(self, opcode, payload):
        """The async API's on_message: the message, as str or bytes, joins the queue."""
        message = str(payload, "utf-8") if opcode == OP_TEXT else bytes(payload)
        queue = self._queue
        if queue is None:  # made on the first message: an idle connection holds none
            queue = self._queue = deque()
        queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(queue) >= self.options.max_queue:
            self._queue_full()

    def send(self, message):
        """Send a message; awaiting it waits for the transport to drain only with
        slow_consumer="wait".

        A ``str`` goes as text, a bytes-like as binary; an iterable of them is
        sent as one fragmented message of the type of its first item. The
        message is queued when ``send`` is called; what it returns is already
        complete unless there is a drain to wait for.
        """
        conn = self.conn
        if isinstance(message, str):
            conn.send(OP_TEXT, message.encode())
        elif isinstance(message, (bytes, bytearray, memoryview)):
            conn.send(OP_BINARY, message)
        else:
            self._send_fragments(message)
        if not self._in_read:
            self._schedule_flush()
        options = self.options
        if len(conn.out) > options.max_write_buffer:
            self._check_write_buffer()
        if options.slow_consumer == "wait":
            return self._drain()
        sent_loop, done = _SENT
        return done if sent_loop is self.loop else _sent(self.loop)

    def _schedule_flush(self):
        if not self._flush_pending:
            self._flush_pending = True
            self._flusher.add(self)  # one loop callback flushes every connection waiting

    def _flush_soon(self):
        self._flush_pending = False
        conn = self.conn
        if conn.out:
            self._flush()
        if conn.state == CLOSED:
            self._close_transport()

    def _flush(self):
        transport = self.transport
        conn = self.conn
        if transport is None or transport.is_closing():
            conn.out = bytearray()
            return
        out = conn.out
        transport.write(out)
        try:
            del out[:]  # reuse it: the transport copied it or is done with it
        except BufferError:
            conn.out = bytearray()  # the transport still holds a view of it
        if transport.get_write_buffer_size() > self.options.max_write_buffer:
            self._check_write_buffer()
