"""The NATS broker: hub nodes joined through NATS with JetStream.

    python -m fastws --broker nats://127.0.0.1:4222
    python -m fastws --broker nats://10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4222   # a cluster

What lives where (names and records in ``records.py``):

- Offsets, history and fan-out: each channel has its own JetStream stream, so the
  stream's sequence numbers are the channel's offsets, contiguous as recovery needs.
  A publication is one JetStream publish: the stream assigns the sequence, keeps the
  history (``max_msgs`` = history size, ``max_age`` = history TTL) and republishes
  the stored message with its sequence to the nodes subscribed with core NATS, in
  the order it stored them. The epoch is the stream's creation time: a stream that
  was removed and made again (by an operator, or lost with a server's storage) has a
  new one.
- Presence: a key-value bucket whose entries expire after ``presence_ttl`` unless the
  owning node writes them again (every ``presence_ttl / 3``).
- Users and control messages: one core NATS subject that every node subscribes to.
- Replication: with three or more servers listed, streams and buckets are made with
  three replicas, so a cluster keeps them through the loss of one server.

What differs from the Redis broker (docs/deployment.md): a stream lives until it is
removed, so ``history_meta_ttl`` does not apply; nodes are not counted per channel,
so ``subscribe``/``unsubscribe`` answer None and the hub refuses hooks on
channel_occupied/channel_vacated; ``local_delivery_on_outage`` is not offered
(configuration refuses it).

Failures. One circuit breaker guards the connection: it opens when the connection
drops or after ``failure_threshold`` failed calls, and calls then fail at once with
``BrokerUnavailable``. The client reconnects by itself (to any listed server); after
the cooldown a probe checks JetStream, the circuit closes, and every subscribed channel
is *resynced*: live publications are held while the stream is read from the last
delivered offset, then delivered in order. What the stream no longer holds reaches
the node as a gap (or a new epoch), which ends those subscriptions so their clients
recover from their position and learn ``recovered: false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js import api

import fastws.hub.broker.nats.records as nr
from fastws.hub.broker.base import (
    Broker,
    BrokerSink,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
)
from fastws.hub.broker.circuit import CLOSED, CircuitBreaker
from fastws.hub.broker.resync import missed, newer

logger = logging.getLogger("fastws.hub")

HELD_LIMIT = 10000  # live publications held per channel while it resyncs
RESYNC_CONCURRENCY = 32
FETCH_BATCH = 256  # history messages requested at once
KNOWN_STREAMS = 10000  # streams remembered besides those of subscribed channels
NODES_MAX_AGE = 3600.0  # announcements of nodes that stopped are gone from NATS after this
FAILURES = (nats.errors.Error, TimeoutError, OSError)
KV_OPERATION = "KV-Operation"  # the header of a key-value delete or purge record
KV_MARKER = "Nats-Marker-Reason"  # the header of a record the server writes on expiry


@dataclass(frozen=True, slots=True)
class Limits:
    """What a channel's stream keeps: at least one message (a stream cannot keep none)."""

    max_msgs: int
    max_age: float  # seconds, 0 for no limit

    @classmethod
    def of(cls, options: PublishOptions | None) -> Limits:
        if options is None or options.history_size <= 0:
            return cls(1, 0.0)
        return cls(options.history_size, round(options.history_ttl, 3))

    @classmethod
    def of_config(cls, config: api.StreamConfig) -> Limits:
        return cls(config.max_msgs or 1, round(config.max_age or 0.0, 3))


@dataclass(slots=True)
class KnownStream:
    """What this node last learnt of a channel's stream."""

    epoch: str
    limits: Limits
    acked: int  # the highest sequence acknowledged to this node, or read from the stream


