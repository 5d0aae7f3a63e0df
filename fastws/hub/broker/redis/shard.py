"""One Redis server of the Redis broker: its connections and its circuit breaker.

(A Redis Cluster, ``cluster.py``, and a master found through Sentinel,
``sentinel.py``, are shards too: each changes where the connections go.)

A shard holds a pool of command connections (with the broker's Lua scripts
registered), one pub/sub connection, and a circuit breaker (``circuit.py``):
closed, then open after ``failure_threshold`` failed commands in a row or at
once when the pub/sub connection drops. While open, calls fail at once with
``BrokerUnavailable`` and nothing queues. The shard's own task (``run``) probes
after the cooldown: a command round trip, a new pub/sub connection subscribed
again to every channel in ``channels``; then the circuit closes.

Calls take one of ``POOL_SIZE`` slots before a pooled connection (``slots.py``):
the rest queue there, bounded, and a call turned away from a full queue is
``BrokerOverloaded``, which the breaker never hears of. Only what Redis does
wrong (a lost connection, no answer within ``timeout``) counts as a failure.
The pool has one connection more than the slots: the probe's, so that it never
queues behind calls made before the circuit opened.

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
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, ReadOnlyError, RedisError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker.base import BrokerUnavailable, Publication
from fastws.hub.broker.circuit import CLOSED, OPEN, CircuitBreaker
from fastws.hub.broker.redis.pubsub import PubSubConnection, PubSubError
from fastws.hub.broker.redis.slots import CommandSlots
from fastws.hub.broker.redis.tls import RedisTLS
from fastws.hub.config import broker_hosts, broker_urls

logger = logging.getLogger("fastws.hub")

POOL_SIZE = 32  # calls in flight per Redis server (its pool has one more, the probe's)
# Calls of one server waiting for a slot: about one per connection a worker holds, so that
# every client reconnecting at once queues; the queue's time bound keeps the waits short.
MAX_WAITING = 20000
QUEUE_TIMEOUT = 10.0  # seconds a call may wait for a slot (broker_queue_timeout)
SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE when subscribing again

# Errors that say the server is gone or is no longer the master (a replica refuses
# writes with READONLY; a cluster refuses slots nobody serves during a failover).
FAILURES = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
    PubSubError,
    ReadOnlyError,
    ClusterDownError,
    SlotNotCoveredError,
)


class ShardListener(Protocol):
    """What a shard tells its broker; called on the event loop."""

    def on_shard_message(self, shard: Shard, name: bytes, payload: bytes) -> None:
        """A pub/sub message on ``name``."""

    def on_shard_up(self, shard: Shard) -> None:
        """The circuit closed after a probe: connected and subscribed again."""

    def on_shard_down(self, shard: Shard) -> None:
        """The circuit opened: calls fail fast until a probe succeeds."""

    def on_channel_moved(self, shard: Shard, channel: str) -> None:
        """``channel``'s pub/sub moved to another server, subscribed there again; what
        came meanwhile is held in ``shard.resyncing``."""


class Shard:
    """One Redis server: a command client, the pub/sub connection, a circuit breaker."""

    def __init__(
        self,
        url: str,
        breaker: CircuitBreaker,
        timeout: float,
        listener: ShardListener,
        tls: RedisTLS | None = None,
        queue_timeout: float = QUEUE_TIMEOUT,
    ) -> None:
        parsed = broker_urls(url)[0]
        if "+" in parsed.scheme:  # a cluster's seeds, or the sentinels: the first of them
            (self.host, self.port), self.db = broker_hosts(parsed)[0], 0
        else:
            self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 6379
            self.db = int(parsed.path.lstrip("/") or 0)
        self.username = parsed.username or None
        self.password = parsed.password
        self.tls = (tls or RedisTLS()) if parsed.scheme.startswith("rediss") else None
        self.name = f"{self.host}:{self.port}/{self.db}"
        self.suffix = rs.pubsub_suffix(self.db)
        self.control = (rs.CONTROL + self.suffix).encode()
        self.timeout = timeout
        self.listener = listener
        self.sharded = False  # pub/sub: SSUBSCRIBE and SPUBLISH (a Redis Cluster's choice)
        self.redis: Any = None
        self.use(self.connect_to(self.host, self.port))
        self.breaker = breaker
        self.pubsub: Any = None  # a PubSubConnection, or a cluster's set of them
        self.channels: dict[bytes, str] = {}  # pub/sub name -> hub channel: the node's interest
        self.resyncing: dict[str, list[Publication]] = {}  # channel -> held live publications
        self.slots = CommandSlots(lambda: f"redis {self.name}", POOL_SIZE, queue_timeout, MAX_WAITING)
        self.wake = asyncio.Event()
        self.first_attempt: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.closed = False
        self.local_epoch: str | None = None
        self.local_offsets: dict[str, int] = {}
        self.last_error = ""

    def connect_to(self, host: str, port: int) -> aioredis.Redis:
        """A command client of the server at ``host:port``."""
        tls = {} if self.tls is None else self.tls.connection_options()
        pool = aioredis.BlockingConnectionPool(
            host=host,
            port=port,
            db=self.db,
            username=self.username,
            password=self.password,
            max_connections=POOL_SIZE + 1,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=f"fastws-{os.getpid()}",
            **({} if self.tls is None else {"connection_class": SSLConnection, **tls}),
        )
        return aioredis.Redis(connection_pool=pool)

    def use(self, client: Any) -> None:
        """Send commands through ``client`` (a server's, or a cluster's) from now on."""
        self.redis = client
        self.publish = client.register_script(rs.SPUBLISH if self.sharded else rs.PUBLISH)
        self.history = client.register_script(rs.HISTORY)
        self.add_presence = client.register_script(rs.ADD_PRESENCE)
        self.presence = client.register_script(rs.PRESENCE)
        self.occupy = client.register_script(rs.OCCUPY)
        self.vacate = client.register_script(rs.VACATE)
        self.lease = client.register_script(rs.LEASE)
        self.reap = client.register_script(rs.REAP)

    def pubsub_name(self, channel: str) -> bytes:
        return rs.pubsub_name(channel, self.suffix)

    async def send(self, name: bytes, message: bytes) -> None:
        """PUBLISH (or SPUBLISH) one message; run it through ``execute``."""
        if self.sharded:
            await self.redis.spublish(name, message)
        else:
            await self.redis.publish(name, message)

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
            **self.slots.status(),
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

    async def locate(self) -> None:
        """Before each probe: find where the server is now (a fixed address here)."""

    async def open_pubsub(self) -> Any:
        """The pub/sub connection (or a set of them, ``cluster.py``) of this shard."""
        return await self.open_pubsub_to(self.host, self.port)

    async def open_pubsub_to(
        self,
        host: str,
        port: int,
        *,
        on_dropped: Callable[[bytes], None] | None = None,
        on_lost: Callable[[PubSubConnection, BaseException | None], None] | None = None,
    ) -> PubSubConnection:
        return await PubSubConnection.open(
            host,
            port,
            on_message=lambda name, payload: self.listener.on_shard_message(self, name, payload),
            on_lost=on_lost or self._on_pubsub_lost,
            username=self.username,
            password=self.password,
            client_name=f"fastws-pubsub-{os.getpid()}",  # CLIENT LIST tells the hub processes
            timeout=self.timeout,
            tls=None if self.tls is None else self.tls.context(),
            sharded=self.sharded,
            on_dropped=on_dropped,
        )

    async def _connect(self) -> None:
        """The probe: a command round trip, a new pub/sub connection, every channel again."""
        async with asyncio.timeout(self.timeout * 2):
            await self.locate()
        async with asyncio.timeout(self.timeout):
            await self.redis.ping()
        connection = await self.open_pubsub()
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

    def _on_pubsub_lost(self, connection: Any, exc: BaseException | None) -> None:
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
        """Run one Redis call in a slot, through the circuit; failures of Redis become
        BrokerUnavailable and feed the breaker, a full queue is BrokerOverloaded."""
        breaker = self.breaker
        if breaker.state != CLOSED:
            raise self.unavailable()
        async with self.slots:
            if breaker.state != CLOSED:  # opened while the call queued
                raise self.unavailable()
            try:
                result = await call(*args, **kw)
            except FAILURES as exc:
                raise self.failed(exc) from None
            except RedisError as exc:  # refused (out of memory, read-only...): not a lost link
                raise BrokerUnavailable(f"redis {self.name} refused: {exc}") from None
        if breaker.failures:
            breaker.success()
        return result


__all__ = ["Shard", "ShardListener"]
