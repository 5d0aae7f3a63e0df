"""One Redis pub/sub connection, read in the transport's callback.

A hub node holds one of these per Redis server, whatever the number of its
clients. Messages are parsed by hiredis in ``data_received`` and handed to
``on_message(redis_channel, payload)`` at once: no task and no queue per
message. Every other reply (subscribe and unsubscribe confirmations, pongs,
AUTH) comes back in the order the commands were written, so one FIFO of
futures matches them.

A PING goes out every ``keepalive`` seconds; when the previous one is still
unanswered the connection is taken as dead and aborted, so a Redis that stops
answering without closing the socket is noticed within two intervals.
``on_lost(connection, exc)`` is called once when the connection ends, whatever
the cause.

A ``sharded`` connection (Redis Cluster, Redis 7) uses SSUBSCRIBE and
SUNSUBSCRIBE, one channel per command (a command's channels must share a slot).
Redis unsubscribes it by itself from the channels of a slot that moved to
another node; each of those is told to ``on_dropped(name)``. To tell them from
the confirmations of its own SUNSUBSCRIBEs, those confirmations are matched by
name, outside the FIFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable, Iterable

import hiredis

MESSAGES = (b"message", b"smessage")
SUNSUBSCRIBE = b"sunsubscribe"


def pack_command(*args: bytes) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class PubSubError(ConnectionError):
    """The pub/sub connection failed or Redis refused one of its commands."""


class PubSubConnection(asyncio.Protocol):
    """Subscribe, unsubscribe, and receive messages on one Redis connection."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[PubSubConnection, BaseException | None], None],
        keepalive: float = 2.0,
        sharded: bool = False,
        on_dropped: Callable[[bytes], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_dropped = on_dropped
        self.sharded = sharded
        self._leaving: set[bytes] = set()  # sharded: our SUNSUBSCRIBEs not yet confirmed
        self._keepalive = keepalive
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._pending: deque[asyncio.Future | None] = deque()
        self._ping_outstanding = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[PubSubConnection, BaseException | None], None],
        username: str | None = None,
        password: str | None = None,
        client_name: str | None = None,
        timeout: float = 2.0,
        tls: ssl.SSLContext | None = None,
        sharded: bool = False,
        on_dropped: Callable[[bytes], None] | None = None,
    ) -> PubSubConnection:
        """Connect (TLS, authenticate, name the connection) within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        connection = cls(
            on_message, on_lost, keepalive=timeout, sharded=sharded, on_dropped=on_dropped
        )
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: connection, host, port, ssl=tls, server_hostname=host if tls else None
            )
            try:
                if password is not None:
                    credentials = [username.encode()] if username else []
                    await connection._call(b"AUTH", *credentials, password.encode())
                if client_name is not None:
                    await connection._call(b"CLIENT", b"SETNAME", client_name.encode())
                await connection._call(b"PING")
            except BaseException:
                connection.close()
                raise
        return connection

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(self._keepalive, self._tick)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                if type(reply) is list and len(reply) == 3:
                    if reply[0] in MESSAGES:
                        self._on_message(reply[1], reply[2])
                        continue
                    if reply[0] == SUNSUBSCRIBE:
                        self._unsubscribed(reply[1])
                        continue
                if reply == [b"pong", b""] or reply == b"PONG":
                    self._ping_outstanding = False
                if self._pending:
                    future = self._pending.popleft()
                    if future is not None and not future.done():
                        if isinstance(reply, hiredis.ReplyError):
                            future.set_exception(PubSubError(f"redis refused: {reply}"))
                        else:
                            future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._abort(PubSubError(f"bad data from redis: {exc}"))

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, deque()
        error = PubSubError(f"redis pub/sub connection lost: {exc or 'closed'}")
        for future in pending:
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # the caller may have stopped waiting
        self._on_lost(self, exc)

    # -- commands --------------------------------------------------------------------

    def _write(self, command: bytes, replies: Iterable[asyncio.Future | None]) -> None:
        if self.lost or self._transport is None:
            raise PubSubError("redis pub/sub connection lost")
        self._pending.extend(replies)
        self._transport.write(command)

    async def _call(self, *args: bytes) -> object:
        future = self._loop.create_future()
        self._write(pack_command(*args), (future,))
        return await future

    def subscribe(self, channels: list[bytes]) -> list[asyncio.Future]:
        """SUBSCRIBE (or SSUBSCRIBE): one future per channel, done when Redis confirms it."""
        futures = [self._loop.create_future() for _ in channels]
        if self.sharded:
            command = b"".join(pack_command(b"SSUBSCRIBE", name) for name in channels)
        else:
            command = pack_command(b"SUBSCRIBE", *channels)
        self._write(command, futures)
        return futures

    def unsubscribe(self, channels: list[bytes]) -> None:
        """UNSUBSCRIBE (or SUNSUBSCRIBE); no confirmation is awaited (the channel's
        messages are ignored)."""
        if self.sharded:
            self._leaving.update(channels)
            self._write(b"".join(pack_command(b"SUNSUBSCRIBE", name) for name in channels), ())
            return
        self._write(pack_command(b"UNSUBSCRIBE", *channels), [None] * len(channels))

    def _unsubscribed(self, name: bytes) -> None:
        if name in self._leaving:
            self._leaving.discard(name)
        elif self._on_dropped is not None:
            self._on_dropped(name)

    def _tick(self) -> None:
        if self.lost:
            return
        if self._ping_outstanding:
            self._abort(PubSubError(f"redis did not answer a ping within {self._keepalive:g} s"))
            return
        self._ping_outstanding = True
        with contextlib.suppress(PubSubError):
            self._write(pack_command(b"PING"), (None,))
        self._timer = self._loop.call_later(self._keepalive, self._tick)

    def _abort(self, error: BaseException) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.connection_lost(error)

    def close(self) -> None:
        """Close the connection (``on_lost`` is still called once)."""
        if self._transport is not None and not self.lost:
            self._transport.abort()


__all__ = ["PubSubConnection", "PubSubError", "pack_command"]