class NatsBroker(Broker):
    """Channels, history, presence and users shared by every node on the same NATS."""

    counts_occupancy = False
    presence_expires = True

    def __init__(
        self,
        servers: list[str],
        *,
        timeout: float = 2.0,
        failure_threshold: int = 3,
        cooldown: float = 1.0,
        cooldown_max: float = 30.0,
        presence_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ValueError("at least one NATS server is needed")
        self.servers = servers
        self.timeout = timeout
        self.presence_ttl = presence_ttl
        self.replicas = 3 if len(servers) >= 3 else 1
        self.breaker = CircuitBreaker(failure_threshold, cooldown, cooldown_max, clock=clock)
        self.error = ""
        self._nc: Any = None  # nats.aio.client.Client once connected
        self._js: Any = None
        self._presence_kv: Any = None
        self._nodes_kv: Any = None
        self._sink: BrokerSink | None = None
        self._closed = False
        self._streams: dict[str, KnownStream] = {}
        self._subscriptions: dict[str, Any] = {}  # channel -> its core NATS subscription
        self._positions: dict[str, Publication] = {}  # last delivered, per subscribed channel
        self._resyncing: dict[str, list[tuple[int, str | None, bytes]]] = {}
        self._probes: dict[bytes, asyncio.Future] = {}  # subscriptions awaiting their echo
        self._tasks: set[asyncio.Task] = set()
        self._connecting: asyncio.Task | None = None
        self._attempted = asyncio.Event()  # the first connection attempt ended
        self._recovering: asyncio.Task | None = None
        self.publishes = 0
        self.publish_latency_total = 0.0

    # -- state -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def healthy(self) -> bool:
        return not self._closed and self.connected and self.breaker.state == CLOSED

    @property
    def server(self) -> str | None:
        """HOST:PORT of the server connected to (never the credentials of its URL)."""
        url = self._nc.connected_url if self.connected else None
        return None if url is None else f"{url.hostname}:{url.port}"

    def breakers(self) -> list[CircuitBreaker]:
        return [self.breaker]

    def status(self) -> dict[str, Any]:
        if self.healthy:
            state = "up"
        elif self.breaker.ever_closed:
            state = "degraded"
        else:
            state = "starting"
        average = self.publish_latency_total / self.publishes if self.publishes else 0.0
        return {
            "state": state,
            "circuit": self.breaker.state,
            "failures": self.breaker.failures,
            "trips": self.breaker.trips,
            "publishes": self.publishes,
            "publish_latency_avg_ms": round(average * 1000, 3),
            "server": self.server,
            "replicas": self.replicas,
            "error": self.error,
        }

    def unavailable(self) -> BrokerUnavailable:
        detail = f": {self.error}" if self.error else ""
        return BrokerUnavailable(f"NATS is unavailable ({self.breaker.state}){detail}")

    # -- life cycle ------------------------------------------------------------------

    async def start(self, sink: BrokerSink) -> None:
        """Connect (bounded wait); never fails for NATS being down: the node then starts
        not ready and keeps trying."""
        self._sink = sink
        self._closed = False
        self._attempted.clear()
        self._connecting = asyncio.get_running_loop().create_task(self._connect())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3 * self.timeout + 1):
                await self._attempted.wait()

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (*self._tasks, self._connecting, self._recovering) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(*FAILURES):
                await self._nc.close()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connect(self) -> None:
        """The first connection, until it succeeds: the client retries every cooldown by
        itself (reporting each failure to ``_on_error``); preparing JetStream is retried
        after the breaker's cooldown."""
        breaker = self.breaker
        while not self._closed:
            await asyncio.sleep(breaker.retry_in())
            if not breaker.try_probe():
                continue
            try:
                nc = await nats.connect(
                    self.servers,
                    name="fastws",
                    connect_timeout=self.timeout,
                    reconnect_time_wait=breaker.base_cooldown,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
                try:
                    await self._prepare(nc)
                except BaseException:
                    await nc.close()
                    raise
            except (*FAILURES, nats.js.errors.Error) as exc:
                self.error = str(exc) or type(exc).__name__
                breaker.failure()
                logger.warning("fastws hub: cannot reach NATS: %s", self.error)
                self._attempted.set()
                continue
            self._nc = nc
            self.error = ""
            breaker.success()
            logger.info("fastws hub: connected to NATS at %s", self.server)
            self._attempted.set()
            return

    async def _prepare(self, nc: Any) -> None:
        """JetStream, the key-value buckets, and the control subject on a new connection."""
        js = nc.jetstream(timeout=self.timeout)
        async with asyncio.timeout(3 * self.timeout):
            self._presence_kv = await self._bucket(js, nr.PRESENCE_BUCKET, self.presence_ttl)
            self._nodes_kv = await self._bucket(js, nr.NODES_BUCKET, NODES_MAX_AGE)
            await self._subscribe(
                nc, nr.CONTROL_SUBJECT, nr.CONTROL_SUBJECT, self._on_control_message,
                lambda token: nr.pack(nr.PROBE, token),
            )  # fmt: skip
        self._js = js

    async def _subscribe(
        self,
        nc: Any,
        pattern: str,
        probe_subject: str,
        callback: Callable[[Any], Awaitable[None]],
        probe: Callable[[bytes], bytes] = bytes,
    ) -> Any:
        """Subscribe, then wait until a probe this node publishes comes back through the
        subscription: a flushed subscription may not receive what other connections
        publish for a few milliseconds more, and the node must not believe it is
        listening before it is. Other nodes ignore the probe."""
        token = os.urandom(8)
        echoed = asyncio.get_running_loop().create_future()
        self._probes[token] = echoed
        subscription = None
        try:
            subscription = await nc.subscribe(pattern, cb=callback)
            await nc.publish(probe_subject, probe(token))
            await echoed
        except BaseException:
            if subscription is not None:
                with contextlib.suppress(*FAILURES):
                    await subscription.unsubscribe()
            raise
        finally:
            del self._probes[token]
        return subscription

    def _on_probe(self, token: bytes) -> None:
        echoed = self._probes.get(token)
        if echoed is not None and not echoed.done():
            echoed.set_result(None)

    async def _bucket(self, js: Any, name: str, ttl: float) -> Any:
        try:
            return await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            pass
        try:
            return await js.create_key_value(
                bucket=name, ttl=ttl, history=1, replicas=self.replicas,
                storage=api.StorageType.FILE,
            )  # fmt: skip
        except nats.js.errors.BadRequestError:  # made by another node meanwhile
            return await js.key_value(name)

    async def _on_error(self, exc: Exception) -> None:
        self.error = str(exc) or type(exc).__name__
        self._attempted.set()  # a first connection attempt failed: start need not wait

    async def _on_disconnected(self) -> None:
        if self._closed:
            return
        self.breaker.trip()
        for channel in self._subscriptions:  # held from now on, until resynced
            self._resyncing.setdefault(channel, [])
        logger.warning("fastws hub: the connection to NATS is lost")

    async def _on_reconnected(self) -> None:
        logger.info("fastws hub: reconnected to NATS at %s", self.server)
        self._recover()

    def _recover(self) -> None:
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        """After the cooldown, check JetStream answers; then close the circuit and resync."""
        breaker = self.breaker
        while not self._closed and self.connected:
            await asyncio.sleep(breaker.retry_in())
            if not breaker.try_probe():
                if breaker.state == CLOSED:
                    break
                continue
            try:
                async with asyncio.timeout(self.timeout):
                    await self._js.account_info()
            except (*FAILURES, nats.js.errors.Error) as exc:
                self.error = str(exc) or type(exc).__name__
                breaker.failure()
                continue
            self.error = ""
            breaker.success()
            break
        if breaker.state == CLOSED:
            await self._resync_all()

    # -- the circuit around every call -------------------------------------------------

    async def _execute(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if self._closed or not self.connected or self.breaker.state != CLOSED:
            raise self.unavailable()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call()
        except FAILURES as exc:
            self.error = str(exc) or type(exc).__name__
            if self.breaker.failure():
                self._recover()
            raise BrokerUnavailable(f"NATS: {self.error}") from None
        self.breaker.success()
        return result

    # -- streams ---------------------------------------------------------------------

    def _stream_config(self, key: str, limits: Limits) -> api.StreamConfig:
        return api.StreamConfig(
            name=nr.stream_name(key),
            subjects=[nr.input_subject(key)],
            max_msgs=limits.max_msgs,
            max_age=limits.max_age or None,
            discard=api.DiscardPolicy.OLD,
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            republish=api.RePublish(
                src=nr.input_subject(key), dest=nr.output_subject(key, nr.PUBLICATION)
            ),
        )

    def _learn(self, channel: str, info: api.StreamInfo) -> None:
        epoch = nr.epoch_of(info.created)
        known = self._streams.get(channel)
        acked = info.state.last_seq
        if known is not None and known.epoch == epoch:
            acked = max(acked, known.acked)
        self._streams[channel] = KnownStream(epoch, Limits.of_config(info.config), acked)
        if len(self._streams) > KNOWN_STREAMS + len(self._subscriptions):
            unsubscribed = [
                c for c in self._streams if c not in self._subscriptions and c != channel
            ]
            for forgotten in unsubscribed[: KNOWN_STREAMS // 2]:  # the oldest learnt
                del self._streams[forgotten]

    async def _stream(self, channel: str, options: PublishOptions | None) -> KnownStream:
        """The channel's stream, made when missing; with ``options``, keeping what they say."""
        known = self._streams.get(channel)
        wanted = Limits.of(options)
        if known is not None and (options is None or known.limits == wanted):
            return known
        await self._info(channel, None if options is None else wanted)
        return self._streams[channel]

    async def _info(self, channel: str, wanted: Limits | None = None) -> api.StreamInfo:
        """Read the stream's state now (make the stream when missing; change its limits
        to ``wanted`` when given and different)."""
        key = nr.channel_key(channel)
        js = self._js
        try:
            info = await js.stream_info(nr.stream_name(key))
        except nats.js.errors.NotFoundError:
            config = self._stream_config(key, wanted or Limits.of(None))
            try:
                info = await js.add_stream(config)
            except nats.js.errors.BadRequestError:  # made by another node meanwhile
                info = await js.stream_info(nr.stream_name(key))
        if wanted is not None and Limits.of_config(info.config) != wanted:
            info = await js.update_stream(self._stream_config(key, wanted))
        self._learn(channel, info)
        return info

    async def _read(
        self, channel: str, since: StreamPosition | None, limit: int | None, reverse: bool
    ) -> HistoryResult:
        state = (await self._info(channel)).state
        epoch = self._streams[channel].epoch
        first, last = state.first_seq or state.last_seq + 1, state.last_seq
        position = StreamPosition(last, epoch)
        if limit == 0 or first > last or (since is not None and since.epoch != epoch):
            return HistoryResult(position, [])
        if reverse:
            stop = last if since is None else min(last, since.offset - 1)
            start = first if limit is None else max(first, stop - limit + 1)
        else:
            start = first if since is None else max(first, since.offset + 1)
            stop = last if limit is None else min(last, start + limit - 1)
        publications = await self._fetch(channel, epoch, start, stop)
        if reverse:
            publications.reverse()
        return HistoryResult(position, publications)

    async def _fetch(
        self, channel: str, epoch: str, start: int, stop: int
    ) -> list[Publication]:
        """The stored publications from ``start`` to ``stop`` that history shows, read from
        the stream's leader (replicas may lag behind what its state said)."""
        if start > stop:
            return []
        name = nr.stream_name(nr.channel_key(channel))
        js = self._js

        async def one(seq: int) -> Any:
            try:
                return await js.get_msg(name, seq)
            except nats.js.errors.NotFoundError:  # aged out since the state was read
                return None

        stored = []
        for first in range(start, stop + 1, FETCH_BATCH):  # requests in flight at once
            last = min(stop, first + FETCH_BATCH - 1)
            stored += await asyncio.gather(*(one(seq) for seq in range(first, last + 1)))
        publications = []
        for message in stored:
            if message is None:
                continue
            user, kept, data = nr.unpack(message.data)
            if kept:
                publications.append(Publication(message.seq, epoch, data, user))
        return publications

    # -- resync ----------------------------------------------------------------------

    async def _resync_all(self) -> None:
        for channel in self._subscriptions:
            self._resyncing.setdefault(channel, [])
        semaphore = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def one(channel: str) -> None:
            async with semaphore:
                await self._resync(channel)

        await asyncio.gather(*(one(channel) for channel in list(self._resyncing)))

    async def _resync(self, channel: str) -> None:
        """Deliver what the node missed from the stream, then what was held meanwhile."""
        held = self._resyncing.get(channel)
        if held is None:
            return

        async def read(since: StreamPosition | None) -> HistoryResult:
            return await self._execute(lambda: self._read(channel, since, None, False))

        replay = await missed(channel, self._positions.get(channel), read)
        if self._resyncing.get(channel) is not held:
            return  # unsubscribed, or the connection was lost again
        del self._resyncing[channel]
        known = self._streams.get(channel)
        epoch = known.epoch if known is not None else ""
        live = [Publication(offset, epoch, data, user) for offset, user, data in held]
        self._deliver_in_order(channel, replay + live)

    def _deliver_in_order(self, channel: str, publications: list[Publication]) -> None:
        on_publication = self._sink.on_publication
        for publication in newer(self._positions, channel, publications):
            self._deliver(on_publication, channel, publication)

    async def _check_epoch(self, channel: str) -> None:
        """An offset went back: if the stream was made again, resync to its new epoch."""
        try:
            await self._execute(lambda: self._info(channel))
        except BrokerUnavailable:
            return
        last = self._positions.get(channel)
        if last is not None and last.epoch != self._streams[channel].epoch and channel not in self._resyncing:
            self._resyncing[channel] = []
            await self._resync(channel)

    # -- messages from NATS -------------------------------------------------------------

    async def _on_channel_message(self, channel: str, message: Any) -> None:
        try:
            kind = message.subject.rpartition(".")[2]
            if kind == nr.PUBLICATION:
                self._on_publication(channel, message)
            elif kind == nr.JOIN:
                self._deliver(self._sink.on_join, channel, nr.decode_client(message.data))
            elif kind == nr.LEAVE:
                self._deliver(self._sink.on_leave, channel, nr.decode_client(message.data))
            elif kind == nr.PROBE:
                self._on_probe(message.data)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("fastws hub: ignoring a malformed message on %s: %s", channel, exc)

    def _on_publication(self, channel: str, message: Any) -> None:
        if channel not in self._subscriptions:
            return  # unsubscribed meanwhile
        offset = int(message.headers["Nats-Sequence"])
        user, _, data = nr.unpack(message.data)
        held = self._resyncing.get(channel)
        if held is not None:
            if len(held) < HELD_LIMIT:
                held.append((offset, user, data))
            return
        known = self._streams[channel]
        last = self._positions.get(channel)
        if last is not None and last.epoch == known.epoch and offset <= last.offset:
            self._spawn(self._check_epoch(channel))
            return
        publication = Publication(offset, known.epoch, data, user)
        self._positions[channel] = publication
        self._deliver(self._sink.on_publication, channel, publication)

    async def _on_control_message(self, message: Any) -> None:
        try:
            kind, *fields = nr.unpack(message.data)
            sink = self._sink
            if kind == nr.USER_MESSAGE:
                self._deliver(sink.on_user_message, *fields)
            elif kind == nr.USER_DISCONNECT:
                self._deliver(sink.on_disconnect_user, *fields)
            elif kind == nr.CONTROL_MESSAGE:
                self._deliver(sink.on_control, *fields)
            elif kind == nr.PROBE:
                self._on_probe(*fields)
        except (ValueError, TypeError) as exc:
            logger.warning("fastws hub: ignoring a malformed control message: %s", exc)

    # -- the broker interface ------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        if channel in self._subscriptions:
            return
        self._subscriptions[channel] = None  # taken: an unsubscribe meanwhile removes it
        key = nr.channel_key(channel)

        async def call() -> Any:
            await self._stream(channel, None)
            return await self._subscribe(
                self._nc,
                nr.output_subject(key, "*"),
                nr.output_subject(key, nr.PROBE),
                partial(self._on_channel_message, channel),
            )

        try:
            subscription = await self._execute(call)
        except BrokerUnavailable:
            if channel in self._subscriptions and self._subscriptions[channel] is None:
                del self._subscriptions[channel]
            raise
        if channel in self._subscriptions:
            self._subscriptions[channel] = subscription
        else:
            with contextlib.suppress(*FAILURES):
                await subscription.unsubscribe()

    async def unsubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.pop(channel, None)
        self._resyncing.pop(channel, None)
        self._positions.pop(channel, None)
        if subscription is not None:
            with contextlib.suppress(*FAILURES):
                await subscription.unsubscribe()

    async def publish(
        self, channel: str, data: bytes, user: str | None, options: PublishOptions
    ) -> StreamPosition:
        key = nr.channel_key(channel)
        payload = nr.encode_publication(user, options.history_size > 0, data)

        async def call() -> StreamPosition:
            known = await self._stream(channel, options)
            before = known.acked  # every publish sent from now on gets a higher sequence
            try:
                ack = await self._js.publish(
                    nr.input_subject(key), payload, stream=nr.stream_name(key)
                )
            except nats.js.errors.NoStreamResponseError:  # perhaps the stream was removed
                await self._info(channel, Limits.of(options))
                known = self._streams[channel]
                ack = await self._js.publish(
                    nr.input_subject(key), payload, stream=nr.stream_name(key)
                )
            if ack.seq <= before:  # the stream was made again since this node last saw it
                await self._info(channel)
                known = self._streams[channel]
            known.acked = max(known.acked, ack.seq)
            return StreamPosition(ack.seq, known.epoch)

        started = time.perf_counter()
        position = await self._execute(call)
        self.publishes += 1
        self.publish_latency_total += time.perf_counter() - started
        return position

    async def history(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        result = await self._execute(lambda: self._read(channel, since, limit, reverse))
        if channel not in self._positions and self._subscriptions.get(channel) is not None:
            position = result.position  # where a newly subscribed channel starts
            self._positions[channel] = Publication(position.offset, position.epoch, b"")
        return result

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        key = nr.presence_key(nr.channel_key(channel), info.client)
        await self._execute(lambda: self._presence_kv.put(key, nr.encode_client(info)))

    async def remove_presence(self, channel: str, client: str) -> None:
        key = nr.presence_key(nr.channel_key(channel), client)
        await self._execute(lambda: self._presence_kv.delete(key))

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        entries = await self._execute(
            lambda: self._entries(nr.PRESENCE_BUCKET, f"{nr.channel_key(channel)}.*")
        )
        clients = (nr.decode_client(value) for value in entries.values())
        return {info.client: info for info in clients}

    async def _entries(self, bucket: str, pattern: str) -> dict[str, bytes]:
        """The live values of ``bucket``'s keys matching ``pattern``: the last record of
        each key, read by an ordered consumer up to the one the server says is the last.
        (The client library's key watcher can report "nothing stored" before records
        already on their way have been handed over, so it is not used here.)"""
        prefix = f"$KV.{bucket}."
        subscription = await self._js.subscribe(
            prefix + pattern,
            stream=f"KV_{bucket}",
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=60.0,
        )
        entries: dict[str, bytes] = {}
        try:
            info = await subscription.consumer_info()
            if info.num_pending + info.delivered.consumer_seq == 0:
                return entries
            while True:
                message = await subscription.next_msg(timeout=self.timeout)
                key = message.subject[len(prefix):]
                headers = message.headers or {}
                if KV_OPERATION in headers or KV_MARKER in headers:
                    entries.pop(key, None)  # deleted, purged or expired
                else:
                    entries[key] = message.data
                if message.metadata.num_pending == 0:
                    return entries
        finally:
            await subscription.unsubscribe()

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._publish_member(channel, nr.JOIN, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._publish_member(channel, nr.LEAVE, info)

    async def _publish_member(self, channel: str, kind: str, info: ClientInfo) -> None:
        subject = nr.output_subject(nr.channel_key(channel), kind)
        await self._execute(lambda: self._nc.publish(subject, nr.encode_client(info)))

    async def send_to_user(self, user: str, sender: str | None, data: bytes) -> None:
        await self._control(nr.pack(nr.USER_MESSAGE, user, sender, data))

    async def disconnect_user(self, user: str, code: int, reason: str) -> None:
        await self._control(nr.pack(nr.USER_DISCONNECT, user, code, reason))

    async def control(self, data: bytes) -> None:
        await self._control(nr.pack(nr.CONTROL_MESSAGE, data))

    async def _control(self, payload: bytes) -> None:
        await self._execute(lambda: self._nc.publish(nr.CONTROL_SUBJECT, payload))

    async def remove_history(self, channel: str) -> None:
        name = nr.stream_name(nr.channel_key(channel))

        async def call() -> None:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.purge_stream(name)  # the sequence stays where it was

        await self._execute(call)

    async def announce(self, node: str, info: bytes, ttl: float) -> None:
        record = nr.pack(time.time() + ttl, info)
        await self._execute(lambda: self._nodes_kv.put(nr.token(node), record))

    async def nodes(self) -> dict[str, bytes]:
        entries = await self._execute(lambda: self._entries(nr.NODES_BUCKET, ">"))
        now = time.time()
        found = {}
        for key, value in entries.items():
            expires, info = nr.unpack(value)
            if expires > now:
                found[nr.untoken(key)] = info
        return found


__all__ = ["NatsBroker"]
