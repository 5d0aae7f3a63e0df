"""The Redis broker: hub nodes joined through one or more Redis servers.

    python -m fastws --broker redis://127.0.0.1:6379/0
    python -m fastws --broker redis://10.0.0.1:6379,redis://10.0.0.2:6379   # two shards
    python -m fastws --broker redis+cluster://10.0.0.1:6379,10.0.0.2:6379   # a Redis Cluster
    python -m fastws --broker redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster
    python -m fastws --broker rediss://redis.internal:6380 --broker-tls-ca ca.pem  # TLS

What lives where (key names and record formats in ``scripts.py``):

- Offsets, history and fan-out: one Lua script assigns the next offset, appends
  to the channel's history list (trimmed to its size, expiring by age) and
  PUBLISHes, atomically; so every node sees the same offsets, and a client that
  reconnects to any node recovers from its last one. The epoch is in Redis,
  created at random when missing: a flushed or restarted Redis gives a new one.
- Fan-out: one pub/sub connection per node and Redis server
  (``pubsub.py``), subscribed to a channel only while the node has local
  subscribers, plus ``fastws:ctl`` for private messages, user disconnects and
  control messages (which go through the first server).
  Every node receives all of ``fastws:ctl`` and drops what is not for its users:
  the cost of a private message is one delivery per node, not per connection.
- Presence: a hash per channel, each entry carrying its expiry; the owning node
  re-adds its entries every ``presence_ttl / 3``, so the entries of a node that
  died vanish at most ``presence_ttl`` seconds after it did.
- Occupancy: the nodes subscribed to each channel are counted on the first
  server (``scripts.py``), each node under a lease it renews every
  ``node_ttl / 3`` seconds. A node that dies keeps its channels for the rest
  of its lease, ``node_ttl`` at most; the first live node to renew its own
  lease after that drops it and is told of the channels it left vacated. So
  a dead node's last channels are told vacated between ``2/3 node_ttl`` and
  ``4/3 node_ttl`` seconds after it died. A node that finds its own lease
  gone (it was cut off that long, or Redis lost its data) counts its channels
  again, and is told of those that this makes occupied.
- Shards: a channel's keys and pub/sub channel all live on the server picked by
  ``crc32(channel) % N``; a user's messages go through ``crc32(user) % N``.
- A Redis Cluster is one shard (``cluster.py``): redis-py's cluster client
  sends each command to the node owning its keys' slot (a channel's keys share
  one through their hash tag), and pub/sub is sharded where the servers have it.
  A master found through Sentinel is one shard too (``sentinel.py``), located
  again before every probe.

Failures. Each server is a ``Shard`` (``shard.py``) with its own circuit
breaker: open after ``failure_threshold`` failed commands in a row or at once
when the pub/sub connection drops; while open, calls fail at once with
``BrokerUnavailable`` (error 503) and nothing queues. The shard probes after the
cooldown (doubling up to ``cooldown_max``): it connects, subscribes again to
every channel the node still needs, and closes the circuit. Then this module
*resyncs* each channel: live messages are held while the history since the last
delivered offset is read, the missed publications are delivered from it, then
the held ones; what history cannot fill reaches the node as a gap (or a new
epoch) and the node ends those subscriptions with an ``unsubscribe`` push
(code 2500, connections kept), so their clients subscribe again from their
position and learn ``recovered: false``. A node that cannot reach Redis at
start runs, not ready, and keeps probing.

Load is not a failure. A server serves ``POOL_SIZE`` calls at once; the others
queue for a connection (``slots.py``) up to ``queue_timeout`` seconds, and only
then fail, as ``BrokerOverloaded`` (503), without touching the circuit.

With ``local_delivery_on_outage``, publications made while a server is down are
delivered to this node's own subscribers under a local epoch (``local-...``):
offsets in it mean nothing to Redis, so every client sees an epoch change both
when the outage starts and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker.base import (
    Broker,
    BrokerSink,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
    new_epoch,
)
from fastws.hub.broker.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from fastws.hub.broker.redis.cluster import ClusterShard
from fastws.hub.broker.redis.pubsub import PubSubError
from fastws.hub.broker.redis.sentinel import SentinelShard
from fastws.hub.broker.redis.shard import QUEUE_TIMEOUT, Shard
from fastws.hub.broker.redis.tls import RedisTLS
from fastws.hub.broker.resync import missed, newer

logger = logging.getLogger("fastws.hub")

HELD_LIMIT = 10000  # live publications held per channel while it resyncs
RESYNC_CONCURRENCY = 32


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBroker(Broker):
    """Channels, history, presence and users shared by every node on the same Redis."""

    presence_expires = True

    def __init__(
        self,
        urls: list[str],
        *,
        timeout: float = 2.0,
        queue_timeout: float = QUEUE_TIMEOUT,
        failure_threshold: int = 3,
        cooldown: float = 1.0,
        cooldown_max: float = 30.0,
        presence_ttl: float = 60.0,
        node_ttl: float = 6.0,
        history_meta_ttl: float = 86400.0,
        local_delivery_on_outage: bool = False,
        tls: RedisTLS | None = None,
        cluster_pubsub: str = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``urls``: one per server (client-side shards), or a single ``redis+cluster://``
        or ``redis+sentinel://`` URL. ``tls`` applies to ``rediss...`` URLs.
        ``cluster_pubsub``: ``sharded`` (SSUBSCRIBE), ``classic`` (SUBSCRIBE) or ``auto``
        (sharded where the cluster's servers have it). ``timeout`` bounds a call on the
        wire, ``queue_timeout`` its wait for one of a server's connections (``slots.py``)."""
        if not urls:
            raise ValueError("at least one Redis URL is needed")
        self.timeout = timeout
        self.presence_ttl = presence_ttl
        self.node_ttl = node_ttl
        self.history_meta_ttl = history_meta_ttl
        self.local_delivery_on_outage = local_delivery_on_outage
        self.shards: list[Shard] = []
        for url in urls:
            breaker = CircuitBreaker(failure_threshold, cooldown, cooldown_max, clock=clock)
            scheme = url.partition("://")[0]
            if scheme.endswith("+cluster"):
                shard = ClusterShard(
                    url, breaker, timeout, self, tls, queue_timeout, pubsub=cluster_pubsub
                )
            elif scheme.endswith("+sentinel"):
                shard = SentinelShard(url, breaker, timeout, self, tls, queue_timeout)
            else:
                shard = Shard(url, breaker, timeout, self, tls, queue_timeout)
            self.shards.append(shard)
        self._meta_ttl_ms = _ms(history_meta_ttl)
        self._presence_ttl_ms = _ms(presence_ttl)
        self._node_ttl_ms = _ms(node_ttl)
        self._counting: dict[str, asyncio.Future] = {}  # channel -> its last occupancy update
        self._recounting = False
        self._sink: BrokerSink | None = None
        self._closed = False
        self._positions: dict[str, Publication] = {}  # last delivered, per subscribed channel
        self._present: dict[str, dict[str, ClientInfo]] = {}  # this node's presence entries
        self._tasks: set[asyncio.Task] = set()
        self._maintenance: asyncio.Task | None = None
        self._lease: asyncio.Task | None = None
        self._leased = False  # a lease of this node was ever taken (its first is not a loss)
        # Numbers for /api/v1/info and metrics.
        self.publishes = 0
        self.publish_latency = 0.0  # seconds, the last publish
        self.publish_latency_total = 0.0
        if local_delivery_on_outage:
            for shard in self.shards:
                self._new_local_stream(shard)

    # -- state -----------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return not self._closed and all(s.breaker.state == CLOSED for s in self.shards)

    @property
    def state(self) -> str:
        """The worst circuit state of the servers: closed, half_open or open."""
        states = {s.breaker.state for s in self.shards}
        for state in (OPEN, HALF_OPEN):
            if state in states:
                return state
        return CLOSED

    @property
    def failures(self) -> int:
        """Consecutive failures, summed over the servers."""
        return sum(s.breaker.failures for s in self.shards)

    @property
    def trips(self) -> int:
        """Times a circuit opened since start."""
        return sum(s.breaker.trips for s in self.shards)

    def breakers(self) -> list[CircuitBreaker]:
        return [shard.breaker for shard in self.shards]

    @property
    def overloaded(self) -> int:
        return sum(shard.slots.overloaded for shard in self.shards)

    def status(self) -> dict[str, Any]:
        if self.healthy:
            state = "up"
        elif all(s.breaker.ever_closed for s in self.shards):
            state = "degraded"
        else:
            state = "starting"
        average = self.publish_latency_total / self.publishes if self.publishes else 0.0
        return {
            "state": state,
            "circuit": self.state,
            "failures": self.failures,
            "trips": self.trips,
            "publishes": self.publishes,
            "publish_latency_ms": round(self.publish_latency * 1000, 3),
            "publish_latency_avg_ms": round(average * 1000, 3),
            "local_delivery_on_outage": self.local_delivery_on_outage,
            "shards": [shard.status() for shard in self.shards],
        }

    def shard(self, key: str) -> Shard:
        """The server holding the channel (or user) ``key``."""
        shards = self.shards
        if len(shards) == 1:
            return shards[0]
        return shards[zlib.crc32(key.encode()) % len(shards)]

    # -- life cycle ------------------------------------------------------------------

    async def start(self, sink: BrokerSink) -> None:
        """Start every shard connecting and wait (bounded) for their first attempts.

        Never fails for Redis being down: the node then starts not ready.
        """
        self._sink = sink
        self._closed = False
        for shard in self.shards:
            shard.start()
        await asyncio.wait([s.first_attempt for s in self.shards], timeout=3 * self.timeout + 1)
        loop = asyncio.get_running_loop()
        self._maintenance = loop.create_task(self._maintain())
        self._lease = loop.create_task(self._keep_lease())

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        tasks += [task for task in (self._maintenance, self._lease) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(shard.close() for shard in self.shards))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the shards tell -------------------------------------------------------

    def on_shard_up(self, shard: Shard) -> None:
        if self.local_delivery_on_outage:
            shard.local_offsets = {}
        self._spawn(self._recover(shard))

    def on_shard_down(self, shard: Shard) -> None:
        if self.local_delivery_on_outage:
            self._new_local_stream(shard)

    def on_channel_moved(self, shard: Shard, channel: str) -> None:
        self._spawn(self._resync(shard, channel))

    @staticmethod
    def _new_local_stream(shard: Shard) -> None:
        """The epoch of what this node delivers itself while ``shard`` is down."""
        shard.local_epoch = "local-" + new_epoch()
        shard.local_offsets = {}

    # -- after a (re)connection ------------------------------------------------------

    async def _recover(self, shard: Shard) -> None:
        """Fill every subscribed channel's gap from history, then put presence back."""
        semaphore = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def one(channel: str) -> None:
            async with semaphore:
                await self._resync(shard, channel)

        await asyncio.gather(*(one(channel) for channel in list(shard.resyncing)))
        await self._restore_presence(shard)

    async def _resync(self, shard: Shard, channel: str) -> None:
        held = shard.resyncing.get(channel)
        if held is None:
            return

        async def read(since: StreamPosition | None) -> HistoryResult:
            return await self._history(shard, channel, since, None)

        replay = await missed(channel, self._positions.get(channel), read)
        if shard.resyncing.get(channel) is not held:
            return  # unsubscribed, or the connection was lost again
        del shard.resyncing[channel]
        self._deliver_in_order(channel, replay + held)

    def _deliver_in_order(self, channel: str, publications: list[Publication]) -> None:
        on_publication = self._sink.on_publication
        for publication in newer(self._positions, channel, publications):
            self._deliver(on_publication, channel, publication)

    async def _restore_presence(self, shard: Shard) -> None:
        """Entries of this node's clients, lost with a restarted Redis, come back now."""
        for channel, clients in list(self._present.items()):
            if self.shard(channel) is not shard:
                continue
            for info in list(clients.values()):
                try:
                    await self._add_presence(shard, channel, info)
                except BrokerUnavailable:
                    return

    async def _maintain(self) -> None:
        """Keep the stream position of subscribed channels alive while nobody publishes."""
        interval = min(self.history_meta_ttl / 4, 3600.0)
        while not self._closed:
            await asyncio.sleep(interval)
            for shard in self.shards:
                channels = list(shard.channels.values())
                if not channels or shard.breaker.state != CLOSED:
                    continue
                pipe = shard.redis.pipeline(transaction=False)
                for channel in channels:
                    pipe.pexpire(rs.meta_key(channel), self._meta_ttl_ms)
                try:
                    await shard.execute(pipe.execute)
                except BrokerUnavailable as exc:
                    logger.info("fastws hub: refreshing stream positions failed: %s", exc)

    # -- occupancy ---------------------------------------------------------------------

    def _occupancy_keys(self) -> tuple[str, str, str]:
        return rs.OCCUPANCY_KEY, rs.LEASES_KEY, rs.node_key(self._sink.id)

    def _subscribed(self, channel: str) -> bool:
        return self.shard(channel).pubsub_name(channel) in self.shard(channel).channels

    async def _count(self, occupy: bool, channel: str, recount: bool = False) -> bool | None:
        """Count this node in (or out of) ``channel``: True when it is the first (the
        last), None when the first server cannot be asked. Updates of one channel
        reach Redis in the order they were made; a ``recount`` counts only a channel
        still subscribed when its turn comes."""
        shard = self.shards[0]
        previous = self._counting.get(channel)
        done = self._counting[channel] = asyncio.get_running_loop().create_future()
        try:
            if previous is not None:
                await asyncio.shield(previous)
            keys = self._occupancy_keys()
            if not occupy:
                return bool(await shard.execute(shard.vacate, keys=keys, args=(channel,)))
            if recount and not self._subscribed(channel):
                return None
            args = (channel, self._sink.id, self._node_ttl_ms)
            first, lease_gone = await shard.execute(shard.occupy, keys=keys, args=args)
            self._lease_renewed(lease_gone)
            return bool(first)
        except BrokerUnavailable as exc:
            logger.info("fastws hub: counting the nodes subscribed to %s failed: %s", channel, exc)
            return None
        finally:
            done.set_result(None)
            if self._counting.get(channel) is done:
                del self._counting[channel]

    async def _keep_lease(self) -> None:
        """Renew this node's lease every ``node_ttl / 3``; drop the nodes whose lease ended."""
        shard = self.shards[0]
        while not self._closed:
            if shard.breaker.state == CLOSED:
                try:
                    await self._renew_lease(shard)
                except BrokerUnavailable as exc:
                    logger.info("fastws hub: renewing the node's lease failed: %s", exc)
            await asyncio.sleep(self.node_ttl / 3)

    async def _renew_lease(self, shard: Shard) -> None:
        sink = self._sink
        lease_gone, gone = await shard.execute(
            shard.lease, keys=(rs.LEASES_KEY,), args=(sink.id, self._node_ttl_ms)
        )
        self._lease_renewed(lease_gone)
        for node in gone:
            node = node.decode()
            keys = (rs.OCCUPANCY_KEY, rs.LEASES_KEY, rs.node_key(node))
            vacated = await shard.execute(shard.reap, keys=keys, args=(node,))
            if vacated:
                logger.info("fastws hub: node %s is gone; %d channels left vacated", node, len(vacated))
            for channel in vacated:
                self._deliver(sink.on_channel_vacated, channel.decode())

    def _lease_renewed(self, was_gone: bool) -> None:
        """A lease found gone after this node held one means its counts were lost: count
        again. The first lease a node takes was not there before, and that is no loss."""
        if was_gone and self._leased:
            self._spawn(self._recount())
        self._leased = True

    async def _recount(self) -> None:
        """This node's lease was gone, and with it the counts of its channels (the other
        nodes were told they were vacated, or Redis lost them): count every channel
        the node is subscribed to again; of those this makes occupied, it is told."""
        if self._recounting:
            return
        self._recounting = True
        try:
            channels = [c for shard in self.shards for c in list(shard.channels.values())]
            for channel in channels:
                if await self._count(True, channel, recount=True):
                    self._deliver(self._sink.on_channel_occupied, channel)
        finally:
            self._recounting = False

    # -- messages from Redis -----------------------------------------------------------

    def on_shard_message(self, shard: Shard, name: bytes, payload: bytes) -> None:
        try:
            kind = payload[0]
            sink = self._sink
            if name == shard.control:
                if kind == rs.USER_MESSAGE:
                    self._deliver(sink.on_user_message, *rs.decode_user_message(payload))
                elif kind == rs.USER_DISCONNECT:
                    self._deliver(sink.on_disconnect_user, *rs.decode_user_disconnect(payload))
                elif kind == rs.CONTROL_MESSAGE:
                    self._deliver(sink.on_control, payload[1:])
                return
            channel = shard.channels.get(name)
            if channel is None:
                return  # unsubscribed meanwhile
            if kind == rs.PUBLICATION:
                publication = rs.decode_publication(payload)
                if shard.resyncing:
                    held = shard.resyncing.get(channel)
                    if held is not None:
                        if len(held) < HELD_LIMIT:
                            held.append(publication)
                        return
                self._positions[channel] = publication
                self._deliver(sink.on_publication, channel, publication)
            elif kind == rs.JOIN:
                self._deliver(sink.on_join, channel, rs.decode_client(payload))
            elif kind == rs.LEAVE:
                self._deliver(sink.on_leave, channel, rs.decode_client(payload))
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            logger.warning("fastws hub: ignoring a malformed message on %r: %s", name, exc)

    # -- the broker interface ------------------------------------------------------------

    async def subscribe(self, channel: str) -> bool | None:
        await self._listen(channel)
        return await self._count(True, channel)

    async def _listen(self, channel: str) -> None:
        """Have the pub/sub connection of the channel's server deliver it here."""
        shard = self.shard(channel)
        name = shard.pubsub_name(channel)
        connection = shard.pubsub
        if shard.breaker.state != CLOSED or connection is None:
            if not self.local_delivery_on_outage:
                raise shard.unavailable()
            shard.channels[name] = channel  # subscribed for real when Redis is back
            if connection is not None and not connection.lost:
                connection.subscribe([name])  # reconnecting: after the connection's own list
            return
        shard.channels[name] = channel
        try:
            async with asyncio.timeout(self.timeout):
                await connection.subscribe([name])[0]
        except (PubSubError, TimeoutError) as exc:
            if shard.channels.get(name) == channel:
                del shard.channels[name]
                if not connection.lost:
                    connection.unsubscribe([name])
            raise shard.failed(exc) from None

    async def unsubscribe(self, channel: str) -> bool | None:
        shard = self.shard(channel)
        name = shard.pubsub_name(channel)
        if shard.channels.pop(name, None) is None:
            return False
        shard.resyncing.pop(channel, None)
        self._positions.pop(channel, None)
        connection = shard.pubsub
        if connection is not None and not connection.lost:
            with contextlib.suppress(PubSubError):  # lost: nothing is subscribed any more
                connection.unsubscribe([name])
        return await self._count(False, channel)

    async def publish(
        self, channel: str, data: bytes, user: str | None, options: PublishOptions
    ) -> StreamPosition:
        shard = self.shard(channel)
        if shard.breaker.state != CLOSED and self.local_delivery_on_outage:
            return self._publish_locally(shard, channel, data, user)
        started = time.perf_counter()
        offset, epoch = await shard.execute(
            shard.publish,
            keys=(rs.meta_key(channel), rs.history_key(channel)),
            args=(
                shard.pubsub_name(channel),
                rs.user_field(user) + data,
                options.history_size,
                _ms(options.history_ttl),
                self._meta_ttl_ms,
                new_epoch(),
            ),
        )
        elapsed = time.perf_counter() - started
        self.publishes += 1
        self.publish_latency = elapsed
        self.publish_latency_total += elapsed
        return StreamPosition(offset, epoch.decode())

    async def history(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        shard = self.shard(channel)
        if shard.breaker.state != CLOSED and self.local_delivery_on_outage:
            offset = shard.local_offsets.get(channel, 0)
            return HistoryResult(StreamPosition(offset, shard.local_epoch), [])
        result = await self._history(shard, channel, since, limit, reverse)
        if channel not in self._positions and shard.pubsub_name(channel) in shard.channels:
            position = result.position  # where a newly subscribed channel starts
            self._positions[channel] = Publication(position.offset, position.epoch, b"")
        return result

    async def _history(
        self,
        shard: Shard,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        epoch, offset, records = await shard.execute(
            shard.history,
            keys=(rs.meta_key(channel), rs.history_key(channel)),
            args=(
                "" if since is None else since.epoch,
                0 if since is None else since.offset,
                -1 if limit is None else limit,
                new_epoch(),
                self._meta_ttl_ms,
                1 if reverse else 0,
            ),
        )
        epoch = epoch.decode()
        publications = [rs.decode_history(record, epoch) for record in records]
        if reverse:
            publications.reverse()  # the script returns the range oldest first
        return HistoryResult(StreamPosition(offset, epoch), publications)

    def _publish_locally(
        self, shard: Shard, channel: str, data: bytes, user: str | None
    ) -> StreamPosition:
        offset = shard.local_offsets.get(channel, 0) + 1
        shard.local_offsets[channel] = offset
        publication = Publication(offset, shard.local_epoch, data, user)
        if shard.pubsub_name(channel) in shard.channels:
            self._positions[channel] = publication
            self._deliver(self._sink.on_publication, channel, publication)
        return StreamPosition(offset, shard.local_epoch)

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        self._present.setdefault(channel, {})[info.client] = info
        await self._add_presence(self.shard(channel), channel, info)

    async def _add_presence(self, shard: Shard, channel: str, info: ClientInfo) -> None:
        await shard.execute(
            shard.add_presence,
            keys=(rs.presence_key(channel),),
            args=(info.client, rs.encode_presence(info), self._presence_ttl_ms),
        )

    async def remove_presence(self, channel: str, client: str) -> None:
        clients = self._present.get(channel)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._present[channel]
        shard = self.shard(channel)
        await shard.execute(shard.redis.hdel, rs.presence_key(channel), client)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        shard = self.shard(channel)
        flat = await shard.execute(shard.presence, keys=(rs.presence_key(channel),))
        return {
            client.decode(): rs.decode_presence(client, record)
            for client, record in zip(flat[::2], flat[1::2], strict=True)
        }

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._publish_member(channel, b"j", info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._publish_member(channel, b"l", info)

    async def _publish_member(self, channel: str, kind: bytes, info: ClientInfo) -> None:
        shard = self.shard(channel)
        name = shard.pubsub_name(channel)
        if shard.breaker.state != CLOSED and self.local_delivery_on_outage:
            if name in shard.channels:
                callback = self._sink.on_join if kind == b"j" else self._sink.on_leave
                self._deliver(callback, channel, info)
            return
        await shard.execute(shard.send, name, kind + rs.encode_client(info))

    async def send_to_user(self, user: str, sender: str | None, data: bytes) -> None:
        shard = self.shard(user)
        message = rs.encode_user_message(user, sender, data)
        await shard.execute(shard.send, shard.control, message)

    async def disconnect_user(self, user: str, code: int, reason: str) -> None:
        shard = self.shard(user)
        message = rs.encode_user_disconnect(user, code, reason)
        await shard.execute(shard.send, shard.control, message)

    async def control(self, data: bytes) -> None:
        shard = self.shards[0]
        await shard.execute(shard.send, shard.control, b"c" + data)

    async def remove_history(self, channel: str) -> None:
        shard = self.shard(channel)
        await shard.execute(shard.redis.delete, rs.history_key(channel))

    async def announce(self, node: str, info: bytes, ttl: float) -> None:
        shard = self.shards[0]
        await shard.execute(
            shard.add_presence, keys=(rs.NODES_KEY,), args=(node, info, _ms(ttl))
        )

    async def nodes(self) -> dict[str, bytes]:
        shard = self.shards[0]
        flat = await shard.execute(shard.presence, keys=(rs.NODES_KEY,))
        return {
            node.decode(): rs.decode_node(record)
            for node, record in zip(flat[::2], flat[1::2], strict=True)
        }


__all__ = ["RedisBroker"]
