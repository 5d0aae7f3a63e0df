"""Typing for the per-read path of a connection; ``fastws._protocol`` (Cython) and
``fastws._protocol_py`` (pure Python) both implement exactly this API, with the same
bytes out, the same events and the same close codes. ``fastws.protocol.WebSocket``
inherits it and provides the hooks below."""

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from fastws.connection import Connection

Data = str | bytes | bytearray | memoryview

class Flusher:
    """One loop's connections with output waiting, written out by one callback per loop
    iteration; holds no reference to its loop."""

    pending: list[ProtocolCore]
    scheduled: bool

    def add(self, ws: ProtocolCore) -> None: ...
    def run(self) -> None: ...

def timers_due(
    connections: Iterable[ProtocolCore], now: float, interval: float, timeout: float
) -> list[ProtocolCore]:
    """The connections whose timers need ``check_timers(now)``: an open or close deadline,
    data seen since the last look, a ping due after ``interval`` seconds of silence, or
    an unanswered one past ``timeout`` (0: no such timer); the others would do nothing."""

class ProtocolCore:
    """The fields the read and write paths touch, and the methods that touch them."""

    options: Any  # fastws.protocol.Options
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    conn: Connection | None
    listener: Any  # fastws.protocol.Listener | None
    seen: bool  # data arrived since the shared timer last looked
    deadline: float  # open or close deadline (0: none), checked by the shared timer
    last_seen: float  # when the shared timer last saw data arrive
    ping_sent_at: float  # when the unanswered keepalive ping went out (0: none)
    _get_buffer: Any
    _parsed: Any
    _in_read: bool
    _flush_pending: bool
    _flusher: Flusher  # the loop's: add(ws) flushes it at the end of this loop turn
    _queue: Any  # collections.deque of unread messages (async API), made on the first one
    _waiter: asyncio.Future | None  # completed by the next message or the close

    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def _after_read(self) -> None: ...
    def send_message(self, opcode: int, payload: Data) -> None: ...
    def _enqueue(self, opcode: int, payload: memoryview) -> None: ...
    def send(self, message: Data | Iterable[Data]) -> Awaitable[None]: ...
    def _schedule_flush(self) -> None: ...
    def _flush_soon(self) -> None: ...
    def _flush(self) -> None: ...

    # Hooks the subclass provides (fastws.protocol.WebSocket).
    def _on_handshake_data(self, nbytes: int) -> None: ...
    def _internal_error(self, where: str) -> None: ...
    def _check_write_buffer(self) -> None: ...
    def _close_transport(self) -> None: ...
    def _queue_full(self) -> None: ...
    def _send_fragments(self, fragments: Iterable[Data]) -> None: ...
    def _drain(self) -> Awaitable[None]: ...
