"""One Redis server of the Redis broker: its connections and its circuit breaker.

A shard holds a pool of command connections (with the broker's Lua scripts
registered), one pub/sub connection, and a circuit breaker (``circuit.py``):
closed, then open after ``failure_threshold`` failed commands in a row or at
once when the pub/sub connection drops. While open, calls fail at once with
``BrokerUnavailable`` and nothing queues. The shard's own task (``run``) probes
after the cooldown: a command round trip, a new pub/sub connection subscribed
again to every channel in ``channels``; then the circuit closes.

What the shard carries (the channels the node needs, the publications held
while a channel resyncs, the local stream kept during an outage) is decided by
the broker, which the shard tells of messages and of the circuit's changes
through a ``ShardListener``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker.base import BrokerUnavailable, Publication
from fastws.hub.broker.circuit import CLOSED, OPEN, CircuitBreaker
from fastws.hub.broker.redis.pubsub import PubSubConnection, PubSubError
from fastws.hub.config import broker_urls

logger = logging.getLogger("fastws.hub")

POOL_SIZE = 32  # command connections per Redis server
MAX_WAITING = 2048  # commands per server in flight or waiting for a connection
SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE when subscribing again

FAILURES = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError, PubSubError)


class ShardListener(Protocol):
    """What a shard tells its broker; called on the event loop."""

    def on_shard_message(self, shard: Shard, name: bytes, payload: bytes) -> None:
        """A pub/sub message on ``name``."""

    def on_shard_up(self, shard: Shard) -> None:
        """The circuit closed after a probe: connected and subscribed again."""

    def on_shard_down(self, shard: Shard) -> None:
        """The circuit opened: calls fail fast until a probe succeeds."""


class Shard:
    """One Redis server: a command client, the pub/sub connection, a circuit breaker."""

    def __init__(
        self, url: str, breaker: CircuitBreaker, timeout: float, listener: ShardListener
    ) -> None:
        parsed = broker_urls(url)[0]
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.db = int(parsed.path.lstrip("/") or 0)
        self.username = parsed.username or None
        self.password = parsed.password
        self.name = f"{self.host}:{self.port}/{self.db}"
        self.suffix = rs.pubsub_suffix(self.db)
        self.control = (rs.CONTROL + self.suffix).encode()
        self.timeout = timeout
        self.listener = listener
        pool = aioredis.BlockingConnectionPool(
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username,
            password=self.password,
            max_connections=POOL_SIZE,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=f"fastws-{os.getpid()}",
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.publish = self.redis.register_script(rs.PUBLISH)
        self.history = self.redis.register_script(rs.HISTORY)
        self.add_presence = self.redis.register_script(rs.ADD_PRESENCE)
        self.presence = self.redis.register_script(rs.PRESENCE)
        self.breaker = breaker
        self.pubsub: PubSubConnection | None = None
        self.channels: dict[bytes, str] = {}  # pub/sub name -> hub channel: the node's interest
        self.resyncing: dict[str, list[Publication]] = {}  # channel -> held live publications
        self.waiting = 0
        self.wake = asyncio.Event()
        self.first_attempt: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.closed = False
        self.local_epoch: str | None = None
        self.local_offsets: dict[str, int] = {}
        self.last_error = ""

    def pubsub_name(self, channel: str) -> bytes:
        return rs.pubsub_name(channel, self.suffix)

    def status(self) -> dict[str, Any]:
        breaker = self.breaker
        return {
            "address": self.name,
            "circuit": breaker.state,
            "failures": breaker.failures,
            "trips": breaker.trips,
            "retry_in": round(breaker.retry_in(), 3),
            "channels": len(self.channels),
            "error": self.last_error,
        }

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start probing; ``first_attempt`` is done once the first probe ended, either way."""
        self.closed = False
        loop = asyncio.get_running_loop()
        self.first_attempt = loop.create_future()
        self.task = loop.create_task(self.run())

    async def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        connection, self.pubsub = self.pubsub, None
        if connection is not None:
            connection.close()
        try:
            await self.redis.aclose()
        except Exception as exc:  # closing: nothing left to do about it
            logger.debug("fastws hub: closing redis %s: %s", self.name, exc)

    async def run(self) -> None:
        """Keep the server connected: probe when the circuit allows."""
        breaker = self.breaker
        while not self.closed:
            if breaker.state == CLOSED:
                self.wake.clear()
                await self.wake.wait()
                if breaker.state != CLOSED:  # just opened: no command connection is trusted
                    await self._reset_pool()
                continue
            delay = breaker.retry_in()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if not breaker.try_probe():
                await asyncio.sleep(0.01)
                continue
            try:
                await self._connect()
            except Exception as exc:
                self.drop_pubsub()
                breaker.failure()
                self.last_error = str(exc) or type(exc).__name__
                logger.warning(
                    "fastws hub: redis %s unreachable (%s); next attempt in %.1f s",
                    self.name,
                    self.last_error,
                    breaker.retry_in(),
                )
            else:
                breaker.success()
                self.last_error = ""
                logger.info(
                    "fastws hub: redis %s connected; %d channels subscribed",
                    self.name,
                    len(self.channels),
                )
                self.listener.on_shard_up(self)
            finally:
                if self.first_attempt is not None and not self.first_attempt.done():
                    self.first_attempt.set_result(None)

    async def _connect(self) -> None:
        """The probe: a command round trip, a new pub/sub connection, every channel again."""
        async with asyncio.timeout(self.timeout):
            await self.redis.ping()
        connection = await PubSubConnection.open(
            self.host,
            self.port,
            on_message=lambda name, payload: self.listener.on_shard_message(self, name, payload),
            on_lost=self._on_pubsub_lost,
            username=self.username,
            password=self.password,
            client_name=f"fastws-pubsub-{os.getpid()}",  # CLIENT LIST tells the hub processes
            timeout=self.timeout,
        )
        self.pubsub = connection
        # From here until their resync, live publications of these channels are held.
        self.resyncing = {channel: [] for channel in self.channels.values()}
        names = [self.control, *self.channels]
        futures: list[asyncio.Future] = []
        for start in range(0, len(names), SUBSCRIBE_CHUNK):
            futures += connection.subscribe(names[start : start + SUBSCRIBE_CHUNK])
        async with asyncio.timeout(self.timeout * (1 + len(names) // 10000)):
            await asyncio.gather(*futures)

    def drop_pubsub(self) -> None:
        connection, self.pubsub = self.pubsub, None
        self.resyncing = {}
        if connection is not None:
            connection.close()

    def _on_pubsub_lost(self, connection: PubSubConnection, exc: BaseException | None) -> None:
        if self.pubsub is not connection or self.closed:
            return  # closed on purpose, or an older connection
        self.last_error = f"pub/sub connection lost: {exc or 'closed by redis'}"
        if self.breaker.trip():
            self._opened()
        else:
            self.drop_pubsub()
            self.wake.set()

    async def _reset_pool(self) -> None:
        try:
            await self.redis.connection_pool.disconnect()
        except Exception as exc:
            logger.debug("fastws hub: resetting the redis %s pool: %s", self.name, exc)

    # -- the circuit -----------------------------------------------------------------

    def failed(self, exc: BaseException) -> BrokerUnavailable:
        """A command failed for a connection reason: count it; the error to raise."""
        self.last_error = str(exc) or type(exc).__name__
        if self.breaker.failure():
            self._opened()
        return BrokerUnavailable(f"redis {self.name}: {self.last_error}")

    def _opened(self) -> None:
        logger.warning(
            "fastws hub: redis %s is failing (%s); circuit open, calls fail fast, next probe in "
            "%.1f s",
            self.name,
            self.last_error,
            self.breaker.retry_in(),
        )
        self.drop_pubsub()
        self.listener.on_shard_down(self)
        self.wake.set()

    def unavailable(self) -> BrokerUnavailable:
        """The error for a call made while the circuit is not closed."""
        breaker = self.breaker
        why = self.last_error or "not connected"
        if breaker.state == OPEN:
            return BrokerUnavailable(
                f"redis {self.name} is down ({why}); next probe in {breaker.retry_in():.1f} s"
            )
        return BrokerUnavailable(f"redis {self.name} is reconnecting ({why})")

    async def execute(self, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run one Redis call through the circuit; failures become BrokerUnavailable."""
        breaker = self.breaker
        if breaker.state != CLOSED:
            raise self.unavailable()
        if self.waiting >= MAX_WAITING:
            raise BrokerUnavailable(f"redis {self.name}: too many commands waiting")
        self.waiting += 1
        try:
            result = await call(*args, **kw)
        except FAILURES as exc:
            raise self.failed(exc) from None
        except RedisError as exc:  # refused (out of memory, read-only...): not a lost link
            raise BrokerUnavailable(f"redis {self.name} refused: {exc}") from None
        finally:
            self.waiting -= 1
        if breaker.failures:
            breaker.success()
        return result


__all__ = ["Shard", "ShardListener"]
