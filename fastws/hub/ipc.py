"""Messages between the processes of one hub: msgpack values over a Unix stream socket.

The supervising master and each worker talk over socket pairs made when the
worker is started (the worker inherits its ends). msgpack is self-delimiting,
so a stream of packed values needs no length prefix: the reader feeds bytes to
an ``Unpacker`` and gets whole messages out. Writes are gathered during a loop
turn and leave in one ``write``, so a publication fanned out to a worker costs
one system call per turn, not one per message. A request names an id that its
reply repeats; ``PendingRequests`` keeps the futures waiting for those replies.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import msgpack

logger = logging.getLogger("fastws.hub")

MAX_PENDING = 64 << 20  # bytes a peer may leave unread before the link is cut


def packb(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


class MessageStream(asyncio.Protocol):
    """One end of a link: ``on_message(value)`` per message, ``on_lost(exc)`` once."""

    def __init__(
        self,
        on_message: Callable[[Any], None],
        on_lost: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_PENDING)
        self._out = bytearray()
        self._flush_pending = False
        self._lost: asyncio.Future | None = None

    @classmethod
    async def open(
        cls,
        sock: socket.socket,
        on_message: Callable[[Any], None],
        on_lost: Callable[[Exception | None], None] | None = None,
    ) -> MessageStream:
        """Wrap a connected Unix socket (an end of a socket pair)."""
        loop = asyncio.get_running_loop()
        stream = cls(on_message, on_lost)
        await loop.create_unix_connection(lambda: stream, sock=sock)
        return stream

    # -- transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        unpacker = self._unpacker
        unpacker.feed(data)
        for message in unpacker:
            try:
                self.on_message(message)
            except Exception:
                logger.exception("fastws hub: error while handling an internal message")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self.on_lost is not None:
            self.on_lost(exc)

    # -- sending ------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.send_packed(packb(message))

    def send_packed(self, data: bytes) -> None:
        """Queue bytes already packed (one packing serves every peer of a fan-out)."""
        if self.closed:
            return
        self._out += data
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        transport = self.transport
        if transport is None or transport.is_closing() or not self._out:
            self._out.clear()
            return
        transport.write(bytes(self._out))
        self._out.clear()
        if transport.get_write_buffer_size() > MAX_PENDING:
            logger.error("fastws hub: an internal peer stopped reading; cutting the link")
            transport.abort()

    def flushed(self) -> bool:
        """Write what is queued now; True when the kernel took every byte (nothing of
        this link is left in this process to lose)."""
        if self.closed or self.transport is None:
            return True
        if self._out:
            self._flush()
        return self.transport.get_write_buffer_size() == 0

    async def close(self, timeout: float = 1.0) -> None:
        """Send what is queued, then close and wait for the end (bounded)."""
        if self.transport is None:
            return
        if self._out:
            self._flush()
        if not self.transport.is_closing():
            self.transport.close()
        if self._lost is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), timeout)
            except TimeoutError:
                self.transport.abort()


class PendingRequests:
    """Requests sent over a link and not answered yet: one future per request id."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future] = {}
        self._last_id = 0

    def __bool__(self) -> bool:
        return bool(self._futures)

    def new(self) -> tuple[int, asyncio.Future]:
        """A fresh request id and the future its reply will complete."""
        self._last_id += 1
        future = asyncio.get_running_loop().create_future()
        self._futures[self._last_id] = future
        return self._last_id, future

    def futures(self) -> list[asyncio.Future]:
        return list(self._futures.values())

    def forget(self, request_id: int) -> None:
        """Stop waiting for a reply (the requester gave up)."""
        self._futures.pop(request_id, None)

    def resolve(self, request_id: int, result: Any) -> None:
        future = self._futures.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    def fail(self, request_id: int, exc: Exception) -> None:
        future = self._futures.pop(request_id, None)
        if future is not None and not future.done():
            future.set_exception(exc)

    def fail_all(self, exc: Exception) -> None:
        """The link is gone: no reply will come."""
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(exc)


__all__ = ["MAX_PENDING", "MessageStream", "PendingRequests", "packb"]
